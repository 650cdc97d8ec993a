import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the local admin user once (password generated into var/) and print the login."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options):
        User = get_user_model()
        path = settings.VAR_DIR / "admin_password"
        user = User.objects.filter(username=username).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(username=username, email="", password=password)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(password)
            path.chmod(0o600)
        elif path.exists():
            password = path.read_text().strip()
        else:
            password = "(set before this checkout; use `manage.py changepassword`)"
        self.stdout.write(f"[devstack] admin  login: {username} / {password}  (kept in {path})")
