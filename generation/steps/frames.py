"""A scene's shot list (text) and its keyframes; `keyframe_run` redraws one frame's keyframe."""

import threading
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from generation import consistency, costs, services, usage
from generation.consistency import Verdict
from generation.models import GenerationJob
from generation.prompts import frames_prompt, keyframe_prompt, with_instructions
from generation.providers import image_provider, text_provider
from generation.providers.base import PermanentProviderError, TransientProviderError
from generation.schemas import FramePlan
from generation.steps.common import (
    UnitVanished,
    cancel_jobs,
    delete_after_commit,
    finish_with_outcomes,
    first_error,
    gather,
    image_suffix,
    lock_if_still_wanted,
    read_media,
    record_take,
    store_bytes,
    take_seed,
)
from projects.cast import match_names, scene_cast, shot_cast
from projects.models import Character, Frame, Scene, Take, Video
from projects.takes import keyframe_inputs, take_record

UNIT = GenerationJob.TargetType.FRAME


def run(job: GenerationJob) -> None:
    scene = Scene.objects.select_related("project").filter(pk=job.target_id).first()
    if scene is None:
        raise UnitVanished(f"scene {job.target_id} no longer exists")
    project = scene.project
    count = project.frames_per_scene
    cast = scene_cast(scene)
    if scene.frames.filter(source_job_id=job.pk).count() < count:
        prompt = frames_prompt(scene, cast)
        # The project says how many, not the prompt; who is in each shot, from the scene's cast.
        plan = FramePlan.for_cast([c.name for c in cast]).sized(count)
        drafts = text_provider().generate_json(prompt=prompt, schema=plan).frames
        if len(drafts) < count:
            raise TransientProviderError(f"the model wrote {len(drafts)} of {count} shots")
        with transaction.atomic():
            lock_if_still_wanted(job)
            costs.record_unit(job.target_type, job.target_id)
            old = Frame.objects.filter(scene=scene)
            cancel_jobs(
                project,
                types=[
                    GenerationJob.Type.VIDEOS,
                    GenerationJob.Type.KEYFRAME,
                    GenerationJob.Type.IMAGE_EDIT,
                    GenerationJob.Type.AUDIO,
                ],
                frame_ids=list(old.values_list("pk", flat=True)),
            )
            # A new shot list: the kept rows' takes stay as their history; the clips' rows go
            # (their takes stay); shots beyond the new count go with their takes and files.
            Video.objects.filter(frame__scene=scene).delete()
            dropped = old.filter(order__gt=count)
            delete_after_commit(
                *Take.objects.filter(frame__in=dropped).values_list("file", flat=True),
                *dropped.values_list("image", flat=True),
            )
            dropped.delete()
            for order, draft in enumerate(drafts[:count], start=1):
                frame, _ = Frame.objects.update_or_create(
                    scene=scene,
                    order=order,
                    defaults={
                        **draft.model_dump(exclude={"speaker", "characters"}),
                        # A name the scene does not know is the narrator's line.
                        "speaker_id": _speaker(draft.speaker, cast),
                        "duration": float(project.clip_seconds),
                        "status": Frame.Status.GENERATING,
                        "image": "",
                        "keyframe_take": None,
                        "source_job_id": job.pk,
                    },
                )
                in_shot = match_names(draft.characters, cast)
                if frame.speaker_id and frame.speaker_id not in {c.pk for c in in_shot}:
                    in_shot += [c for c in cast if c.pk == frame.speaker_id]  # who speaks is seen
                frame.characters.set(in_shot)
                services.publish_entity(frame)
    services.job_progress(job, 30)
    frames = list(scene.frames.order_by("order"))
    missing = [f for f in frames if not f.image]
    draw_keyframes(job, missing, result={"frame_ids": [f.pk for f in frames]})


def keyframe_run(job: GenerationJob) -> None:
    """One keyframe, drawn again from the frame's text (no text model call)."""
    frame = Frame.objects.select_related("scene__project").filter(pk=job.target_id).first()
    if frame is None:
        raise UnitVanished(f"frame {job.target_id} no longer exists")
    if not frame.prompt:
        raise PermanentProviderError(f"Frame {frame.pk} has no shot text to draw from.")
    draw_keyframes(
        job, [frame], result={"frame_id": frame.pk}, instructions=job.params.get("instructions", "")
    )


def _speaker(name: str, cast: list[Character]) -> int | None:
    """Who speaks, matched like the shot's characters; a name the scene does not know is the
    narrator's line."""
    found = match_names([name], cast)
    return found[0].pk if found else None


def _portraits(frame: Frame) -> tuple[list[Character], list[bytes]]:
    """Who is in the shot and their current portraits: every one of them, or the step fails
    (a keyframe of a character drawn without their portrait is how characters drift)."""
    cast = shot_cast(frame)
    missing = [c.name for c in cast if not c.image]
    if missing:
        raise PermanentProviderError(
            f"Frame {frame.pk}: no portrait of {', '.join(missing)} to draw the keyframe with."
        )
    return cast, [read_media(c.image) for c in cast]


def _earlier_shot(frame: Frame, drawn: dict[int, str]) -> str:
    """The nearest earlier shot of the scene with a keyframe: drawn in this step (`drawn`, by
    order) or before; its image is the continuity reference."""
    for order in range(frame.order - 1, 0, -1):
        if order in drawn:
            return drawn[order]
        earlier = Frame.objects.filter(scene_id=frame.scene_id, order=order).first()
        if earlier is not None and earlier.image:
            return earlier.image
    return ""


@dataclass
class Redraws:
    """How many more keyframes may be drawn for consistency, shared by a step's threads."""

    price: Decimal | None  # one redraw and its judging; None: no redraws
    left: Decimal
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> bool:
        with self.lock:
            if self.price is None or self.left < self.price:
                return False
            self.left -= self.price
            return True


@dataclass
class Try:
    name: str  # the stored image
    prompt: str
    seed: int
    verdict: Verdict | None

    @property
    def score(self) -> float:
        return 1.0 if self.verdict is None else self.verdict.score


@dataclass
class Shot:
    """One keyframe to draw: its prompt and inputs, who is in it, what goes in as references,
    and every try made of it (the best becomes current)."""

    pk: int
    prompt: str
    inputs: dict
    cast: list[Character]
    portraits: list[bytes]
    references: list[bytes]
    tries: list[Try] = field(default_factory=list)

    @property
    def best(self) -> Try:
        return max(self.tries, key=lambda t: t.score)  # the first of equals: the earliest


def draw_keyframes(
    job: GenerationJob, frames: list[Frame], *, result: dict, instructions: str = ""
) -> None:
    """Draw keyframes with the current portraits of the characters in each shot as references,
    and an earlier shot of the scene as a continuity reference (setting, light, wardrobe); each
    becomes its frame's current take, and the job finishes (`finish_with_outcomes`).

    Shots whose previous shot is drawn here too wait for it: the first wave draws those that
    can start now, side by side; the rest follow with the nearest earlier shot drawn. The inputs
    are taken with the prompt (an edit made while the model draws makes the new take stale);
    the continuity reference is not one of them: redoing a shot does not make the next stale.

    Each keyframe is scored against its characters' portraits (`generation.consistency`); below
    the project's threshold it is drawn again with the judge's issues, up to
    CONSISTENCY_MAX_TRIES more times. Every try is kept as a take; the best is current (it
    carries the cost of all the tries), flagged when even it stays below the threshold."""
    project = job.project
    provider = image_provider()
    bar = consistency.threshold(project)
    batch = {(f.scene_id, f.order) for f in frames}
    first = [f for f in frames if (f.scene_id, f.order - 1) not in batch]
    rest = [f for f in frames if (f.scene_id, f.order - 1) in batch]
    drawn: dict[int, dict[int, str]] = {}  # scene -> order -> stored file

    def shot(frame: Frame) -> Shot:
        cast, portraits = _portraits(frame)
        # the scene's props and places after the portraits, the earlier shot last
        things = list(frame.scene.project_objects.exclude(image="").order_by("id"))
        references = [*portraits, *(read_media(o.image) for o in things)]
        earlier = _earlier_shot(frame, drawn.get(frame.scene_id, {}))
        references += [read_media(earlier)] if earlier else []
        prompt = keyframe_prompt(frame, cast, continuity=bool(earlier), objects=things)
        prompt = with_instructions(prompt, instructions)
        return Shot(frame.pk, prompt, keyframe_inputs(frame), cast, portraits, references)

    # Redraws are paid for out of what the budget and the daily cap leave beyond this job's
    # reservation (which counts one try per keyframe): once that is gone, the best try stands.
    redraws = Redraws(
        consistency.redraw_price() if bar is not None else None,
        costs.headroom(project) if bar is not None else Decimal(0),
    )

    def draw(item: Shot) -> str:
        prompt, tries = item.prompt, 1 + (settings.CONSISTENCY_MAX_TRIES if bar else 0)
        for attempt in range(tries):
            seed = take_seed(job, item.pk) + attempt
            with usage.for_unit(UNIT, item.pk):
                data = provider.generate_image(
                    prompt=prompt,
                    references=item.references,
                    aspect_ratio=project.aspect_ratio,
                    seed=seed,
                )
                name = store_bytes(
                    project.pk, "frames", f"frame-{item.pk}", data, image_suffix(data)
                )
                verdict = consistency.judge_or_none(data, item.cast, item.portraits)
            item.tries.append(Try(name, prompt, seed, verdict))
            if bar is None or verdict is None or verdict.score >= bar or not redraws.take():
                break
            prompt = with_instructions(item.prompt, consistency.issues_instructions(verdict))
        return item.best.name

    order_of = {f.pk: (f.scene_id, f.order) for f in frames}
    outcomes = gather(draw, [shot(f) for f in first])
    for item, name in outcomes:
        if isinstance(name, str):
            scene_id, order = order_of[item.pk]
            drawn.setdefault(scene_id, {})[order] = name
    if rest and not first_error(outcomes) and services.job_still_active(job):
        outcomes += gather(draw, [shot(f) for f in rest])  # not paid for once cancelled

    def store(item: Shot, name: str) -> int | None:
        frame = Frame.objects.select_related("scene__project").filter(pk=item.pk).first()
        if frame is None:
            delete_after_commit(*(t.name for t in item.tries if t.name != name))
            return None
        if frame.status != Frame.Status.READY:
            frame.status = Frame.Status.READY
            frame.save(update_fields=["status", "updated_at"])
        best = item.best
        for other in item.tries:
            if other is not best:  # kept as a take, not current
                take_record(
                    project_id=job.project_id,
                    provider=provider.name,
                    model=provider.model,
                    source_job_id=job.pk,
                    file=other.name,
                    prompt=other.prompt,
                    instructions=instructions,
                    seed=other.seed,
                    consistency=_scored(other, bar, len(item.tries)),
                    current=False,
                    kind=Take.Kind.KEYFRAME,
                    frame=frame,
                    inputs=item.inputs,
                )
        take = record_take(
            job,
            provider,
            (UNIT, item.pk),
            file=best.name,
            prompt=best.prompt,
            instructions=instructions,
            seed=best.seed,
            consistency=_scored(best, bar, len(item.tries)),
            kind=Take.Kind.KEYFRAME,
            frame=frame,
            inputs=item.inputs,
        )
        return take.pk

    finish_with_outcomes(job, outcomes, store, result=result)


def _scored(attempt: Try, bar: float | None, tries: int) -> dict | None:
    if attempt.verdict is None:
        return None
    flagged = bar is not None and attempt.verdict.score < bar
    return {**attempt.verdict.as_dict(), "threshold": bar, "flagged": flagged, "tries": tries}
