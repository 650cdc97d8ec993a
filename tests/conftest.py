import django_rq
import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection as db_connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import UserFactory
from tests.postgres import PgBouncer, django_database


@pytest.fixture(scope="session", autouse=True)
def clean_redis():
    """Each run gets an empty Redis DB (REDIS_URL names a DB of its own in CI)."""
    connection = django_rq.get_connection("default")
    connection.flushdb()
    yield connection


@pytest.fixture(scope="session", autouse=True)
def live_events_flushed_when_asked():
    """In the test process no timer thread stores live events on a connection of its own in
    the middle of a test, and nothing is stored at exit (the test database is gone by then):
    jobs and requests still flush when they end, tests call eventstore.flush() otherwise.
    Servers and workers the tests start keep both (they read the environment)."""
    settings.EVENTS_FLUSH_INTERVAL = 0
    settings.EVENTS_FLUSH_AT_EXIT = False


@pytest.fixture
def user(db):
    return UserFactory(username="alice")


@pytest.fixture
def other_user(db):
    return UserFactory(username="bob")


def client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(user) -> APIClient:
    return client_for(user)


@pytest.fixture
def other_api(other_user) -> APIClient:
    return client_for(other_user)


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Request-rate windows (DRF throttles, login forms: in the Redis cache) start empty in
    each test: every test client comes from the same address and user ids repeat."""
    cache.clear()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def small_media(settings, tmp_path):
    """Tests render tiny media into a folder of their own."""
    settings.MEDIA_BASE_HEIGHT = 180
    settings.MEDIA_FPS = 12
    settings.VAR_DIR = tmp_path / "var"
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }
    settings.VIDEO_POLL_INTERVAL = 0.05
    settings.PROVIDER_BACKOFF_BASE = 0.01
    settings.PROVIDER_BACKOFF_CAP = 0.05


@pytest.fixture
def media_root(small_media, settings):
    """The local media folder of this test (small_media points the storage at it)."""
    settings.MEDIA_ROOT.mkdir(parents=True, exist_ok=True)
    return settings.MEDIA_ROOT


@pytest.fixture(scope="session")
def pgbouncer(django_db_setup):
    """Debian's pgbouncer in transaction pooling in front of the test database's server."""
    with PgBouncer(db_connection.settings_dict) as pooler:
        yield pooler


@pytest.fixture
def through_pgbouncer(transactional_db, pgbouncer, settings):
    """This test's database work, and its workers' and web servers', through pgbouncer with
    DB_POOLER=true."""
    with django_database(settings, pgbouncer.database(), pooler=True):
        yield pgbouncer
