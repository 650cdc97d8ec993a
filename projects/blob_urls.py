from django.urls import path

from projects import blob as views

urlpatterns = [
    # `path:` takes the rest of the URL whole, so the view alone decides what a name may be.
    path("blob/<path:name>", views.blob, name="blob"),
]
