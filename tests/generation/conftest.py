"""Fixtures shared by the generation tests."""

import django_rq
import fal_client.client as fal_http
import pytest

from tests.fakes.fal_server import FakeFal
from tests.fakes.gemini_server import FakeGemini

# These run twice: straight to PostgreSQL, and through pgbouncer in transaction pooling with
# DB_POOLER=true (as behind Supabase's pooler).
POOLED_MODULES = {"test_end_to_end", "test_events"}


def pytest_generate_tests(metafunc):
    if metafunc.module.__name__.rpartition(".")[2] in POOLED_MODULES:
        metafunc.parametrize("database_path", ["direct", "pgbouncer"], indirect=True)


@pytest.fixture(autouse=True)
def database_path(request):
    """How this test reaches PostgreSQL: "direct", or "pgbouncer" (see POOLED_MODULES)."""
    path = getattr(request, "param", "direct")
    if path == "pgbouncer":
        pooler = request.getfixturevalue("through_pgbouncer")
        before = pooler.transactions()
        yield path
        assert pooler.transactions() > before, "nothing went through pgbouncer"
    else:
        yield path


@pytest.fixture
def fal(settings, monkeypatch):
    """The fake fal queue on loopback, through the real fal-client; clips finish at once
    (set `fal.latency["run"]` for clips that stay in flight)."""
    for name in ("MAX_ATTEMPTS", "QUEUE_URL_FORMAT", "QUEUE_POLL_TIMEOUT"):
        monkeypatch.setattr(fal_http, name, getattr(fal_http, name))
    with FakeFal(key="fal-test-key-0000000000") as fake:
        settings.FAL_KEY = "fal-test-key-0000000000"
        settings.FAL_QUEUE_URL_FORMAT = fake.queue_url
        settings.FAL_JWKS_URL = fake.jwks_url
        settings.VIDEO_PROVIDER = "fal"
        fake.latency = {"run": 0.0, "http": 0.0}
        yield fake
    django_rq.get_connection("default").flushdb()


@pytest.fixture
def gemini(settings):
    """The fake Gemini API on loopback for text and images, through the real google-genai."""
    with FakeGemini() as fake:
        settings.GEMINI_API_KEYS = ["AIzaFakeKeyForPipelineTestsAAAAAAAAAAAAAA"]
        settings.GEMINI_BASE_URL = fake.url
        settings.GEMINI_RPM = 1000
        settings.PROVIDER_MAX_ATTEMPTS = 2
        settings.TEXT_PROVIDER = settings.IMAGE_PROVIDER = "gemini"
        yield fake
    django_rq.get_connection("default").flushdb()


@pytest.fixture
def rq_queue():
    """The default queue, empty before and after (the test's Redis database flushed)."""
    q = django_rq.get_queue("default")
    q.connection.flushdb()
    yield q
    q.connection.flushdb()
