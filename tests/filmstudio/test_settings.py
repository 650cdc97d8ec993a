import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from filmstudio.env import (
    database_config,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_str,
    read_dotenv,
)

ROOT = Path(__file__).resolve().parents[2]


def load_settings(
    tmp_path, *, then: str = "", cwd: Path = ROOT, **env
) -> subprocess.CompletedProcess:
    """Settings loaded in a fresh process from `env` (None unsets), then `then` run there."""
    base = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": "postgres://u:p@127.0.0.1:5432/db",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "DJANGO_DEBUG": "true",
    }
    base.update(env)
    base = {k: v for k, v in base.items() if v is not None}
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'filmstudio.settings'; "
        "django.setup()\n" + then
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=base, capture_output=True, text=True
    )


def env_example() -> dict[str, str]:
    """Every variable of .env.example as copied to .env unchanged."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = [line.partition("=") for line in lines if line and not line.startswith("#")]
    return {key: value for key, _, value in pairs}


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
        # A provider that cannot do that kind of work: fal has no text, Gemini no video here.
        ({"TEXT_PROVIDER": "fal"}, "TEXT_PROVIDER"),
        ({"IMAGE_PROVIDER": "fal"}, "IMAGE_PROVIDER"),
        ({"VIDEO_PROVIDER": "gemini"}, "VIDEO_PROVIDER"),
        ({"DIRECTOR_PROVIDER": "fal"}, "DIRECTOR_PROVIDER"),
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
    read = set(
        re.findall(r'env_\w+\("([A-Z0-9_]+)"', (ROOT / "filmstudio" / "settings.py").read_text())
    )
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read - documented == set()


def test_empty_values_mean_unset(monkeypatch):
    for name in ("FS_S", "FS_B", "FS_L", "FS_C"):
        monkeypatch.setenv(name, "")
    assert env_str("FS_S", "default") == "default"
    assert env_bool("FS_B", True) is True
    assert env_list("FS_L", ["a"]) == ["a"]
    assert env_choice("FS_C", "auto", {"auto", "local"}) == "auto"


SHOW_PATHS = "from django.conf import settings as s; print(s.VAR_DIR, s.MEDIA_ROOT, s.STATIC_ROOT)"


def test_env_example_copied_as_is_keeps_local_state_out_of_the_working_directory(tmp_path):
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {**env_example(), "SECRET_KEY": "k" * 50}  # else a key is written under var/
    env.update(DATABASE_URL="postgres://u:p@127.0.0.1:5432/db", REDIS_URL="redis://127.0.0.1/0")
    result = load_settings(tmp_path, then=SHOW_PATHS, cwd=cwd, **env)
    assert result.returncode == 0, result.stderr
    var_dir, media_root, static_root = result.stdout.split()
    assert (var_dir, media_root, static_root) == (
        str(ROOT / "var"),
        str(ROOT / "var" / "media"),
        str(ROOT / "staticfiles"),
    )
    assert list(cwd.iterdir()) == []


def test_env_example_copied_as_is_keeps_https_on_in_production(tmp_path):
    env = {
        **env_example(),
        "PATH": os.environ["PATH"],
        "DJANGO_DEBUG": "false",
        "SECRET_KEY": "k" * 20 + "Zq8!vX2#mN5@pL7$wR4^tY6&uI9*oP3(aS1)dF0-gH",
        "ALLOWED_HOSTS": "films.example.com",
        "DATABASE_URL": "postgres://u:p@127.0.0.1:5432/db",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    then = (
        "from django.conf import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_HSTS_SECONDS > 0, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD)"
    )
    result = load_settings(tmp_path, then=then, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"] * 6


def logged(tmp_path, message: str, **env) -> str:
    then = f"import logging; logging.getLogger('fs').error({message!r})"
    result = load_settings(tmp_path, then=then, **env)
    assert result.returncode == 0, result.stderr
    return result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"DATABASE_URL": "postgres://u:s3cretpw@db.example.com/db"},
        {"DATABASE_URL": None, "SUPABASE_DB_URL": "postgresql://u:s3cretpw@db.example.co:6543/p"},
        {"REDIS_URL": "redis://:s3cretpw@127.0.0.1:6379/0"},
        {"REDIS_URL": "rediss://default:s3cretpw@cache.example.com:6380/0"},
    ],
)
def test_the_log_filter_masks_the_passwords_of_the_connections_in_use(tmp_path, env):
    url = next(value for value in env.values() if value)
    text = logged(tmp_path, f"could not connect to {url}: password s3cretpw refused", **env)
    assert "could not connect" in text
    assert "s3cretpw" not in text
    assert text.count("***") == 2


def test_the_log_filter_masks_url_passwords_however_short(tmp_path):
    text = logged(tmp_path, "retrying postgres://u:pw@db/x and redis://:pw@cache:6379/0")
    assert "retrying postgres://u:***@db/x and redis://:***@cache:6379/0" in text


def test_the_dev_stack_also_treats_an_empty_var_dir_as_unset(tmp_path):
    code = "import filmstudio.devstack as d; print(d.VAR_DIR)"
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "VAR_DIR": ""}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.stdout.strip() == str(ROOT / "var"), result.stderr
