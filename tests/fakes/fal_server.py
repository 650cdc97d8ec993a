"""A fake fal.ai queue for fal-client (point `fal_client.client.QUEUE_URL_FORMAT` at
`fake.queue_url`), with result files, a JWKS endpoint and signed webhooks.

    with FakeFal(latency=0.2, concurrency=2) as fake:
        settings.FAL_QUEUE_URL_FORMAT = fake.queue_url
        settings.FAL_JWKS_URL = fake.jwks_url

Routes (what fal-client 1.0.3 calls):
- `POST /queue/{app}[?fal_webhook=URL]` → {"request_id", "status_url", "response_url", "cancel_url"}
- `GET  /queue/{owner}/{alias}/requests/{id}/status` → IN_QUEUE / IN_PROGRESS / COMPLETED
- `GET  /queue/{owner}/{alias}/requests/{id}` → {"video": {"url": ".../files/{id}.mp4"}}
- `PUT  /queue/{owner}/{alias}/requests/{id}/cancel`
- `GET  /files/{id}.mp4` (a real MP4), `GET /.well-known/jwks.json`

Knobs:
- `latency`: seconds a request runs once started (a number), or {"run": s, "http": s per call}.
- `concurrency`: how many requests run at once; the rest wait IN_QUEUE (fal counts
  concurrency by in-progress requests). None: unlimited.
- `key`: when set, queue calls without `Authorization: Key <key>` get 401.
- `fail_next(n, status=500, kind=None, detail=None)`: the next n HTTP calls (of `kind`
  "submit" | "status" | "result" | "file", or any) answer `status`.
- `fail_runs(n, error=..., status=422)`: the next n submitted requests end in ERROR.
- `video`: the MP4 bytes to serve (default: a 320x180, 1 s clip made once with ffmpeg).
- `auto_webhook`: POST the signed webhook to `fal_webhook` when a request finishes.
Webhooks: `webhook_for(request_id, ...) -> (body, headers)` and `send_webhook(url,
request_id, ...)`; `tamper=True`, `bad_signature=True`, `timestamp=...` or
`private_key=<another Ed25519PrivateKey>` make deliveries that must fail verification.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import re
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from media.ffmpeg import ffmpeg_binary
from tests.fakes import Exchange, FakeServer

_REQUEST_PATH = re.compile(
    r"^/queue/(?:(?:workflows|comfy)/)?([^/]+)/([^/]+)/requests/([^/]+?)(/status|/cancel)?$"
)
_FILE_PATH = re.compile(r"^/files/([^/]+)\.mp4$")
_VALIDATION_DETAIL = [
    {"loc": ["body", "image_url"], "msg": "Unsupported image format", "type": "value_error"}
]
_video_lock = threading.Lock()
_video_cache: bytes | None = None


def tiny_mp4() -> bytes:
    """A real H.264 MP4, 320x180, 1 s, made once per process with ffmpeg."""
    global _video_cache
    with _video_lock:
        if _video_cache is None:
            _video_cache = _render_mp4()
        return _video_cache


def _render_mp4() -> bytes:
    with tempfile.TemporaryDirectory(prefix="fakefal-") as workdir:
        out = Path(workdir) / "clip.mp4"
        subprocess.run(
            [
                ffmpeg_binary(),
                "-nostdin",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x180:rate=24:duration=1",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-movflags",
                "+faststart",
                str(out),
            ],
            check=True,
            timeout=60,
        )
        return out.read_bytes()


def public_jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "use": "sig", "alg": "EdDSA"}


@dataclass
class _Job:
    request_id: str
    app: str
    owner_alias: str
    arguments: Any
    webhook_url: str | None
    submitted_at: float
    start_at: float
    finish_at: float
    error: str | None = None
    error_status: int = 422
    cancelled: bool = False

    def state(self, now: float) -> str:
        if self.cancelled or now >= self.finish_at:
            return "COMPLETED"
        return "IN_PROGRESS" if now >= self.start_at else "IN_QUEUE"


@dataclass
class _HttpFailure:
    remaining: int
    status: int
    kind: str | None
    detail: Any


@dataclass
class _RunFailure:
    remaining: int
    error: str
    status: int


@dataclass
class _Slots:
    """FIFO queue with `size` workers: each request takes the earliest free slot."""

    size: int | None
    free_at: list[float] = field(default_factory=list)

    def schedule(self, now: float, duration: float) -> tuple[float, float]:
        if self.size is None:
            return now, now + duration
        if len(self.free_at) < self.size:
            start = now
        else:
            start = max(now, heapq.heappop(self.free_at))
        heapq.heappush(self.free_at, start + duration)
        return start, start + duration


class FakeFal(FakeServer):
    default_latency_kind = "run"

    def __init__(
        self,
        *,
        latency: float | Mapping[str, float] = 0.0,
        concurrency: int | None = None,
        key: str | None = None,
        video: bytes | None = None,
        user_id: str = "fake-fal-user",
        auto_webhook: bool = False,
    ):
        super().__init__(latency=latency)
        self.key = key
        self.user_id = user_id
        self.auto_webhook = auto_webhook
        self.private_key = Ed25519PrivateKey.generate()
        self.jobs: dict[str, _Job] = {}
        self.webhooks_sent: list[tuple[str, int]] = []  # (request_id, HTTP status)
        self._video = video
        self._slots = _Slots(concurrency)
        self._http_failures: list[_HttpFailure] = []
        self._run_failures: list[_RunFailure] = []
        self._timers: list[threading.Timer] = []

    @property
    def queue_url(self) -> str:
        return f"{self.url}/queue/"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    @property
    def video(self) -> bytes:
        return self._video if self._video is not None else tiny_mp4()

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        super().stop()

    # ------------------------------------------------------------------ scripting

    def fail_next(
        self, n: int = 1, *, status: int = 500, kind: str | None = None, detail: Any = None
    ) -> None:
        if detail is None:
            detail = _VALIDATION_DETAIL if status == 422 else f"Fake failure (HTTP {status})"
        with self.lock:
            self._http_failures.append(_HttpFailure(n, status, kind, detail))

    def fail_runs(self, n: int = 1, *, error: str = "The model failed", status: int = 422) -> None:
        with self.lock:
            self._run_failures.append(_RunFailure(n, error, status))

    # ------------------------------------------------------------------ inspection

    def max_in_progress(self) -> int:
        """The most requests that were IN_PROGRESS at the same time."""
        with self.lock:
            events = sorted(
                [(job.start_at, 1) for job in self.jobs.values()]
                + [(job.finish_at, -1) for job in self.jobs.values()]
            )
        running = peak = 0
        for _, delta in events:
            running += delta
            peak = max(peak, running)
        return peak

    # ------------------------------------------------------------------ serving

    def handle(self, exchange: Exchange) -> None:
        kind = self._route_kind(exchange)
        self.record(exchange, kind=kind)
        self.pause("http")
        if kind in ("jwks", "file", "unknown"):
            self._serve_public(kind, exchange)
            return
        if self.key is not None and exchange.headers.get("authorization") != f"Key {self.key}":
            exchange.send_json(401, {"detail": "No user found for Key ID and Secret"})
            return
        failure = self._take_failure(kind)
        if failure is not None:
            exchange.send_json(failure.status, {"detail": failure.detail})
            return
        if kind == "submit":
            self._submit(exchange)
            return
        match = _REQUEST_PATH.match(exchange.path)
        assert match is not None
        job = self.jobs.get(match.group(3))
        if job is None:
            exchange.send_json(404, {"detail": "Request not found"})
        elif kind == "status":
            exchange.send_json(200, self._status_body(job))
        elif kind == "cancel":
            # Billing follows output: a request cancelled before it finished made none.
            job.cancelled = job.cancelled or time.monotonic() < job.finish_at
            exchange.send_json(202, {"status": "CANCELLATION_REQUESTED"})
        else:
            self._result(exchange, job)

    def _route_kind(self, exchange: Exchange) -> str:
        if exchange.path == "/.well-known/jwks.json":
            return "jwks"
        file_match = _FILE_PATH.match(exchange.path)
        if exchange.method in ("GET", "HEAD") and file_match:
            return "file"
        match = _REQUEST_PATH.match(exchange.path)
        if match:
            suffix = match.group(4)
            if suffix == "/cancel" and exchange.method == "PUT":
                return "cancel"
            if exchange.method == "GET":
                return "status" if suffix == "/status" else "result"
        if exchange.method == "POST" and exchange.path.startswith("/queue/"):
            return "submit"
        return "unknown"

    def _serve_public(self, kind: str, exchange: Exchange) -> None:
        if kind == "jwks":
            exchange.send_json(200, {"keys": [public_jwk(self.private_key)]})
            return
        file_match = _FILE_PATH.match(exchange.path)
        failure = self._take_failure(kind)
        if failure is not None:
            exchange.send_json(failure.status, {"detail": failure.detail})
        elif kind == "file" and file_match and file_match.group(1) in self.jobs:
            exchange.send(200, self.video, "video/mp4")
        else:
            exchange.send_json(404, {"detail": "Not Found"})

    def _take_failure(self, kind: str) -> _HttpFailure | None:
        with self.lock:
            for failure in self._http_failures:
                if failure.remaining > 0 and failure.kind in (None, kind):
                    failure.remaining -= 1
                    return failure
        return None

    def _submit(self, exchange: Exchange) -> None:
        app = exchange.path.removeprefix("/queue/").strip("/")
        parts = app.split("/")
        if parts[0] in ("workflows", "comfy"):
            parts = parts[1:]
        owner_alias = "/".join(parts[:2])
        now = time.monotonic()
        start, finish = self._slots.schedule(now, self.latency_for("run"))
        job = _Job(
            request_id=str(uuid.uuid4()),
            app=app,
            owner_alias=owner_alias,
            arguments=exchange.json(),
            webhook_url=exchange.query.get("fal_webhook"),
            submitted_at=now,
            start_at=start,
            finish_at=finish,
        )
        with self.lock:
            for run_failure in self._run_failures:
                if run_failure.remaining > 0:
                    run_failure.remaining -= 1
                    job.error, job.error_status = run_failure.error, run_failure.status
                    break
            self.jobs[job.request_id] = job
        exchange.send_json(200, {**self._urls(job), "status": "IN_QUEUE", "queue_position": 0})
        if job.webhook_url and self.auto_webhook:
            self._schedule_webhook(job)

    def _urls(self, job: _Job) -> dict[str, str]:
        base = f"{self.queue_url}{job.owner_alias}/requests/{job.request_id}"
        return {
            "request_id": job.request_id,
            "gateway_request_id": job.request_id,
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
        }

    def _status_body(self, job: _Job) -> dict[str, Any]:
        now = time.monotonic()
        state = job.state(now)
        body: dict[str, Any] = {**self._urls(job), "status": state, "logs": None}
        if state == "IN_QUEUE":
            with self.lock:
                body["queue_position"] = sum(
                    other.submitted_at < job.submitted_at and other.state(now) == "IN_QUEUE"
                    for other in self.jobs.values()
                )
        elif state == "COMPLETED":
            body["metrics"] = {"inference_time": job.finish_at - job.start_at}
            if job.error:
                body["error"] = job.error
                body["error_type"] = "app_error"
        return body

    def billed_seconds(self) -> dict[str, float]:
        """What fal bills: the clip length asked for, of every request that completed without
        an error and was not cancelled first."""
        now = time.monotonic()
        with self.lock:
            return {
                job.request_id: float(str((job.arguments or {}).get("duration", "5")).rstrip("s"))
                for job in self.jobs.values()
                if not job.cancelled and not job.error and now >= job.finish_at
            }

    def result_payload(self, job: _Job) -> dict[str, Any]:
        return {
            "video": {
                "url": f"{self.url}/files/{job.request_id}.mp4",
                "content_type": "video/mp4",
                "file_name": f"{job.request_id}.mp4",
            }
        }

    def _result(self, exchange: Exchange, job: _Job) -> None:
        if job.state(time.monotonic()) != "COMPLETED":
            exchange.send_json(400, {"detail": "Request is still in progress"})
        elif job.error:
            exchange.send_json(job.error_status, {"detail": _error_detail(job)})
        else:
            exchange.send_json(200, self.result_payload(job))

    # ------------------------------------------------------------------ webhooks

    def webhook_body(self, request_id: str) -> bytes:
        job = self.jobs[request_id]
        payload: dict[str, Any] = {"request_id": request_id, "gateway_request_id": request_id}
        if job.error:
            payload |= {
                "status": "ERROR",
                "error": f"Invalid status code: {job.error_status}",
                "payload": {"detail": _error_detail(job)},
            }
        else:
            payload |= {"status": "OK", "payload": self.result_payload(job)}
        return json.dumps(payload).encode()

    def webhook_for(
        self,
        request_id: str,
        *,
        timestamp: int | None = None,
        private_key: Ed25519PrivateKey | None = None,
        tamper: bool = False,
        bad_signature: bool = False,
    ) -> tuple[bytes, dict[str, str]]:
        """A webhook delivery (body, headers) signed as fal signs them."""
        body = self.webhook_body(request_id)
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        digest = hashlib.sha256(body).hexdigest()
        message = "\n".join([request_id, self.user_id, stamp, digest]).encode()
        signature = bytearray((private_key or self.private_key).sign(message))
        if bad_signature:
            signature[0] ^= 0xFF
        if tamper:
            body = body.replace(b'"request_id"', b'"request_id" ', 1)
        headers = {
            "Content-Type": "application/json",
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": self.user_id,
            "X-Fal-Webhook-Timestamp": stamp,
            "X-Fal-Webhook-Signature": signature.hex(),
        }
        return body, headers

    def send_webhook(self, url: str, request_id: str, **options: Any) -> httpx.Response:
        body, headers = self.webhook_for(request_id, **options)
        response = httpx.post(url, content=body, headers=headers, timeout=30)
        with self.lock:
            self.webhooks_sent.append((request_id, response.status_code))
        return response

    def _schedule_webhook(self, job: _Job) -> None:
        def deliver() -> None:
            try:
                self.send_webhook(job.webhook_url or "", job.request_id)
            except httpx.HTTPError:
                with self.lock:
                    self.webhooks_sent.append((job.request_id, 0))

        timer = threading.Timer(max(0.0, job.finish_at - time.monotonic()), deliver)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()


def _error_detail(job: _Job) -> Any:
    if job.error_status == 422:
        return [{"loc": ["body"], "msg": job.error, "type": "value_error"}]
    return job.error
