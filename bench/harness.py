"""What every benchmark shares: workers and uvicorn (started through filmstudio.support, like the
tests and the dev stack), the fake providers, RSS sampling, and fixtures built through the real
models.

Imported by bench/run.py after it has pointed DATABASE_URL / REDIS_URL at the bench's own
database and Redis DB and called django.setup().
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import django_rq
import psutil
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token
from rq import Worker

from filmstudio.support import (
    free_port,
    running,
    start_process,
    stop_process,
    wait_for,
    web_command,
    web_up,
    worker_command,
)
from generation import schemas
from generation.models import GenerationJob
from generation.providers.local import LocalText
from generation.steps.common import store_bytes
from projects.models import Character, Frame, Project, Scene, Video
from projects.services import project_create
from tests.fakes.fal_server import FakeFal, tiny_mp4
from tests.fakes.gemini_server import FakeGemini, _prompt_text, _text_response, tiny_png

WORKERS = 2


class BenchError(RuntimeError):
    """A benchmark could not produce its figure (a step failed, a wait timed out)."""


# --------------------------------------------------------------------------- context


@dataclass
class Context:
    """Handed to every benchmark: the subprocess environment, logging and the RSS sampler."""

    env: dict[str, str]  # base environment of workers and servers (bench DB, Redis, media)
    log: Callable[[str], None]
    worker_class: str | None = None  # an experiment: `filmworker --worker-class ...`
    rss: RssSampler = field(default_factory=lambda: RssSampler())  # noqa: PLW0108 (defined below)
    profile_dir: Path | None = None  # py-spy profiles of workers and servers go here

    def provider_env(
        self, gemini: FakeGemini | None = None, fal: FakeFal | None = None
    ) -> dict[str, str]:
        """Environment of a worker that talks to the fake providers (real SDKs, real sockets)."""
        env = dict(self.env)
        if gemini is not None:
            env |= {
                "GEMINI_API_KEYS": "bench-key-1",
                "GEMINI_BASE_URL": gemini.url,
                "TEXT_PROVIDER": "gemini",
                "IMAGE_PROVIDER": "gemini",
            }
        if fal is not None:
            env |= {
                "FAL_KEY": "bench-fal-key",
                "FAL_QUEUE_URL_FORMAT": fal.queue_url,
                "FAL_JWKS_URL": fal.jwks_url,
                "VIDEO_PROVIDER": "fal",
            }
        return env


# --------------------------------------------------------------------------- processes


def rq_connection():
    return django_rq.get_connection("default")


def reset_redis() -> None:
    """Empty the bench's Redis DB: no queued job, registry or worker record of a prior bench."""
    rq_connection().flushdb()


@contextlib.contextmanager
def workers(ctx: Context, env: Mapping[str, str], count: int = WORKERS) -> Iterator[list[int]]:
    """`count` real `manage.py filmworker` processes; yields their pids once all have registered."""
    reset_redis()
    command = worker_command(*(["--worker-class", ctx.worker_class] if ctx.worker_class else []))
    log_path = Path(env["VAR_DIR"]) / "bench-workers.log"
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(running(command, env, log=log_path, grace=0)) for _ in range(count)
        ]
        connection = rq_connection()

        def registered() -> bool:
            if any(p.poll() is not None for p in procs):
                raise BenchError(f"a worker exited at start; see {log_path}")
            return len(Worker.all(connection=connection)) >= count

        wait_for(registered, timeout=60, message="the workers did not register")
        pids = [p.pid for p in procs]
        ctx.rss.baseline("worker", pids)
        with profiled(ctx, "worker", pids):
            yield pids
        ctx.rss.stop_watching(pids)


@contextlib.contextmanager
def web_server(ctx: Context, env: Mapping[str, str]) -> Iterator[tuple[str, int]]:
    """A real `uvicorn filmstudio.asgi:application`, one process; yields (base URL, pid)."""
    port = free_port()
    command = web_command(port, "--log-level", "warning")
    log_path = Path(env["VAR_DIR"]) / "bench-web.log"
    url = f"http://127.0.0.1:{port}"
    with running(command, env, log=log_path, grace=0) as proc:

        def up() -> bool:
            if proc.poll() is not None:
                raise BenchError(f"uvicorn exited at start; see {log_path}")
            return web_up(url)

        wait_for(up, timeout=60, message="uvicorn did not answer /healthz")
        ctx.rss.baseline("web", [proc.pid])
        with profiled(ctx, "web", [proc.pid]):
            yield url, proc.pid
        ctx.rss.stop_watching([proc.pid])


@contextlib.contextmanager
def profiled(ctx: Context, label: str, pids: list[int]) -> Iterator[None]:
    """With --profile: py-spy records `pids` and their forked children (collapsed stacks)."""
    if ctx.profile_dir is None:
        yield
        return

    binary = os.environ.get("BENCH_PYSPY") or shutil.which("py-spy")
    if not binary:
        raise BenchError("--profile needs py-spy (pip install py-spy; or set BENCH_PYSPY)")
    ctx.profile_dir.mkdir(parents=True, exist_ok=True)
    spies = []
    for pid in pids:
        out = ctx.profile_dir / f"{ctx.rss.phase or 'bench'}-{label}-{pid}.txt"
        command = [binary, "record", "-p", str(pid), "-f", "raw", "-o", str(out), "-r", "200"]
        if label == "worker":
            command.append("--subprocesses")
        spies.append(start_process(command, log=ctx.profile_dir / "py-spy.log"))
    try:
        yield
    finally:
        for spy in spies:
            with contextlib.suppress(ProcessLookupError):
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for spy in spies:
            try:
                spy.wait(timeout=20)
            except subprocess.TimeoutExpired:
                stop_process(spy, grace=0)
        ctx.log(f"{label}: py-spy profiles written to {ctx.profile_dir}")


# --------------------------------------------------------------------------- RSS


class RssSampler:
    """Samples the RSS of watched process trees every 100 ms from a daemon thread.

    For each label ("worker", "web") it keeps the RSS measured right after start-up (the
    baseline) and the peak under load, separately for the watched process itself ("main") and
    for the Python processes it forked (rq's work horses and scheduler: "child"). Other
    programs it runs (ffmpeg) are kept apart ("tool").
    """

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self._lock = threading.Lock()
        self._watched: dict[int, tuple[str, psutil.Process]] = {}
        self.idle: dict[str, float] = {}
        self.peaks: dict[str, dict[str, float]] = {}
        self.phase = ""
        self._phase_peaks: dict[tuple[str, str], dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)

    def baseline(self, label: str, pids: list[int]) -> None:
        """Start watching `pids`; their RSS now (idle, after start-up) is the baseline."""
        rss = []
        with self._lock:
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    process = psutil.Process(pid)
                    self._watched[pid] = (label, process)
                    rss.append(process.memory_info().rss)
        if rss:
            self.idle[label] = max(self.idle.get(label, 0.0), max(rss) / 2**20)

    def stop_watching(self, pids: list[int]) -> None:
        self.sample()
        with self._lock:
            for pid in pids:
                self._watched.pop(pid, None)

    def phase_peaks(self, phase: str) -> dict[str, dict[str, float]]:
        """Peaks seen while `phase` was current, per label."""
        out: dict[str, dict[str, float]] = {}
        for (label, name), peaks in self._phase_peaks.items():
            if name == phase:
                out[label] = dict(peaks)
        return out

    def _bump(self, label: str, kind: str, mib: float) -> None:
        for bucket in (
            self.peaks.setdefault(label, {}),
            self._phase_peaks.setdefault((label, self.phase), {}),
        ):
            bucket[kind] = max(bucket.get(kind, 0.0), mib)

    def sample(self) -> None:
        with self._lock:
            watched = list(self._watched.values())
        for label, process in watched:
            try:
                self._bump(label, "main", process.memory_info().rss / 2**20)
                children = process.children(recursive=True)
            except psutil.Error:
                continue
            for child in children:
                try:
                    kind = "child" if "python" in child.name().lower() else "tool"
                    self._bump(label, kind, child.memory_info().rss / 2**20)
                except psutil.Error:
                    continue

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


# --------------------------------------------------------------------------- fake providers


_PLANS = {"characters": "CastPlan", "scenes": "ScenePlan", "frames": "FramePlan"}


def _has_images(body: dict) -> bool:
    return any(
        "inlineData" in part
        for content in body.get("contents") or []
        for part in content.get("parts") or []
    )


def _schema_of(body: dict) -> dict:
    config = body.get("generationConfig") or {}
    return config.get("responseJsonSchema") or config.get("responseSchema") or {}


# How many items the pipeline's prompts ask for (generation.prompts), by plan: the last match,
# since the project's own text (a synopsis) comes first.
_COUNTS = {
    "characters": re.compile(r"Create (\d{1,3}) new characters"),
    "scenes": re.compile(r"exactly (\d{1,3}) scenes"),
    "frames": re.compile(r"exactly (\d{1,3}) shots"),
}


class StoryGemini(FakeGemini):
    """FakeGemini whose structured text has the size the prompt asks for.

    The stock fake answers a minimal instance of the response schema (a couple of items per
    array). The pipeline checks that it got the number of characters, scenes and shots it asked
    for, so this subclass reads that number in the prompt, as a model would, and writes the
    plan the way the offline provider does (generation.providers.local.LocalText, which takes
    the number from the plan's size and the cast's names from the prompt).
    """

    def _answer(self, kind: str, model: str, body: dict, block: Any) -> dict:
        # A plan is asked in words only; a text request with images (the consistency judge's,
        # whose verdict is also a list of `characters`) is answered by the stock fake.
        if kind == "text" and block is None and not _has_images(body):
            properties = set((_schema_of(body).get("properties") or {}).keys())
            field_name = next((p for p in properties if p in _PLANS), None)
            if field_name is not None:
                prompt = _prompt_text(body)
                asked = _COUNTS[field_name].findall(prompt)
                plan = getattr(schemas, _PLANS[field_name]).sized(int(asked[-1]) if asked else 3)
                document = LocalText().generate_json(prompt=prompt, schema=plan)
                return _text_response(document.model_dump_json(), model)
        return super()._answer(kind, model, body, block)


def warm_fakes() -> None:
    """Make the fakes' canned media before any timing (the fal fake renders its clip once)."""
    tiny_mp4()
    tiny_png("16:9")


# --------------------------------------------------------------------------- fixtures


def bench_user(username: str = "bench"):
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def user_token(user) -> str:
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


def build_project(
    user,
    *,
    title: str,
    scenes: int,
    frames: int,
    clip_seconds: int = 2,
    characters: int = 4,
    keyframes: bool = True,
    videos: bool = False,
    store_files: bool = True,
):
    """A project whose cast is approved and whose scenes and frames exist (with keyframes and,
    optionally, ready clips), made through the models as the pipeline would have left them."""
    project = project_create(
        owner=user,
        title=title,
        logline="A lighthouse keeper befriends a storm.",
        genre="drama",
        style="painterly, cinematic",
        num_scenes=scenes,
        frames_per_scene=frames,
        clip_seconds=clip_seconds,
        aspect_ratio="16:9",
    )
    png = tiny_png("16:9", seed=title)

    def media(kind: str, stem: str, data: bytes, suffix: str) -> str:
        if store_files:
            return store_bytes(project.pk, kind, stem, data, suffix)
        return f"{project.pk}/{kind}/{stem}-000000000000{suffix}"

    cast = [
        Character.objects.create(
            project=project,
            name=f"Person {i + 1}",
            role="protagonist" if i == 0 else "supporting",
            description="Keeps the light burning.",
            appearance="Weathered oilskin coat.",
            personality="Quiet and stubborn.",
            status=Character.Status.APPROVED,
            image=media("characters", f"character-{i}", png, ".png"),
            slot=i,
        )
        for i in range(characters)
    ]
    clip = tiny_mp4() if videos and store_files else b""
    for s in range(1, scenes + 1):
        scene = Scene.objects.create(
            project=project,
            order=s,
            title=f"Scene {s}",
            concise_plot="The storm arrives.",
            detailed_plot="The keeper climbs the tower as the storm arrives.",
            dialogue="Person 1: We hold on until morning.",
            location="the lighthouse",
            mood="tense",
            status=Scene.Status.READY,
        )
        scene.characters.set(cast[:2])
        for f in range(1, frames + 1):
            frame = Frame.objects.create(
                scene=scene,
                order=f,
                prompt=f"Shot {f}: the keeper in the wind.",
                camera="medium shot, handheld",
                dialogue="Person 1: Hold on.",
                duration=float(clip_seconds),
                status=Frame.Status.READY if keyframes else Frame.Status.PENDING,
                image=media("frames", f"frame-{s}-{f}", png, ".png") if keyframes else "",
            )
            if videos:
                Video.objects.create(
                    frame=frame,
                    status=Video.Status.READY,
                    file=media("videos", f"frame-{frame.pk}", clip, ".mp4"),
                    duration=float(clip_seconds),
                )
    status = Project.Status.COMPLETE if videos else Project.Status.GENERATING_FRAMES
    Project.objects.filter(pk=project.pk).update(status=status)
    project.refresh_from_db()
    return project


def job_rows(project_id: int) -> list[dict[str, Any]]:
    return list(
        GenerationJob.objects.filter(project_id=project_id)
        .order_by("id")
        .values(
            "id",
            "type",
            "status",
            "parent_id",
            "error",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "provider_request_ids",
        )
    )


def failed_jobs_text(project_id: int) -> str:
    rows = [r for r in job_rows(project_id) if r["status"] == "failed" and r["error"]]
    return "; ".join(f"{r['type']} #{r['id']}: {r['error'][:200]}" for r in rows[:3])


# --------------------------------------------------------------------------- results


class ServiceCpu:
    """CPU seconds the bench's PostgreSQL backends (of its database, other than this process's
    own) and its Redis server use between `start()` and `stop()`. A backend that ends in
    between is not counted: what they used is at least this much, never less."""

    def start(self) -> ServiceCpu:
        self._backends = self._backend_cpu()
        self._redis = self._redis_cpu()
        return self

    def stop(self) -> dict[str, float]:
        backends = self._backend_cpu()
        postgres = sum(cpu - self._backends.get(pid, 0.0) for pid, cpu in backends.items())
        return {"postgres": max(0.0, postgres), "redis": max(0.0, self._redis_cpu() - self._redis)}

    @staticmethod
    def _backend_cpu() -> dict[int, float]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            pids = [pid for (pid,) in cursor.fetchall()]
        found = {}
        for pid in pids:
            with contextlib.suppress(psutil.Error):  # ended meanwhile, or another host's
                times = psutil.Process(pid).cpu_times()
                found[pid] = times.user + times.system
        return found

    @staticmethod
    def _redis_cpu() -> float:
        info = rq_connection().info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@dataclass
class Row:
    """One line of the summary table: a figure, the baseline it is divided by, the ratio."""

    id: str
    name: str
    measured: str
    baseline: str
    ratio: float | None
    target: str = ""
    holds: bool | None = None  # None: no target

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "measured": self.measured,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "target": self.target,
            "holds": self.holds,
        }


@dataclass
class Result:
    rows: list[Row]
    notes: list[str] = field(default_factory=list)  # printed under the table, kept in the JSON
    data: dict[str, Any] = field(default_factory=dict)


def seconds_between(start, end) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()
