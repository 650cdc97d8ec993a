import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from filmstudio.env import database_config, env_bool, env_int, read_dotenv

ROOT = Path(__file__).resolve().parents[2]


def load_settings(tmp_path, **env) -> subprocess.CompletedProcess:
    base = {
        "PATH": os.environ["PATH"],
        "VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": "postgres://u:p@127.0.0.1:5432/db",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "DJANGO_DEBUG": "true",
    }
    base.update(env)
    base = {k: v for k, v in base.items() if v is not None}
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'filmstudio.settings'; "
        "django.setup()"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG"),
        ({"PORT": "http"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"DATABASE_URL": None}, "DATABASE_URL"),
        ({"REDIS_URL": None}, "REDIS_URL"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"DJANGO_DEBUG": "false"}, "SECRET_KEY"),
        ({"TEXT_PROVIDER": "openai"}, "TEXT_PROVIDER"),
        ({"BLOB_URL_MAX_AGE": "5"}, "BLOB_URL_MAX_AGE"),
    ],
)
def test_a_bad_setting_fails_loudly_naming_the_variable(tmp_path, env, named):
    result = load_settings(tmp_path, **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert named in result.stderr


def test_a_local_run_generates_and_keeps_a_secret_key(tmp_path):
    assert load_settings(tmp_path).returncode == 0
    key = (tmp_path / "var" / "secret_key").read_text()
    assert len(key) >= 50
    assert load_settings(tmp_path).returncode == 0
    assert (tmp_path / "var" / "secret_key").read_text() == key


def test_supabase_db_url_is_accepted(tmp_path):
    result = load_settings(
        tmp_path, DATABASE_URL=None, SUPABASE_DB_URL="postgresql://u:p@db.example.co:6543/postgres"
    )
    assert result.returncode == 0, result.stderr


def test_check_deploy_is_clean_with_debug_off(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": os.environ["REDIS_URL"],
        "DJANGO_DEBUG": "false",
        "SECRET_KEY": "k" * 20 + "Zq8!vX2#mN5@pL7$wR4^tY6&uI9*oP3(aS1)dF0-gH",
        "ALLOWED_HOSTS": "films.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_env_helpers_parse_and_reject(monkeypatch):
    monkeypatch.setenv("FLAG", "yes")
    assert env_bool("FLAG") is True
    monkeypatch.setenv("FLAG", "perhaps")
    with pytest.raises(ImproperlyConfigured, match="FLAG"):
        env_bool("FLAG")
    monkeypatch.setenv("NUM", "12")
    assert env_int("NUM", 1, minimum=1, maximum=20) == 12
    with pytest.raises(ImproperlyConfigured, match="NUM"):
        env_int("NUM", 1, maximum=10)


def test_database_urls_with_socket_dirs_and_pooler_options():
    config = database_config("postgresql://postgres:@/films?host=/tmp/pg")
    assert (config["HOST"], config["NAME"], config["USER"]) == ("/tmp/pg", "films", "postgres")
    config = database_config("postgres://u:p%40ss@db:6543/x?sslmode=require")
    assert (config["PASSWORD"], config["PORT"], config["OPTIONS"]) == (
        "p@ss",
        "6543",
        {"sslmode": "require"},
    )


def test_the_dotenv_file_never_overrides_the_environment(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("# comment\nFS_A=from-file\nexport FS_B='quoted'\nFS_C=file\n")
    monkeypatch.setenv("FS_C", "real")
    monkeypatch.delenv("FS_A", raising=False)
    monkeypatch.delenv("FS_B", raising=False)
    read_dotenv(tmp_path / ".env")
    assert (os.environ["FS_A"], os.environ["FS_B"], os.environ["FS_C"]) == (
        "from-file",
        "quoted",
        "real",
    )


def test_env_example_documents_every_variable_settings_read():
    import re

    read = set(
        re.findall(r'env_\w+\("([A-Z0-9_]+)"', (ROOT / "filmstudio" / "settings.py").read_text())
    )
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read - documented == set()
