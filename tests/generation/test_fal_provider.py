"""fal image-to-video through the real fal-client against FakeFal on loopback."""

import base64
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import fal_client.client as fal_http
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ImproperlyConfigured

from generation.providers.base import PermanentProviderError, TransientProviderError, VideoPoll
from generation.providers.fal import (
    FalVideo,
    download_client,
    fal_duration,
    jwks_cache,
    verify_fal_webhook,
)
from tests.fakes.fal_server import FakeFal
from tests.fakes.gemini_server import tiny_png
from tests.pipeline import subprocess_env

FAL_KEY = "fal-test-key-id:fal-test-key-secret-0123456789"
MODEL = "fal-ai/kling-video/v2.1/standard/image-to-video"
KEYFRAME = tiny_png("16:9", seed="keyframe")


@pytest.fixture
def fake():
    with FakeFal(key=FAL_KEY) as fake:
        yield fake


@pytest.fixture(autouse=True)
def fal_settings(settings, fake, monkeypatch):
    # configure_fal_client() rewrites fal-client's module globals: put them back afterwards.
    for name in ("MAX_ATTEMPTS", "QUEUE_URL_FORMAT", "QUEUE_POLL_TIMEOUT"):
        monkeypatch.setattr(fal_http, name, getattr(fal_http, name))
    settings.FAL_KEY = FAL_KEY
    settings.FAL_MODEL = MODEL
    settings.FAL_QUEUE_URL_FORMAT = fake.queue_url
    settings.FAL_JWKS_URL = fake.jwks_url
    settings.FAL_TIMEOUT = 5.0
    settings.PROVIDER_MAX_ATTEMPTS = 3
    settings.PROVIDER_BACKOFF_BASE = 0.001
    settings.PROVIDER_BACKOFF_CAP = 0.005
    jwks_cache.clear()
    yield settings
    jwks_cache.clear()


def _submit(provider: FalVideo | None = None, **overrides) -> str:
    arguments = {
        "image": KEYFRAME,
        "prompt": "Ana boards the night train",
        "duration": 4.2,
        "aspect_ratio": "16:9",
        "seed": 7,
    }
    return (provider or FalVideo()).submit(**(arguments | overrides))


def _poll_until_settled(request_id: str, timeout: float = 5.0) -> VideoPoll:
    provider = FalVideo()
    deadline = time.monotonic() + timeout
    while True:
        result = provider.poll(request_id)
        if result.status != "pending" or time.monotonic() > deadline:
            return result
        time.sleep(0.02)


# ------------------------------------------------------------------ submit / poll / download


def test_submit_poll_and_download_round_trip(fake):
    fake.latency = {"run": 0.2}

    request_id = _submit()

    assert FalVideo().poll(request_id) == VideoPoll("pending")
    result = _poll_until_settled(request_id)
    assert result.status == "done"
    assert result.video == fake.video
    assert result.video[4:8] == b"ftyp"
    [submit] = [r for r in fake.requests if r.kind == "submit"]
    assert submit.path == f"/queue/{MODEL}"
    assert submit.body["prompt"] == "Ana boards the night train"
    assert submit.body["duration"] == "5"
    assert submit.body["aspect_ratio"] == "16:9"
    prefix = "data:image/png;base64,"
    assert submit.body["image_url"].startswith(prefix)
    assert base64.b64decode(submit.body["image_url"][len(prefix) :]) == KEYFRAME
    assert "authorization" not in submit.headers


def test_status_and_result_use_fals_request_paths(fake):
    request_id = _submit()

    _poll_until_settled(request_id)

    paths = {r.kind: r.path for r in fake.requests}
    assert paths["status"] == f"/queue/fal-ai/kling-video/requests/{request_id}/status"
    assert paths["result"] == f"/queue/fal-ai/kling-video/requests/{request_id}"
    assert paths["file"] == f"/files/{request_id}.mp4"


def test_it_passes_the_webhook_url(fake):
    _submit(webhook_url="https://studio.example/api/webhooks/fal")

    [submit] = fake.requests
    assert submit.query == {"fal_webhook": "https://studio.example/api/webhooks/fal"}


@pytest.mark.parametrize(
    ("model", "seconds", "expected"),
    [
        (MODEL, 3, "5"),
        (MODEL, 5, "5"),
        (MODEL, 5.5, "10"),
        (MODEL, 14, "10"),
        ("fal-ai/veo3/fast/image-to-video", 5, "6s"),
        ("fal-ai/veo3/fast/image-to-video", 12, "8s"),
    ],
)
def test_duration_is_the_shortest_allowed_clip_that_covers_it(model, seconds, expected):
    assert fal_duration(model, seconds) == expected


def test_the_queue_holds_requests_beyond_the_concurrency_limit(settings):
    with FakeFal(latency=0.25, concurrency=1) as fake:
        settings.FAL_QUEUE_URL_FORMAT = fake.queue_url
        first, second = _submit(), _submit()

        assert fake.jobs[second].state(time.monotonic()) == "IN_QUEUE"
        assert _poll_until_settled(second).status == "done"
        assert _poll_until_settled(first).status == "done"
        assert fake.max_in_progress() == 1


# ------------------------------------------------------------------ errors


def test_a_validation_error_is_permanent_with_fals_message(fake):
    fake.fail_next(1, status=422, kind="submit")

    with pytest.raises(PermanentProviderError, match=r"422.*image_url: Unsupported image format"):
        _submit()
    assert fake.count(kind="submit") == 1


def test_it_needs_a_key(settings):
    settings.FAL_KEY = ""

    with pytest.raises(ImproperlyConfigured):
        FalVideo()


def test_a_refused_key_is_permanent(fake):
    with pytest.raises(PermanentProviderError, match="401"):
        _submit(FalVideo(key="fal-wrong-key:secret"))
    assert fake.count(kind="submit") == 1


def test_server_errors_on_submit_are_retried_by_our_policy_only(fake):
    fake.fail_next(2, status=500, kind="submit")

    assert _submit()
    # One HTTP call per attempt of ours: fal-client's own retries are lowered to one attempt.
    assert fake.count(kind="submit") == 3
    assert fal_http.MAX_ATTEMPTS == 1


@pytest.mark.parametrize("status", [429, 500, 503])
def test_persistent_server_errors_are_transient(fake, status):
    fake.fail_next(10, status=status, kind="submit")

    with pytest.raises(TransientProviderError, match=str(status)):
        _submit()
    assert fake.count(kind="submit") == 3


def _finished(fake) -> tuple[str, int]:
    """A request fal has finished, and the status calls made so far."""
    request_id = _submit()
    while not FalVideo().ready(request_id):
        time.sleep(0.02)
    return request_id, fake.count(kind="status")


def test_a_request_seen_completed_is_fetched_without_asking_its_status_again(fake):
    request_id, statuses = _finished(fake)

    result = FalVideo().poll(request_id, completed=True)

    assert result == VideoPoll("done", video=fake.video)
    assert fake.count(kind="status") == statuses
    assert fake.count(kind="result") == 1


def test_a_finished_request_is_polled_with_one_status_call(fake):
    request_id, statuses = _finished(fake)

    assert FalVideo().poll(request_id) == VideoPoll("done", video=fake.video)
    # fal-client's `result` would ask for the status a second time before the result.
    assert fake.count(kind="status") == statuses + 1


def test_a_failed_run_seen_completed_polls_as_failed_with_fals_message(fake):
    fake.fail_runs(1, error="Prompt flagged by the content checker")
    request_id, _ = _finished(fake)

    result = FalVideo().poll(request_id, completed=True)

    assert result.status == "failed"
    assert "Prompt flagged by the content checker" in result.error


def test_a_result_error_of_a_request_seen_completed_is_transient(fake):
    request_id, _ = _finished(fake)
    fake.fail_next(1, status=502, kind="result")

    with pytest.raises(TransientProviderError):
        FalVideo().poll(request_id, completed=True)


def test_a_status_error_while_polling_is_transient(fake):
    request_id = _submit()
    fake.fail_next(1, status=502, kind="status")

    with pytest.raises(TransientProviderError):
        FalVideo().poll(request_id)
    assert _poll_until_settled(request_id).status == "done"


def test_a_failed_run_polls_as_failed_with_fals_message(fake):
    fake.fail_runs(1, error="Prompt flagged by the content checker")

    result = _poll_until_settled(_submit())

    assert result.status == "failed"
    assert "Prompt flagged by the content checker" in result.error


def test_an_unknown_request_polls_as_failed(fake):
    result = FalVideo().poll("0b7a3d0e-0000-4000-8000-000000000000")

    assert result.status == "failed"
    assert "404" in result.error


def test_a_failed_download_is_transient(fake):
    request_id = _submit()
    fake.fail_next(1, status=503, kind="file")

    with pytest.raises(TransientProviderError, match="download"):
        _poll_until_settled(request_id)


def test_a_cookie_one_download_was_given_goes_with_no_later_download(fake, monkeypatch):
    """The clips' HTTP client is one per process, shared by every job (and thread) in it."""
    serve = fake._serve_public

    def with_a_cookie(kind, exchange):
        if kind != "file":
            return serve(kind, exchange)
        cookie = {"Set-Cookie": "session=first-job; Path=/"}
        return exchange.send(200, fake.video, "video/mp4", cookie)

    monkeypatch.setattr(fake, "_serve_public", with_a_cookie)
    first, second = _submit(), _submit(seed=8)
    assert _poll_until_settled(first).video == fake.video
    assert _poll_until_settled(second).video == fake.video
    downloads = [r for r in fake.requests if r.kind == "file"]
    assert len(downloads) == 2
    assert all("cookie" not in r.headers for r in downloads)
    assert not list(download_client().cookies.jar)


def test_the_cached_fal_client_builds_its_http_client_also_under_python_o(settings):
    """fal_sync_client builds the SDK's HTTP client at once (the worker does it before forking):
    with an `assert` doing it, `python -O` dropped the statement and every job built its own."""
    probe = (
        "import django; django.setup()\n"
        "from generation.providers import fal\n"
        "print('_client' in vars(fal.fal_sync_client('key', 5.0)))"
    )
    env = subprocess_env(settings) | {"DJANGO_SETTINGS_MODULE": "filmstudio.settings"}
    done = subprocess.run(
        [sys.executable, "-O", "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True"]


# ------------------------------------------------------------------ webhooks


@pytest.fixture
def finished(fake) -> str:
    request_id = _submit()
    _poll_until_settled(request_id)
    return request_id


def test_a_signed_webhook_verifies(fake, finished):
    body, headers = fake.webhook_for(finished)

    assert verify_fal_webhook(body, headers)
    assert json.loads(body)["request_id"] == finished


def test_header_names_are_case_insensitive(fake, finished):
    body, headers = fake.webhook_for(finished)

    assert verify_fal_webhook(body, {name.lower(): value for name, value in headers.items()})


@pytest.mark.parametrize(
    "options",
    [
        {"tamper": True},
        {"bad_signature": True},
        {"private_key": Ed25519PrivateKey.generate()},
        {"timestamp": -301},
        {"timestamp": +301},
    ],
    ids=["tampered-body", "bad-signature", "wrong-key", "stale", "future"],
)
def test_a_forged_webhook_is_refused(fake, finished, options):
    if "timestamp" in options:
        options = {"timestamp": int(time.time()) + options["timestamp"]}
    body, headers = fake.webhook_for(finished, **options)

    assert not verify_fal_webhook(body, headers)


def test_a_webhook_missing_a_header_is_refused(fake, finished):
    body, headers = fake.webhook_for(finished)
    del headers["X-Fal-Webhook-User-Id"]

    assert not verify_fal_webhook(body, headers)


def test_signing_keys_are_fetched_once(fake, finished):
    for _ in range(3):
        assert verify_fal_webhook(*fake.webhook_for(finished))

    assert fake.count(kind="jwks") == 1


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[bytes, dict[str, str]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((body, dict(self.headers.items())))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_the_fake_delivers_signed_webhooks_when_requests_finish(settings):
    received: list[tuple[bytes, dict[str, str]]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=receiver.serve_forever, args=(0.02,), daemon=True).start()
    try:
        with FakeFal(latency=0.05, auto_webhook=True) as fake:
            settings.FAL_QUEUE_URL_FORMAT = fake.queue_url
            settings.FAL_JWKS_URL = fake.jwks_url
            request_id = _submit(webhook_url=f"http://127.0.0.1:{receiver.server_port}/hook")
            deadline = time.monotonic() + 5
            while not received and time.monotonic() < deadline:
                time.sleep(0.01)

            [(body, headers)] = received
            assert verify_fal_webhook(body, headers)
            assert json.loads(body)["request_id"] == request_id
    finally:
        receiver.shutdown()
        receiver.server_close()
