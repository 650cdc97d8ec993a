"""A real uvicorn serving the ASGI app from a thread of the test process (so `settings`
overrides apply to it), on a free loopback port."""

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

from filmstudio.asgi import application


@contextlib.contextmanager
def uvicorn_in_thread(app=application, **config) -> Iterator[str]:
    """The server's base URL for the length of a `with` block."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    options = {"lifespan": "off", "log_level": "warning", **config}
    server = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
