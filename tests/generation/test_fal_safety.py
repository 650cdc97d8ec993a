"""What fal hands back is handled with suspicion: clips only from fal's hosts (or the fake, when
it is the configured queue), no redirects, a byte cap, ffmpeg reading files only and as MP4;
webhooks only for this fal account, and the signing keys fetched one at a time."""

import contextlib
import threading
import time
from collections.abc import Iterator

import fal_client.client as fal_http
import pytest

from generation.models import GenerationJob
from generation.providers import fal as fal_provider
from generation.providers.fal import FalVideo, jwks_cache, verify_fal_webhook
from generation.steps import videos
from media import ffmpeg
from projects.models import Frame, Scene, Take
from tests.factories import ProjectFactory
from tests.fakes import Exchange, FakeServer
from tests.fakes.fal_server import FakeFal, tiny_mp4
from tests.fakes.gemini_server import tiny_png

FAL_KEY = "fal-safety-key-id:fal-safety-key-secret-0123456789"


class Elsewhere(FakeServer):
    """A server that a clip must never be fetched from."""

    def handle(self, exchange: Exchange) -> None:
        self.record(exchange)
        exchange.send(200, tiny_mp4(), "video/mp4")


class RedirectingFal(FakeFal):
    """fal whose result files answer a redirect to `target`."""

    target = ""

    def handle(self, exchange: Exchange) -> None:
        if exchange.path.startswith("/files/"):
            self.record(exchange, kind="file")
            exchange.send(302, b"", "text/plain", {"Location": self.target})
            return
        super().handle(exchange)


class ChunkedFal(FakeFal):
    """fal whose result files come without a Content-Length, in chunks."""

    def handle(self, exchange: Exchange) -> None:
        if exchange.path.startswith("/files/"):
            self.record(exchange, kind="file")
            exchange.start_stream("video/mp4")
            data = self.video
            for start in range(0, len(data), 1024):
                exchange.write(data[start : start + 1024])
            return
        super().handle(exchange)


@pytest.fixture
def elsewhere():
    with Elsewhere() as server:
        yield server


@pytest.fixture(autouse=True)
def fal_settings(settings, monkeypatch):
    for name in ("MAX_ATTEMPTS", "QUEUE_URL_FORMAT", "QUEUE_POLL_TIMEOUT"):
        monkeypatch.setattr(fal_http, name, getattr(fal_http, name))
    settings.FAL_KEY = FAL_KEY
    settings.FAL_TIMEOUT = 5.0
    settings.PROVIDER_MAX_ATTEMPTS = 1
    jwks_cache.clear()
    yield settings
    jwks_cache.clear()


@contextlib.contextmanager
def serve(settings, fal_class: type[FakeFal] = FakeFal, **options) -> Iterator[FakeFal]:
    """A fake fal, started and configured as the queue (its host is then allowed)."""
    with fal_class(key=FAL_KEY, **options) as fake:
        settings.FAL_QUEUE_URL_FORMAT = fake.queue_url
        settings.FAL_JWKS_URL = fake.jwks_url
        yield fake


def finished_request(fake: FakeFal) -> str:
    provider = FalVideo()
    request_id = provider.submit(
        image=tiny_png("16:9"), prompt="waves", duration=2, aspect_ratio="16:9", seed=1
    )
    deadline = time.monotonic() + 5
    while not provider.ready(request_id):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return request_id


# ------------------------------------------------------------------ where clips come from


@pytest.mark.parametrize(
    "where",
    ["elsewhere", "file:///etc/passwd", "https://clips.example.net/x.mp4", "ftp://fal.media/x"],
)
def test_a_clip_is_fetched_only_from_fals_hosts(settings, elsewhere, where):
    url = f"{elsewhere.url}/clip.mp4" if where == "elsewhere" else where
    with serve(settings) as fake:
        fake.result_payload = lambda job: {"video": {"url": url}}
        result = FalVideo().poll(finished_request(fake))
    assert result.status == "failed"
    assert "not fetched" in result.error
    assert elsewhere.requests == []


def test_redirects_are_not_followed(settings, elsewhere):
    with serve(settings, RedirectingFal) as fake:
        fake.target = f"{elsewhere.url}/clip.mp4"
        result = FalVideo().poll(finished_request(fake))
    assert result.status == "failed"
    assert "HTTP 302" in result.error
    assert elsewhere.requests == []


@pytest.mark.parametrize("fal_class", [FakeFal, ChunkedFal], ids=["content-length", "chunked"])
def test_a_clip_larger_than_the_cap_is_refused_and_leaves_no_file(
    settings, tmp_path, monkeypatch, fal_class
):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    settings.FAL_MAX_DOWNLOAD_BYTES = len(tiny_mp4()) - 1
    with serve(settings, fal_class) as fake:
        request_id = finished_request(fake)
        result = FalVideo().poll(request_id)
        assert result.status == "failed"
        assert f"larger than {settings.FAL_MAX_DOWNLOAD_BYTES} bytes" in result.error
        assert list(tmp_path.iterdir()) == []

        settings.FAL_MAX_DOWNLOAD_BYTES = len(tiny_mp4())
        assert FalVideo().poll(request_id).video == tiny_mp4()
        assert list(tmp_path.iterdir()) == []


def test_parse_fal_webhook_is_gone():
    assert not hasattr(fal_provider, "parse_fal_webhook")


# ------------------------------------------------------------------ what ffmpeg reads


def playlist(segment: str) -> bytes:
    """An HLS playlist: what a clip could be instead of an MP4."""
    return (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n"
        f"{segment}\n#EXT-X-ENDLIST\n"
    ).encode()


def test_ffmpeg_reads_no_url_a_clip_names(tmp_path, elsewhere):
    source = tmp_path / "raw.mp4"
    source.write_bytes(playlist(f"{elsewhere.url}/segment.ts"))
    fmt = ffmpeg.CanonicalFormat(320, 180, 12)
    with pytest.raises(ffmpeg.FFmpegError):
        ffmpeg.normalize_clip(source, tmp_path / "clip.mp4", fmt=fmt, duration=1, timeout=30)
    assert elsewhere.requests == []


@pytest.mark.django_db
def test_a_delivered_clip_is_read_as_mp4_only(tmp_path, user):
    secret = tmp_path / "not-a-clip-of-ours.mp4"  # a local file a playlist could point at
    secret.write_bytes(tiny_mp4())
    project = ProjectFactory(owner=user, status="generating_videos")
    scene = Scene.objects.create(project=project, order=1, status="ready")
    frame = Frame.objects.create(scene=scene, order=1, duration=1, status="ready", image="x.png")
    job = GenerationJob.objects.create(
        project=project,
        type="video-generation",
        status="waiting",
        target_type="frame",
        target_id=frame.pk,
        attempts=1,
        provider_request_ids=["r1"],
    )
    with pytest.raises(ffmpeg.FFmpegError, match="not a readable media file"):
        videos.deliver(job, playlist(str(secret)))
    assert not Take.objects.exists()


# ------------------------------------------------------------------ webhooks


@pytest.mark.django_db
def test_a_webhook_signed_for_another_fal_account_is_refused(settings, client):
    settings.FAL_WEBHOOK_USER_ID = "our-fal-account"
    with serve(settings, user_id="someone-else") as theirs:
        body, headers = theirs.webhook_for(finished_request(theirs))
        assert not verify_fal_webhook(body, headers)
        response = client.post(
            "/api/webhooks/fal", body, content_type="application/json", headers=headers
        )
        assert response.status_code == 401
    jwks_cache.clear()
    with serve(settings, user_id="our-fal-account") as ours:
        assert verify_fal_webhook(*ours.webhook_for(finished_request(ours)))


class FailingJwks(FakeServer):
    """A JWKS endpoint that is slow and down."""

    def handle(self, exchange: Exchange) -> None:
        self.record(exchange, kind="jwks")
        time.sleep(0.3)
        exchange.send_json(503, {"detail": "down"})


def test_signing_keys_are_fetched_one_at_a_time_and_not_again_soon_after_a_failure(
    settings, monkeypatch
):
    monkeypatch.setattr(fal_provider, "JWKS_RETRY_AFTER", 1.0, raising=False)
    with serve(settings) as fake, FailingJwks() as jwks:
        settings.FAL_JWKS_URL = f"{jwks.url}/.well-known/jwks.json"
        forged = fake.webhook_for(finished_request(fake))  # keys unknown: never verifies
        answers: list[bool] = []
        threads = [
            threading.Thread(target=lambda: answers.append(verify_fal_webhook(*forged)))
            for _ in range(16)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert answers == [False] * 16
        assert jwks.count(kind="jwks") == 1  # one fetch; the others waited for it
        for _ in range(10):
            assert not verify_fal_webhook(*forged)
        assert jwks.count(kind="jwks") == 1  # the failure is remembered
        time.sleep(1.1)
        assert not verify_fal_webhook(*forged)
        assert jwks.count(kind="jwks") == 2  # and tried again after JWKS_RETRY_AFTER
