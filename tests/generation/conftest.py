"""Fixtures shared by the generation tests."""

import django_rq
import fal_client.client as fal_http
import pytest

from tests.fakes.fal_server import FakeFal
from tests.fakes.gemini_server import FakeGemini


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
