"""A scene's shot list (text) and its keyframes; `keyframe_run` redraws one frame's keyframe."""

from django.db import transaction

from generation import costs, services, usage
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
from projects.takes import keyframe_inputs

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
            speakers = {c.name.strip().lower(): c.pk for c in cast}
            for order, draft in enumerate(drafts[:count], start=1):
                frame, _ = Frame.objects.update_or_create(
                    scene=scene,
                    order=order,
                    defaults={
                        **draft.model_dump(exclude={"speaker", "characters"}),
                        # A name the scene does not know is the narrator's line.
                        "speaker_id": speakers.get(draft.speaker.strip().lower()),
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


def draw_keyframes(
    job: GenerationJob, frames: list[Frame], *, result: dict, instructions: str = ""
) -> None:
    """Draw keyframes with the current portraits of the characters in each shot as references,
    and an earlier shot of the scene as a continuity reference (setting, light, wardrobe); each
    becomes its frame's current take, and the job finishes (`finish_with_outcomes`).

    Shots whose previous shot is drawn here too wait for it: the first wave draws those that
    can start now, side by side; the rest follow with the nearest earlier shot drawn. The inputs
    are taken with the prompt (an edit made while the model draws makes the new take stale);
    the continuity reference is not one of them: redoing a shot does not make the next stale."""
    project = job.project
    provider = image_provider()
    batch = {(f.scene_id, f.order) for f in frames}
    first = [f for f in frames if (f.scene_id, f.order - 1) not in batch]
    rest = [f for f in frames if (f.scene_id, f.order - 1) in batch]
    drawn: dict[int, dict[int, str]] = {}  # scene -> order -> stored file

    def todo(frame: Frame) -> tuple[int, str, dict, list[bytes]]:
        cast, references = _portraits(frame)
        earlier = _earlier_shot(frame, drawn.get(frame.scene_id, {}))
        if earlier:
            references = [*references, read_media(earlier)]
        prompt = keyframe_prompt(frame, cast, continuity=bool(earlier))
        return frame.pk, with_instructions(prompt, instructions), keyframe_inputs(frame), references

    def draw(item: tuple[int, str, dict, list[bytes]]) -> str:
        pk, prompt, _, references = item
        with usage.for_unit(UNIT, pk):
            data = provider.generate_image(
                prompt=prompt,
                references=references,
                aspect_ratio=project.aspect_ratio,
                seed=take_seed(job, pk),
            )
        return store_bytes(project.pk, "frames", f"frame-{pk}", data, image_suffix(data))

    order_of = {f.pk: (f.scene_id, f.order) for f in frames}
    outcomes = gather(draw, [todo(f) for f in first])
    for item, name in outcomes:
        if isinstance(name, str):
            scene_id, order = order_of[item[0]]
            drawn.setdefault(scene_id, {})[order] = name
    if rest and not first_error(outcomes):
        outcomes += gather(draw, [todo(f) for f in rest])

    def store(item: tuple[int, str, dict, list[bytes]], name: str) -> int | None:
        pk, prompt, inputs, _ = item
        frame = Frame.objects.select_related("scene__project").filter(pk=pk).first()
        if frame is None:
            return None
        if frame.status != Frame.Status.READY:
            frame.status = Frame.Status.READY
            frame.save(update_fields=["status", "updated_at"])
        take = record_take(
            job,
            provider,
            (UNIT, pk),
            kind=Take.Kind.KEYFRAME,
            frame=frame,
            file=name,
            inputs=inputs,
            prompt=prompt,
            instructions=instructions,
            seed=take_seed(job, pk),
        )
        return take.pk

    finish_with_outcomes(job, outcomes, store, result=result)
