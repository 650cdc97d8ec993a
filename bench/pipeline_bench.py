"""Bench 1: a whole film, 6 scenes x 4 frames, through the fake Gemini and fal servers with fixed
latencies, driven by the real services and 2 real rq workers, from the first click to `complete`.
"""

# The tables are for people: × (ratios), − and ÷ are meant.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import math
import statistics
import time
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from bench.harness import (
    BenchError,
    Context,
    Result,
    Row,
    StoryGemini,
    bench_user,
    failed_jobs_text,
    job_rows,
    seconds_between,
    warm_fakes,
    workers,
)
from filmstudio.support import wait_for
from generation.services import character_approve, start_character_generation
from projects.models import Character, Frame, Project
from projects.services import project_create
from tests.fakes.fal_server import FakeFal

TEXT_S, IMAGE_S, VIDEO_S = 0.5, 1.0, 8.0
FAL_CONCURRENCY = 8
SCENES, FRAMES, CAST = 6, 4, 4
CLIP_SECONDS = 2
TARGET = 1.1  # makespan ÷ the critical-path bound (issue 18)


def _progress(project_id: int) -> str:

    project = Project.objects.get(pk=project_id)
    counts = Frame.objects.filter(scene__project_id=project_id).aggregate(
        frames=Count("id", filter=Q(status="ready")),
        clips=Count("id", filter=Q(video__status="ready")),
    )
    total = SCENES * FRAMES
    return (
        f"pipeline: {project.status}, keyframes {counts['frames']}/{total}, "
        f"clips {counts['clips']}/{total}"
    )


def run(ctx: Context) -> Result:

    warm_fakes()
    gemini = StoryGemini(latency={"text": TEXT_S, "image": IMAGE_S}).start()
    fal = FakeFal(latency={"run": VIDEO_S}, concurrency=FAL_CONCURRENCY).start()
    ctx.rss.phase = "pipeline"
    try:
        with workers(ctx, ctx.provider_env(gemini, fal)):
            project = project_create(
                owner=bench_user(),
                title="Bench film",
                logline="A lighthouse keeper befriends a storm.",
                num_scenes=SCENES,
                frames_per_scene=FRAMES,
                clip_seconds=CLIP_SECONDS,
            )
            ctx.log(f"pipeline: project {project.pk}, {SCENES}x{FRAMES}, 2 workers started")
            clock_offset = time.time() - time.monotonic()  # fal fake times are monotonic
            start_wall = timezone.now()
            start = time.monotonic()
            start_character_generation(project=project, count=CAST)
            approved_at: float | None = None

            def done() -> bool:
                nonlocal approved_at
                status = Project.objects.values_list("status", flat=True).get(pk=project.pk)
                if status == Project.Status.AWAITING_APPROVAL and approved_at is None:
                    for character in project.characters.filter(status=Character.Status.PENDING):
                        character_approve(character=character)
                    approved_at = time.monotonic()
                if status in (Project.Status.FAILED, Project.Status.CANCELLED):
                    raise BenchError(f"the pipeline {status}: {failed_jobs_text(project.pk)}")
                return status == Project.Status.COMPLETE

            wait_for(
                done,
                timeout=240,
                interval=0.05,
                message="waiting for the film to complete",
                progress=lambda: _progress(project.pk),
                log=ctx.log,
            )
            makespan = time.monotonic() - start
            ctx.log(f"pipeline: complete in {makespan:.1f}s")
    finally:
        gemini.stop()
        fal.stop()

    return _analyse(
        ctx,
        project_id=project.pk,
        makespan=makespan,
        start=start,
        start_wall=start_wall,
        approved_at=approved_at,
        clock_offset=clock_offset,
        gemini=gemini,
        fal=fal,
        step_concurrency=settings.STEP_CONCURRENCY,
    )


def _analyse(
    ctx: Context,
    *,
    project_id: int,
    makespan: float,
    start: float,
    start_wall,
    approved_at: float | None,
    clock_offset: float,
    gemini: StoryGemini,
    fal: FakeFal,
    step_concurrency: int,
) -> Result:
    jobs = job_rows(project_id)

    def since_start(moment) -> float | None:
        return seconds_between(start_wall, moment)

    stitch = [j for j in jobs if j["type"] == "video-stitching" and j["status"] == "succeeded"]
    stitch_s = seconds_between(stitch[-1]["started_at"], stitch[-1]["finished_at"]) or 0.0
    clips = SCENES * FRAMES
    portrait_rounds = math.ceil(CAST / step_concurrency)
    # A scene's first shot is drawn first (the others take it as their continuity reference),
    # then the rest side by side; each keyframe is then scored by the consistency judge (a
    # text call) when the project has a threshold: the requests with images among the texts.
    keyframe_rounds = 1 + math.ceil((FRAMES - 1) / step_concurrency)
    judged = gemini.count(kind="text") - (2 + SCENES) > 0  # beyond cast, scenes and shots
    keyframe_s = IMAGE_S + (TEXT_S if judged else 0.0)
    video_waves = math.ceil(clips / FAL_CONCURRENCY)
    bound = (
        TEXT_S  # cast
        + portrait_rounds * IMAGE_S  # portraits, side by side
        + TEXT_S  # scenes
        + TEXT_S  # shots of a scene (all scenes side by side)
        + keyframe_rounds * keyframe_s  # keyframes of a scene: the first, then the rest
        + video_waves * VIDEO_S  # clips: fal runs FAL_CONCURRENCY at a time
        + stitch_s  # measured
    )
    calls = {
        "text": gemini.count(kind="text"),
        "image": gemini.count(kind="image"),
        "video": len(fal.jobs),
        "fal_status_polls": fal.count(kind="status"),
    }
    sequential = calls["text"] * TEXT_S + calls["image"] * IMAGE_S + calls["video"] * VIDEO_S

    # Where the time went: before the first clip started at fal, while fal worked, after.
    fal_jobs = list(fal.jobs.values())
    fal_first_start = min(j.start_at for j in fal_jobs) - start
    fal_last_finish = max(j.finish_at for j in fal_jobs) - start
    # For each clip: from fal finishing it to the job row being done (poll + download +
    # normalize + store + bookkeeping).
    finished = {
        rid: j["finished_at"] for j in jobs if j["type"] == "video-generation"
        for rid in j["provider_request_ids"]
    }  # fmt: skip
    lags = []
    for fal_job in fal_jobs:
        done_at = finished.get(fal_job.request_id)
        if done_at is not None:
            lags.append(done_at.timestamp() - (fal_job.finish_at + clock_offset))
    phases: dict[str, dict[str, Any]] = {}
    for job_type in (
        "character-generation",
        "scene-generation",
        "frame-generation",
        "video-generation",
        "video-stitching",
    ):
        rows = [j for j in jobs if j["type"] == job_type and j["started_at"]]
        if not rows:
            continue
        runs = [seconds_between(j["started_at"], j["finished_at"]) or 0.0 for j in rows]
        waits = [seconds_between(j["created_at"], j["started_at"]) or 0.0 for j in rows]
        phases[job_type] = {
            "mean_queue_wait_s": statistics.fmean(waits),
            "max_queue_wait_s": max(waits),
            "jobs": len(rows),
            "first_start_s": since_start(min(j["started_at"] for j in rows)),
            "last_finish_s": since_start(max(j["finished_at"] for j in rows if j["finished_at"])),
            "mean_run_s": statistics.fmean(runs),
        }
    characters_done = phases.get("character-generation", {}).get("last_finish_s")
    approval_s = (approved_at - start - characters_done) if approved_at and characters_done else 0

    ratio = makespan / bound
    rows = [
        Row(
            "1",
            f"Pipeline makespan, {SCENES} scenes × {FRAMES} frames, 2 workers",
            f"{makespan:.1f} s",
            f"critical-path lower bound {bound:.1f} s",
            ratio,
            f"≤ {TARGET}×",
            ratio <= TARGET,
        ),
        Row(
            "1b",
            "Pipeline parallelism: sum of provider latencies ÷ makespan",
            f"{sequential:.0f} s sequential",
            f"makespan {makespan:.1f} s",
            sequential / makespan,
        ),
    ]
    notes = [
        f"Bench 1: project of {SCENES} scenes × {FRAMES} frames, {CAST} characters (all approved "
        f"by the bench as soon as they are pending), {CLIP_SECONDS} s clips; fakes: text "
        f"{TEXT_S:g} s, image {IMAGE_S:g} s, video {VIDEO_S:g} s with fal concurrency "
        f"{FAL_CONCURRENCY}; 2 `rqworker --with-scheduler` processes; every clip normalized by "
        "real ffmpeg at MEDIA_BASE_HEIGHT=180, the film stitched by real ffmpeg.",
        f"Bench 1: lower bound = text(cast) {TEXT_S:g} + {portrait_rounds}×image(portraits, "
        f"{CAST} side by side, STEP_CONCURRENCY={step_concurrency}) {IMAGE_S:g} + text(scenes) "
        f"{TEXT_S:g} + text(shots) {TEXT_S:g} + {keyframe_rounds}×(image(keyframe)"
        f"{' + text(judge)' if judged else ''}) {keyframe_s:g} (a scene's first shot, then the "
        f"rest with it as their continuity reference) "
        f"+ ceil({clips}/{FAL_CONCURRENCY})×video {VIDEO_S:g} + stitch (measured) "
        f"{stitch_s:.2f} = {bound:.2f} s. It assumes unlimited workers, no polling delay and "
        "free clip normalization; fal's concurrency is the only contention.",
        f"Bench 1: sequential = {calls['text']} text × {TEXT_S:g} + {calls['image']} image × "
        f"{IMAGE_S:g} + {calls['video']} video × {VIDEO_S:g} = {sequential:.0f} s "
        f"(calls counted by the fakes; {calls['fal_status_polls']} fal status polls).",
        f"Bench 1: time line: first clip started at fal at {fal_first_start:.1f} s "
        f"(bound {3 * TEXT_S + portrait_rounds * IMAGE_S + keyframe_rounds * keyframe_s:.1f} s), "
        "last clip "
        f"finished at fal at {fal_last_finish:.1f} s (fal busy "
        f"{fal_last_finish - fal_first_start:.1f} s for a {video_waves * VIDEO_S:.0f} s bound), "
        f"film complete at {makespan:.1f} s; "
        f"approval by the bench took {approval_s:.2f} s.",
    ]
    if lags:
        notes.append(
            f"Bench 1: clip done at fal → video job succeeded (poll, download, normalize, "
            f"bookkeeping): mean {statistics.fmean(lags):.2f} s, max {max(lags):.2f} s."
        )
    for job_type, phase in phases.items():
        notes.append(
            f"Bench 1: {job_type}: {phase['jobs']} jobs, first start "
            f"{phase['first_start_s']:.1f} s, last finish {phase['last_finish_s']:.1f} s, "
            f"mean run {phase['mean_run_s']:.2f} s, queued (created → started) mean "
            f"{phase['mean_queue_wait_s']:.2f} s, max {phase['max_queue_wait_s']:.2f} s."
        )
    return Result(
        rows,
        notes,
        {
            "makespan_s": makespan,
            "lower_bound_s": bound,
            "ratio": ratio,
            "sequential_s": sequential,
            "stitch_s": stitch_s,
            "calls": calls,
            "fal_first_start_s": fal_first_start,
            "fal_last_finish_s": fal_last_finish,
            "clip_lag_s": lags,
            "approval_s": approval_s,
            "phases": phases,
            "latencies": {"text": TEXT_S, "image": IMAGE_S, "video": VIDEO_S},
            "fal_concurrency": FAL_CONCURRENCY,
            "step_concurrency": step_concurrency,
            "rss_mib": ctx.rss.phase_peaks("pipeline"),
        },
    )
