"""`make manage` runs a management command against the embedded stack of `make run`."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def make_manage(var_dir: Path, args: str, **env: str) -> subprocess.CompletedProcess:
    # A new user's shell: no DATABASE_URL, REDIS_URL, SECRET_KEY or DJANGO_DEBUG.
    clean = {"PATH": os.environ["PATH"], "HOME": str(var_dir.parent), "VAR_DIR": str(var_dir)}
    return subprocess.run(
        ["make", "--no-print-directory", "manage", f"ARGS={args}"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_make_manage_creates_a_superuser_in_the_embedded_database(tmp_path):
    var_dir = tmp_path / "var"
    assert make_manage(var_dir, "migrate --noinput -v 0").returncode == 0
    created = make_manage(
        var_dir,
        "createsuperuser --noinput --username carol --email carol@example.com",
        DJANGO_SUPERUSER_PASSWORD="pw-for-tests-only",
    )
    assert created.returncode == 0, created.stdout + created.stderr
    assert "Superuser created successfully." in created.stdout
    # A second run, as `make run` would be: same data dir, same generated SECRET_KEY.
    check = (
        "shell -c 'from django.conf import settings; from django.contrib.auth.models import User;"
        ' print(User.objects.get(username="carol").check_password("pw-for-tests-only"),'
        ' settings.SECRET_KEY == (settings.VAR_DIR / "secret_key").read_text().strip(),'
        ' settings.DATABASES["default"]["HOST"])\''
    )
    again = make_manage(var_dir, check)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.split()[-3:] == ["True", "True", str(var_dir / "pg")]
