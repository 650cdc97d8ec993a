"""Request bodies over the limit are refused at the ASGI layer, before they are read: by their
Content-Length at once, else by counting bytes as they arrive. A real uvicorn, in a process of
its own, whose memory and temporary files are watched."""

import select
import socket
import threading
import time
from pathlib import Path

import psutil
import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework.authtoken.models import Token

from filmstudio.env import env_path_sizes
from filmstudio.middleware import body_limit
from tests.factories import ProjectFactory
from tests.pipeline import WebServer, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)
MB = 1024 * 1024


class Watch(threading.Thread):
    """Samples a process's RSS and the files it holds open under `folder`."""

    def __init__(self, pid: int, folder: Path):
        super().__init__(daemon=True)
        self.process, self.folder = psutil.Process(pid), str(folder)
        self.peak_rss, self.files = 0, set()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
            for entry in Path(f"/proc/{self.process.pid}/fd").iterdir():
                try:
                    target = str(entry.readlink())
                except OSError:
                    continue
                if target.startswith(self.folder):
                    self.files.add(target)
            time.sleep(0.005)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)


def send_body(
    port: int, path: str, headers: dict[str, str], *, total: int = 0, chunked: bool = True
) -> tuple[int, float, int]:
    """POST up to `total` bytes of body (chunked, or none beyond the headers), reading the
    answer as soon as it comes, as curl does: (status, seconds to the answer, bytes sent)."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    started = time.monotonic()
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    chunk = b"x" * (256 * 1024)
    sent, answer = 0, b""
    try:
        while sent < total and not select.select([sock], [], [], 0)[0]:
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
        if chunked and sent >= total:
            sock.sendall(b"0\r\n\r\n")
    except OSError:  # the server closed while we were still sending: read its answer
        pass
    while b"\r\n" not in answer:
        readable = select.select([sock], [], [], 30)[0]
        assert readable, "no answer within 30 s"
        data = sock.recv(65536)
        if not data:
            break
        answer += data
    seconds = time.monotonic() - started
    sock.close()
    return int(answer.split(b" ", 2)[1]), seconds, sent


@pytest.fixture
def server(settings, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = subprocess_env(
        settings, TMPDIR=str(tmp), MAX_BODY_BYTES_BY_PATH="/api/uploads/*/big=3145728"
    )
    with WebServer(env) as web:
        web.tmp = tmp
        yield web


@pytest.fixture
def auth(user) -> dict[str, str]:
    token, _ = Token.objects.get_or_create(user=user)
    return {"Authorization": f"Token {token.key}", "Content-Type": "application/json"}


def test_a_50_mb_chunked_body_is_refused_as_it_arrives(server, auth):
    port = server.port
    status, _, _ = send_body(port, "/api/projects", auth, total=64 * 1024)  # warm
    assert status == 400
    baseline = psutil.Process(server.proc.pid).memory_info().rss
    watch = Watch(server.proc.pid, server.tmp)
    watch.start()
    try:
        status, seconds, sent = send_body(port, "/api/projects", auth, total=50 * MB)
    finally:
        watch.stop()
    grown = (watch.peak_rss - baseline) / MB
    print(f"{status} after {seconds:.3f} s, {sent / MB:.1f} MB sent, RSS +{grown:.1f} MB")
    assert watch.files == set()  # no temporary file (Django spools a body over 2.5 MB)
    assert list(server.tmp.iterdir()) == []
    assert grown < 5
    assert status == 413
    assert seconds < 2.0
    assert sent < 8 * MB  # answered long before the 50 MB were sent


def test_a_huge_content_length_is_refused_before_any_body(server, auth):
    headers = {**auth, "Content-Length": str(10 * 1024 * MB)}
    status, seconds, _ = send_body(server.port, "/api/projects", headers, chunked=False)
    print(f"{status} after {seconds:.3f} s for a 10 GiB Content-Length")
    assert status == 413
    assert seconds < 1.0


def test_a_path_with_an_allowance_takes_a_bigger_body(server, auth, user):
    project = ProjectFactory(owner=user)
    two_mb = 2 * MB
    status, _, _ = send_body(server.port, "/api/uploads/7/big", auth, total=two_mb)
    assert status == 404  # through to Django, which has no such page
    status, _, _ = send_body(server.port, "/api/projects", auth, total=two_mb)
    assert status == 413
    # The music upload's allowance (MUSIC_MAX_BYTES) goes through the ASGI layer too.
    music = f"/api/projects/{project.pk}/music"
    status, _, _ = send_body(server.port, music, auth, total=two_mb)
    assert status != 413
    status, _, _ = send_body(server.port, music, auth, total=24 * MB)
    assert status == 413


def test_the_longest_matching_prefix_sets_the_limit(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.MAX_BODY_BYTES_BY_PATH = [("/api/uploads", 5000), ("/api/uploads/*/big", 9000)]
    assert body_limit("/api/projects") == 1000
    assert body_limit("/api/uploads/x") == 5000
    assert body_limit("/api/uploads/3/big/") == 9000
    assert body_limit("/api/uploadsx") == 1000
    assert body_limit("/api/projects/4/music") == settings.MUSIC_MAX_BYTES + 64 * 1024


@pytest.mark.parametrize("value", ["api/x=10", "/x=ten", "/x", "/x=0"])
def test_a_malformed_allowance_stops_the_start(monkeypatch, value):
    monkeypatch.setenv("MAX_BODY_BYTES_BY_PATH", f"/fine=2048,{value}")
    with pytest.raises(ImproperlyConfigured, match="MAX_BODY_BYTES_BY_PATH"):
        env_path_sizes("MAX_BODY_BYTES_BY_PATH")
