"""Helpers to run the pipeline in tests: in-process, or with real worker and server processes."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import psutil

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
        if not k.startswith(("GEMINI", "FAL", "PYTEST", "TEST_DATABASE", "MEDIA_S3", "SUPABASE"))
        and k != "PUBLIC_BASE_URL"
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


RQWORKER = [sys.executable, "manage.py", "rqworker", "default", "--with-scheduler",
            "--serializer", "rq.serializers.JSONSerializer"]  # fmt: skip
UVICORN = [sys.executable, "-m", "uvicorn", "filmstudio.asgi:application", "--host", "127.0.0.1",
           "--no-access-log", "--timeout-graceful-shutdown", "2"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_process(command: list[str], env: dict[str, str], log=None) -> subprocess.Popen:
    """A process group of its own, so stopping it ends whatever it forked too."""
    return subprocess.Popen(
        command, env=env, start_new_session=True, stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log else None,
    )  # fmt: skip


def stop_process(proc: subprocess.Popen, *, grace: float = 5) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)
    except ProcessLookupError:
        pass


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a worker and its work horse (RQ puts the horse in a session of its own), as when
    the machine or container dies."""
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


class Workers:
    """Real subprocesses (`rqworker` by default), killed on exit."""

    command = RQWORKER

    def __init__(self, env: dict[str, str], count: int = 1):
        self.env, self.count, self.procs = env, count, []

    def start_one(self) -> subprocess.Popen:
        proc = start_process(self.command, self.env)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        kill_tree(proc)

    def __enter__(self):
        for _ in range(self.count):
            self.start_one()
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            if proc.poll() is None:
                kill_tree(proc)


def server_up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class WebServer:
    """A real uvicorn serving the ASGI app on a free loopback port."""

    def __init__(self, env: dict[str, str]):
        self.port, self.env = free_port(), env
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.proc = start_process([*UVICORN, "--port", str(self.port)], self.env)
        wait_for(lambda: server_up(self.url), timeout=30, message="uvicorn did not start")
        return self

    def __exit__(self, *exc):
        stop_process(self.proc)
