import os

from django.core.asgi import get_asgi_application

from filmstudio.middleware import BodyLimitASGIMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "filmstudio.settings")
# Oversized bodies are refused here, before Django's handler reads them.
application = BodyLimitASGIMiddleware(get_asgi_application())
