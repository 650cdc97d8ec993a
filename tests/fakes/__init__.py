"""Fake AI provider servers on loopback, driven through the real SDKs.

    from tests.fakes.gemini_server import FakeGemini
    from tests.fakes.fal_server import FakeFal

Each fake is a ThreadingHTTPServer on 127.0.0.1 (port 0) served from a daemon thread, usable as
a context manager, with `.url`, a `.requests` log and knobs to script latency and errors.
No pytest imports: benchmarks use them too.

A fake adds no latency of its own: each response goes out in one send (status line, headers and
body buffered, then flushed) on a socket with TCP_NODELAY. http.server's default writes the
headers and the body separately, and Nagle's algorithm held the body back until the client's
delayed ACK of the headers: about 40 ms per call on loopback, which the benchmarks counted as
ours.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

# Headers that carry credentials: recorded only as a fingerprint.
CREDENTIAL_HEADERS = frozenset({"authorization", "x-goog-api-key"})


def fingerprint(secret: str) -> str:
    """Same fingerprint as generation.providers.keypool.key_fingerprint."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: dict[str, str]
    headers: dict[str, str]  # credentials removed
    body: Any  # parsed JSON, or None
    key: str = ""  # fingerprint of the credential the request carried
    kind: str = ""  # what the fake took it for ("text", "image", "submit", ...)
    model: str = ""
    started_at: float = field(default_factory=time.monotonic)


class Exchange:
    """One HTTP request and the means to answer it."""

    def __init__(self, handler: BaseHTTPRequestHandler):
        self._handler = handler
        parts = urlsplit(handler.path)
        self.method = handler.command
        self.path = parts.path
        self.query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        self.headers = {name.lower(): value for name, value in handler.headers.items()}
        length = int(self.headers.get("content-length") or 0)
        self.raw_body = handler.rfile.read(length) if length else b""

    def json(self) -> Any:
        try:
            return json.loads(self.raw_body) if self.raw_body else None
        except ValueError:
            return None

    def send(self, status: int, data: bytes, content_type: str, headers: Mapping[str, str] = {}):
        handler = self._handler
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        if self.method != "HEAD":
            handler.wfile.write(data)
        handler.wfile.flush()  # headers and body in one send (when they fit the buffer)

    def send_json(self, status: int, body: Any, headers: Mapping[str, str] = {}) -> None:
        self.send(status, json.dumps(body).encode(), "application/json", headers)

    def start_stream(self, content_type: str = "text/event-stream") -> None:
        """An open-ended body (no Content-Length): the connection closes when it ends."""
        handler = self._handler
        handler.close_connection = True
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.flush()

    def write(self, data: bytes) -> None:
        self._handler.wfile.write(data)
        self._handler.wfile.flush()


class FakeServer:
    """Base of the fakes: serving, request log, latency knobs, in-flight counts."""

    # What a plain number passed as `latency` means for this fake.
    default_latency_kind = "default"

    def __init__(self, *, latency: float | Mapping[str, float] = 0.0):
        if isinstance(latency, Mapping):
            self.latency: dict[str, float] = dict(latency)
        else:
            self.latency = {self.default_latency_kind: float(latency)}
        self.requests: list[RecordedRequest] = []
        self.lock = threading.RLock()
        self.in_flight = 0
        self.peak_in_flight = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # A buffered wfile: a response leaves in one send when Exchange flushes it
            # (http.server flushes after each request too); no Nagle delay on what remains.
            wbufsize = 256 * 1024
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                fake._serve(self)

            do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=type(self).__name__,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ knobs & helpers

    def latency_for(self, kind: str) -> float:
        return self.latency.get(kind, self.latency.get("default", 0.0))

    def pause(self, kind: str) -> None:
        delay = self.latency_for(kind)
        if delay > 0:
            time.sleep(delay)

    def record(self, exchange: Exchange, **extra: Any) -> RecordedRequest:
        secret = next(
            (exchange.headers[name] for name in CREDENTIAL_HEADERS if name in exchange.headers),
            "",
        )
        if secret.lower().startswith("key "):
            secret = secret[4:]
        entry = RecordedRequest(
            method=exchange.method,
            path=exchange.path,
            query=exchange.query,
            headers={k: v for k, v in exchange.headers.items() if k not in CREDENTIAL_HEADERS},
            body=exchange.json(),
            key=fingerprint(secret) if secret else "",
            **extra,
        )
        with self.lock:
            self.requests.append(entry)
        return entry

    def count(self, **match: Any) -> int:
        """Recorded requests whose fields equal `match`, e.g. count(kind="text")."""
        with self.lock:
            return sum(
                all(getattr(r, name) == value for name, value in match.items())
                for r in self.requests
            )

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            self.handle(Exchange(handler))
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the client gave up (e.g. its timeout)
        finally:
            with self.lock:
                self.in_flight -= 1

    def handle(self, exchange: Exchange) -> None:
        raise NotImplementedError
