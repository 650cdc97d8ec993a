import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import django_rq
import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django_eventstream.views import RedisListener, get_listener_manager

from generation.providers.keypool import REDIS_PREFIX
from tests.director.helpers import KEY
from tests.fakes.gemini_server import FakeGemini


@pytest.fixture(autouse=True)
def director_settings(settings):
    settings.DIRECTOR_PROVIDER = "local"
    settings.DIRECTOR_LOCAL_DELAY = 0.0
    settings.DIRECTOR_TURNS_PER_MINUTE = 1000
    settings.DIRECTOR_MAX_TOOL_ROUNDS = 4
    settings.GEMINI_API_KEYS = []
    redis = django_rq.get_connection("default")
    names = list(redis.scan_iter(f"{REDIS_PREFIX}:ratelimit:director-turns:*"))
    if names:
        redis.delete(*names)
    return settings


@pytest.fixture(scope="session")
def event_loop_thread():
    """One event loop for every stream test, running in its own thread.

    django-eventstream starts its Redis listener once per process, on the loop of the first
    stream: it is restarted here on this loop, which lives as long as the test session.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-event-loop", daemon=True)
    thread.start()
    manager = get_listener_manager()
    manager.redis_listener = RedisListener()
    manager.redis_listener_started = False
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)


Run = Callable[..., Any]


@pytest.fixture
def run(event_loop_thread) -> Run:
    """run(coroutine) on the session loop and wait for its result (bounded)."""

    def run(coroutine: Coroutine, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, event_loop_thread).result(timeout)

    yield run
    # AsyncClient runs sync views in asgiref's shared executor thread and never closes its
    # connection: close it there, or the test database cannot be flushed and dropped.
    run(sync_to_async(connections.close_all)())


@pytest.fixture(scope="module")
def fake_server():
    """The fake Gemini API (one per test module)."""
    with FakeGemini() as fake:
        yield fake


@pytest.fixture
def fake(fake_server, settings):
    """The Gemini director pointed at the fake, its script and requests reset."""
    fake_server.reset()
    settings.DIRECTOR_PROVIDER = "gemini"
    settings.GEMINI_API_KEYS = [KEY]
    settings.GEMINI_BASE_URL = fake_server.url
    settings.GEMINI_DIRECTOR_MODEL = "gemini-2.5-flash"
    settings.GEMINI_RPM = 1000
    settings.GEMINI_TIMEOUT = 5.0
    settings.PROVIDER_MAX_ATTEMPTS = 2
    return fake_server
