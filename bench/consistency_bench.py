"""Bench 10: character consistency (issue 17). A 3x3 film through the fake Gemini and fal servers
(real SDKs, 2 real workers); from the fake Gemini's recorded requests:

- 10a: the share of keyframe image requests that carry the portrait of every character in the
  shot (the inline image bytes compared with the portraits' files; target 100 %);
- 10b: the consistency judge's share of the keyframe step's time: the wall time during which a
  judge request (a text request whose prompt mentions "reference portraits") was in flight,
  over the wall time of the keyframe steps (from each scene's first keyframe request to its
  frames job's end). A request's span is the fake's (request read to answer sent), so the
  client's encoding is not in it. The fakes answer without latency: this measures the pass's
  plumbing, not a model's latency (with a real model the share is about the judge's latency
  over the image model's plus the judge's)."""

# The tables are for people: × and ÷ are meant.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import base64
import threading
import time
from typing import Any

from django.core.files.storage import default_storage

from bench.harness import (
    BenchError,
    Context,
    Result,
    Row,
    StoryGemini,
    bench_user,
    failed_jobs_text,
    warm_fakes,
    workers,
)
from filmstudio.support import wait_for
from generation.models import GenerationJob
from generation.services import character_approve, start_character_generation
from projects.cast import shot_cast
from projects.models import Character, Frame, Project, Take
from projects.services import project_create
from tests.fakes import Exchange, RecordedRequest
from tests.fakes.fal_server import FakeFal

SCENES, FRAMES = 3, 3
FAL_MODEL = "fal-ai/kling-video/v2.1/standard/image-to-video"
JUDGE_MARK = "reference portraits"
KEYFRAME_MARK = "Keyframe for shot"


class TimedGemini(StoryGemini):
    """StoryGemini that also records when each request started and ended (wall clock, to set
    against the jobs' timestamps)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.spans: dict[int, tuple[float, float]] = {}
        self._current = threading.local()

    def record(self, exchange: Exchange, **extra: Any) -> RecordedRequest:
        entry = super().record(exchange, **extra)
        self._current.entry, self._current.start = entry, time.time()
        return entry

    def handle(self, exchange: Exchange) -> None:
        try:
            super().handle(exchange)
        finally:
            entry = getattr(self._current, "entry", None)
            if entry is not None:
                with self.lock:
                    self.spans[id(entry)] = (self._current.start, time.time())
                self._current.entry = None


def _text(body: dict) -> str:
    return " ".join(
        part.get("text", "")
        for content in (body or {}).get("contents") or []
        for part in content.get("parts") or []
    )


def _images(body: dict) -> list[bytes]:
    # the SDK sends bytes URL-safe base64 encoded, unpadded
    return [
        base64.urlsafe_b64decode(
            part["inlineData"]["data"] + "=" * (-len(part["inlineData"]["data"]) % 4)
        )
        for content in (body or {}).get("contents") or []
        for part in content.get("parts") or []
        if "inlineData" in part
    ]


def _read(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def _union(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for start, stop in sorted(spans):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def _film(ctx: Context, gemini: TimedGemini, fal: FakeFal) -> Project:
    env = ctx.provider_env(gemini, fal) | {"FAL_MODEL": FAL_MODEL, "SPEECH_PROVIDER": "local"}
    project = project_create(
        owner=bench_user(),
        title=f"Consistency {SCENES}x{FRAMES}",
        logline="A lighthouse keeper befriends a storm.",
        num_scenes=SCENES,
        frames_per_scene=FRAMES,
        clip_seconds=5,
    )
    with workers(ctx, env):
        start_character_generation(project=project)

        def done() -> bool:
            status = Project.objects.values_list("status", flat=True).get(pk=project.pk)
            if status == Project.Status.AWAITING_APPROVAL:
                for character in project.characters.filter(status=Character.Status.PENDING):
                    character_approve(character=character)
            if status in (Project.Status.FAILED, Project.Status.CANCELLED):
                raise BenchError(f"the film {status}: {failed_jobs_text(project.pk)}")
            return status == Project.Status.COMPLETE

        wait_for(done, timeout=300, interval=0.1, message=f"the {SCENES}x{FRAMES} film")
    return project


def _references(gemini: TimedGemini, project: Project) -> dict[str, Any]:
    """Each keyframe request against the portraits of the characters in its shot."""
    frames = list(
        Frame.objects.filter(scene__project=project)
        .select_related("scene")
        .prefetch_related("characters", "scene__characters")
    )
    takes = list(Take.objects.filter(frame__in=frames, kind=Take.Kind.KEYFRAME))
    by_prompt = {t.prompt.strip(): t.frame_id for t in takes}
    wanted = {f.pk: [_read(c.image) for c in shot_cast(f)] for f in frames}
    requests = [r for r in gemini.requests if r.kind == "image" and KEYFRAME_MARK in _text(r.body)]
    carried, unmatched, portraits = 0, 0, 0
    for request in requests:
        text = _text(request.body).strip()
        frame_id = next((pk for prompt, pk in by_prompt.items() if prompt and prompt in text), None)
        if frame_id is None:
            unmatched += 1
            continue
        sent = _images(request.body)
        portraits += len(wanted[frame_id])
        carried += bool(wanted[frame_id]) and sent[: len(wanted[frame_id])] == wanted[frame_id]
    return {
        "keyframe_requests": len(requests),
        "keyframe_takes": len(takes),
        "frames": len(frames),
        "carrying_every_portrait": carried,
        "unmatched_requests": unmatched,
        "portraits_expected": portraits,
    }


def _judge_share(gemini: TimedGemini, project: Project) -> dict[str, Any]:
    """The wall time with a judge request in flight over the keyframe steps' wall time."""
    spans = []
    for request in gemini.requests:
        span = gemini.spans.get(id(request))
        if span is None:
            continue
        text = _text(request.body)
        if request.kind == "image" and KEYFRAME_MARK in text:
            spans.append(("image", text, span))
        elif request.kind == "text" and JUDGE_MARK in text:
            spans.append(("judge", text, span))
    steps = []
    for job in GenerationJob.objects.filter(project=project, type=GenerationJob.Type.FRAMES):
        scene_title = (
            Frame.objects.filter(scene_id=job.target_id)
            .values_list("scene__title", flat=True)
            .first()
        )
        starts = [
            s[0]
            for kind, text, s in spans
            if kind == "image" and f"of scene '{scene_title}'" in text
        ]
        if starts and job.finished_at:
            steps.append((min(starts), job.finished_at.timestamp()))
    judges = [s for kind, _, s in spans if kind == "judge"]
    images = [s for kind, _, s in spans if kind == "image"]
    step_seconds = _union(steps)
    judge_seconds = _union(judges)
    return {
        "judge_requests": len(judges),
        "keyframe_steps": len(steps),
        "step_wall_s": step_seconds,
        "judge_wall_s": judge_seconds,
        "judge_call_s_sum": sum(b - a for a, b in judges),
        "image_call_s_sum": sum(b - a for a, b in images),
        "share": judge_seconds / step_seconds if step_seconds else None,
    }


def run(ctx: Context) -> Result:
    warm_fakes()
    ctx.log(f"consistency: a {SCENES}x{FRAMES} film through the fakes")
    gemini = TimedGemini().start()
    fal = FakeFal(latency={"run": 0.0}, concurrency=64).start()
    try:
        project = _film(ctx, gemini, fal)
        refs = _references(gemini, project)
        timing = _judge_share(gemini, project)
    finally:
        gemini.stop()
        fal.stop()
    tries = [
        (t.consistency or {}).get("tries", 0)
        for t in Take.objects.filter(frame__scene__project=project, kind=Take.Kind.KEYFRAME)
        if t.consistency
    ]
    share = (
        refs["carrying_every_portrait"] / refs["keyframe_requests"]
        if refs["keyframe_requests"]
        else None
    )
    complete = (
        refs["unmatched_requests"] == 0 and refs["keyframe_requests"] == refs["keyframe_takes"]
    )
    rows = [
        Row(
            "10a",
            f"Consistency {SCENES}×{FRAMES}: keyframe requests with every in-shot portrait",
            f"{refs['carrying_every_portrait']} of {refs['keyframe_requests']}",
            f"{refs['keyframe_takes']} keyframe takes",
            share,
            target="1.00",
            holds=share == 1.0 and complete,
        ),
        Row(
            "10b",
            f"Consistency {SCENES}×{FRAMES}: judge's share of the keyframe step's time",
            f"{timing['judge_wall_s']:.3f} s judging",
            f"{timing['step_wall_s']:.3f} s keyframe steps",
            timing["share"],
        ),
    ]
    notes = [
        f"Bench 10a: {refs['keyframe_requests']} keyframe image requests for {refs['frames']} "
        f"frames ({refs['keyframe_takes']} takes, tries per keyframe {sorted(set(tries))}); "
        f"{refs['carrying_every_portrait']} carried every in-shot character's portrait as the "
        f"leading inline images, byte for byte ({refs['portraits_expected']} portraits expected "
        f"in all; {refs['unmatched_requests']} request(s) matched no take).",
        f"Bench 10b: {timing['judge_requests']} judge requests; a judge call in flight "
        f"{timing['judge_wall_s']:.3f} s of the {timing['step_wall_s']:.3f} s the "
        f"{timing['keyframe_steps']} keyframe steps took (calls summed: judge "
        f"{timing['judge_call_s_sum']:.3f} s, keyframe images {timing['image_call_s_sum']:.3f} s). "
        "Spans as the fake sees them; the fakes answer at once, so this is the pass's plumbing, "
        "not a model's latency.",
    ]
    return Result(rows, notes, {"references": refs, "timing": timing, "tries": tries})
