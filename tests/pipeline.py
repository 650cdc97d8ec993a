"""Helpers to run the pipeline in tests."""

import time

from generation.inline import work_once


def drain(*, rounds: int = 300) -> None:
    """Run every queued and scheduled job (polls, back-offs: at once) until nothing is left."""
    for _ in range(rounds):
        if not work_once(everything=True):
            return
    raise AssertionError("the pipeline did not settle")


def wait_for(predicate, *, timeout: float = 60, interval: float = 0.1, message: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(message or "condition not met in time")


def database_url(db: dict) -> str:
    """A DATABASE_URL for the test database, for subprocesses (workers, web servers)."""
    from urllib.parse import quote

    auth = quote(db["USER"] or "")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"])
    host = db["HOST"] or ""
    if host.startswith("/"):
        return f"postgresql://{auth}@/{db['NAME']}?host={quote(host)}"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgresql://{auth}@{host}{port}/{db['NAME']}"


def subprocess_env(settings, **extra) -> dict[str, str]:
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GEMINI", "FAL", "PYTEST", "TEST_DATABASE"))
    }
    env.update(
        DATABASE_URL=database_url(settings.DATABASES["default"]),
        REDIS_URL=settings.REDIS_URL,
        DJANGO_DEBUG="true",
        SECRET_KEY=settings.SECRET_KEY,  # the same signed URLs and sessions as the test process
        VAR_DIR=str(settings.VAR_DIR),
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        MEDIA_BASE_HEIGHT=str(settings.MEDIA_BASE_HEIGHT),
        MEDIA_FPS=str(settings.MEDIA_FPS),
        VIDEO_POLL_INTERVAL=str(settings.VIDEO_POLL_INTERVAL),
        PROVIDER_BACKOFF_BASE=str(settings.PROVIDER_BACKOFF_BASE),
        PROVIDER_BACKOFF_CAP=str(settings.PROVIDER_BACKOFF_CAP),
        JOB_HEARTBEAT_INTERVAL="0.2",
        LOG_LEVEL="warning",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Workers:
    """Real `rqworker` subprocesses, each in its own process group, killed on exit."""

    def __init__(self, env: dict[str, str], count: int = 1):
        self.env, self.count, self.procs = env, count, []

    def start_one(self):
        import subprocess
        import sys

        proc = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "rqworker",
                "default",
                "--with-scheduler",
                "--serializer",
                "rq.serializers.JSONSerializer",
            ],
            env=self.env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    def kill(self, proc, sig=None) -> None:
        """SIGKILL the worker and its work horse (RQ puts the horse in a session of its own),
        as when the machine or container dies."""
        import signal

        import psutil

        try:
            family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            family = []
        for member in family:
            try:
                member.send_signal(sig or signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        proc.wait(timeout=10)

    def __enter__(self):
        for _ in range(self.count):
            self.start_one()
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc)


class WebServer:
    """A real uvicorn serving the ASGI app on a free loopback port, in its own process group."""

    def __init__(self, env: dict[str, str]):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.env = env
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        import subprocess
        import sys

        import httpx

        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "filmstudio.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=self.env,
            start_new_session=True,
        )

        def up() -> bool:
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=30, message="uvicorn did not start")
        return self

    def __exit__(self, *exc):
        import os
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (ProcessLookupError, Exception):
            os.killpg(self.proc.pid, signal.SIGKILL)
