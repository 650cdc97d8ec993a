"""Bench 3: orchestration overhead. Pipeline steps per second with zero-latency providers vs
plain RQ no-op jobs per second, on the same 2 worker processes.

A step here is one character-generation job: claim the job row, build the prompt from the
database, one structured-text call and 4 portrait calls (side by side) to the fake Gemini
(zero latency, real SDK, real socket), store 4 PNGs, write 4 Character rows, finish the job and
fire its successor logic, with live events throughout. No ffmpeg. Its successor (the approval
gate) starts no further job, so only the measured steps run.
"""

# The tables are for people: × (ratios), − and ÷ are meant.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import statistics
import time

import django_rq
from django.conf import settings
from google.genai import types
from rq.job import Job
from rq.serializers import JSONSerializer

from bench.harness import (
    BenchError,
    Context,
    Result,
    Row,
    ServiceCpu,
    StoryGemini,
    bench_user,
    rq_connection,
    seconds_between,
    workers,
)
from filmstudio.support import wait_for
from generation.models import GenerationJob, UserLimit
from generation.providers.gemini import gemini_client
from generation.schemas import CastPlan
from generation.services import start_character_generation
from projects.services import project_create

NOOPS = 200
STEPS = 24
CAST = 4
ROUNDS = 2  # each measured twice, alternately; the best round of each counts (less noise)
TARGET = 0.5


def run(ctx: Context) -> Result:
    gemini = StoryGemini(latency=0.0).start()
    ctx.rss.phase = "overhead"
    try:
        calls_s = _provider_calls_seconds(gemini.url)
        with workers(ctx, ctx.provider_env(gemini)):
            noop_rounds, step_rounds = [], []
            for index in range(ROUNDS):
                noop_rounds.append(_noops(ctx, index))
                step_rounds.append(_steps(ctx, index))
    finally:
        gemini.stop()
    noop = max(noop_rounds, key=lambda r: r["rate"])
    steps = max(step_rounds, key=lambda r: r["rate"])
    ratio = steps["rate"] / noop["rate"]
    # What a step costs the machine outside this project's Python: its provider calls through
    # the real SDK and the fake's answers, and PostgreSQL's and Redis's work for it. Were the
    # rest free, a step would still take the no-op's worker time plus this.
    # (RQ's own work in Redis and PostgreSQL, the no-op's as well, is in its time already.)
    services_s = sum(steps[k] - noop[k] for k in ("postgres_cpu_s", "redis_cpu_s"))
    outside_s = calls_s + max(0.0, services_s)
    ceiling = noop["per_job_wall_s"] / (noop["per_job_wall_s"] + outside_s)
    rows = [
        Row(
            "3",
            "Orchestration: pipeline steps/s, zero-latency providers, 2 workers",
            f"{steps['rate']:.1f} steps/s",
            f"RQ no-op jobs {noop['rate']:.1f}/s",
            ratio,
            f"≥ {TARGET}×",
            ratio >= TARGET,
        ),
        Row(
            "3f",
            "Ceiling of row 3: a step whose own Python cost nothing",
            f"{outside_s * 1000:.1f} ms a step outside it",
            f"no-op {noop['per_job_wall_s'] * 1000:.1f} ms",
            ceiling,
        ),
    ]
    notes = [
        f"Bench 3: a step = one character-generation job ({CAST} characters: 1 text + {CAST} "
        f"image calls to the zero-latency fake Gemini, {CAST} PNGs stored, rows, job bookkeeping,"
        f" live events; no ffmpeg). {STEPS} steps on {STEPS} projects, enqueued at once; rate = "
        f"steps ÷ (last finished_at − first started_at); best of {ROUNDS} rounds, alternating "
        f"with the no-op rounds (steps/s {_rates(step_rounds)}, no-ops/s {_rates(noop_rounds)})."
        f" Mean step {steps['mean_s'] * 1000:.0f} ms"
        f" inside the job, {steps['per_job_wall_s'] * 1000:.0f} ms of worker time per step "
        f"(2 workers); {NOOPS} no-op jobs: {noop['per_job_wall_s'] * 1000:.0f} ms of worker "
        "time per job (rq's fork per job included in both).",
        f"Bench 3f: a step's provider calls alone (1 structured text + {CAST} images through "
        f"google-genai, answered by the fake in this process) take {calls_s * 1000:.1f} ms of "
        f"CPU (the best of 20); the bench's PostgreSQL backends "
        f"{steps['postgres_cpu_s'] * 1000:.1f} ms and its Redis "
        f"{steps['redis_cpu_s'] * 1000:.1f} ms a step, less what they take for a no-op job "
        f"({noop['postgres_cpu_s'] * 1000:.1f} and {noop['redis_cpu_s'] * 1000:.1f} ms: RQ's "
        "own work, counted in the no-op's time). With nothing else, a step would take "
        f"{noop['per_job_wall_s'] * 1000:.0f} + "
        f"{outside_s * 1000:.0f} ms of worker time: row 3 could reach {ceiling:.2f}× at most.",
    ]
    data = {
        "noop": noop,
        "steps": steps,
        "ratio": ratio,
        "rounds": [noop_rounds, step_rounds],
        "provider_calls_cpu_s": calls_s,
        "outside_s": outside_s,
        "ceiling": ceiling,
    }
    return Result(rows, notes, data)


def _provider_calls_seconds(url: str, repeats: int = 20) -> float:
    """CPU of one step's provider calls (as `generation.steps.characters` makes them) through
    the real SDK against the fake, which answers in this process: the client's work and the
    server's, per step (best of `repeats`, after one to warm up)."""
    client = gemini_client("bench-key-1", url, 60_000)
    plan = CastPlan.sized(CAST)
    text = types.GenerateContentConfig(response_mime_type="application/json", response_schema=plan)

    def one_step() -> None:
        client.models.generate_content(
            model=settings.GEMINI_TEXT_MODEL,
            # As `generation.prompts.cast_prompt` asks (the fake reads the count from it).
            contents=[f"A film about a lighthouse keeper.\n\nCreate {CAST} new characters."],
            config=text,
        )
        for seed in range(CAST):
            image = types.GenerateContentConfig(
                response_modalities=["IMAGE"],
                image_config=types.ImageConfig(aspect_ratio="1:1"),
                seed=seed,
            )
            client.models.generate_content(
                model=settings.GEMINI_IMAGE_MODEL, contents=["A portrait."], config=image
            )

    one_step()
    times = []
    for _ in range(repeats):
        began = time.process_time()
        one_step()
        times.append(time.process_time() - began)
    return min(times)


def _rates(rounds: list[dict[str, float]]) -> str:
    return " / ".join(f"{r['rate']:.1f}" for r in rounds)


def _noops(ctx: Context, round_index: int) -> dict[str, float]:
    queue = django_rq.get_queue("default")
    ctx.log(f"overhead: {NOOPS} RQ no-op jobs")
    ids = [f"bench-noop-{round_index}-{i}" for i in range(NOOPS)]
    registry = queue.finished_job_registry
    already = registry.count
    services = ServiceCpu().start()
    for job_id in ids:
        queue.enqueue("bench.tasks.noop", job_id=job_id, result_ttl=600)
    wait_for(
        lambda: registry.count >= already + NOOPS,
        timeout=120,
        message="waiting for the no-op jobs",
        progress=lambda: f"overhead: {registry.count - already}/{NOOPS} no-op jobs done",
        log=ctx.log,
    )
    used = services.stop()
    jobs = Job.fetch_many(ids, connection=rq_connection(), serializer=JSONSerializer)
    started = min(j.started_at for j in jobs if j)
    ended = max(j.ended_at for j in jobs if j)
    span = (ended - started).total_seconds()
    return {
        "jobs": NOOPS,
        "span_s": span,
        "rate": NOOPS / span,
        "per_job_wall_s": 2 * span / NOOPS,
        "postgres_cpu_s": used["postgres"] / NOOPS,
        "redis_cpu_s": used["redis"] / NOOPS,
    }


def _steps(ctx: Context, round_index: int) -> dict[str, float]:
    user = bench_user("bench-overhead")
    # The steps run on STEPS projects at once: past the default limit of active projects.
    UserLimit.objects.update_or_create(
        user=user, defaults={"max_active_projects": STEPS, "daily_spend_usd": 100000}
    )
    projects = [
        project_create(
            owner=user, title=f"Overhead {round_index}.{i}", num_scenes=1, frames_per_scene=1
        )
        for i in range(STEPS)
    ]
    ctx.log(f"overhead: {STEPS} character-generation steps with zero-latency providers")
    services = ServiceCpu().start()
    start = time.monotonic()
    for project in projects:
        start_character_generation(project=project, count=CAST)
    jobs = GenerationJob.objects.filter(project__in=projects, type=GenerationJob.Type.CHARACTERS)

    def done() -> bool:
        if jobs.filter(status=GenerationJob.Status.FAILED).exists():
            failed = jobs.filter(status=GenerationJob.Status.FAILED).first()
            raise BenchError(f"a step failed: {failed.error[:300]}")
        return jobs.filter(status=GenerationJob.Status.SUCCEEDED).count() == STEPS

    wait_for(
        done,
        timeout=180,
        interval=0.05,
        message="waiting for the steps",
        progress=lambda: f"overhead: {jobs.filter(status='succeeded').count()}/{STEPS} steps done",
        log=ctx.log,
    )
    wall = time.monotonic() - start
    used = services.stop()
    rows = list(jobs.values("started_at", "finished_at"))
    span = seconds_between(min(r["started_at"] for r in rows), max(r["finished_at"] for r in rows))
    runs = [seconds_between(r["started_at"], r["finished_at"]) for r in rows]
    return {
        "steps": STEPS,
        "span_s": span,
        "wall_s": wall,
        "rate": STEPS / span,
        "mean_s": statistics.fmean(runs),
        "per_job_wall_s": 2 * span / STEPS,
        "postgres_cpu_s": used["postgres"] / STEPS,
        "redis_cpu_s": used["redis"] / STEPS,
    }
