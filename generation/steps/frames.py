"""A scene's shot list (text) and its keyframes; `keyframe_run` redraws one frame's keyframe."""

from django.db import transaction

from generation import services
from generation.models import GenerationJob
from generation.prompts import frames_prompt, keyframe_prompt, with_instructions
from generation.providers import image_provider, text_provider
from generation.providers.base import PermanentProviderError, TransientProviderError
from generation.schemas import FramePlan
from generation.steps.common import (
    UnitVanished,
    cancel_jobs,
    delete_after_commit,
    first_error,
    gather,
    image_suffix,
    lock_if_still_wanted,
    read_media,
    record_take,
    store_bytes,
    take_seed,
)
from projects.models import Character, Frame, Scene, Take, Video
from projects.takes import keyframe_inputs


def scene_cast(scene: Scene) -> list[Character]:
    return list(scene.characters.filter(status=Character.Status.APPROVED).order_by("id"))


def run(job: GenerationJob) -> None:
    scene = Scene.objects.select_related("project").filter(pk=job.target_id).first()
    if scene is None:
        raise UnitVanished(f"scene {job.target_id} no longer exists")
    project = scene.project
    count = project.frames_per_scene
    cast = scene_cast(scene)
    if scene.frames.filter(source_job_id=job.pk).count() < count:
        prompt = frames_prompt(scene, cast)
        drafts = text_provider().generate_json(prompt=prompt, schema=FramePlan).frames
        if len(drafts) < count:
            raise TransientProviderError(f"the model wrote {len(drafts)} of {count} shots")
        with transaction.atomic():
            lock_if_still_wanted(job)
            old = Frame.objects.filter(scene=scene)
            cancel_jobs(
                project,
                types=[GenerationJob.Type.VIDEOS, GenerationJob.Type.KEYFRAME],
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
                        **draft.model_dump(),
                        "duration": float(project.clip_seconds),
                        "status": Frame.Status.GENERATING,
                        "image": "",
                        "keyframe_take": None,
                        "source_job_id": job.pk,
                    },
                )
                services.publish_entity(frame)
    services.job_progress(job, 30)
    frames = list(scene.frames.order_by("order"))
    draw_keyframes(job, [f for f in frames if not f.image], cast)
    services.job_succeed(job, {"frame_ids": [f.pk for f in frames]})


def keyframe_run(job: GenerationJob) -> None:
    """One keyframe, drawn again from the frame's text (no text model call)."""
    frame = Frame.objects.select_related("scene__project").filter(pk=job.target_id).first()
    if frame is None:
        raise UnitVanished(f"frame {job.target_id} no longer exists")
    if not frame.prompt:
        raise PermanentProviderError(f"Frame {frame.pk} has no shot text to draw from.")
    take_ids = draw_keyframes(
        job, [frame], scene_cast(frame.scene), instructions=job.params.get("instructions", "")
    )
    services.job_succeed(job, {"frame_id": frame.pk, "take_ids": take_ids})


def draw_keyframes(
    job: GenerationJob, frames: list[Frame], cast: list[Character], instructions: str = ""
) -> list[int]:
    """Draw keyframes side by side with the cast's current portraits as references; each becomes
    its frame's current take. Stores what succeeded before raising the first failure."""
    if not frames:
        return []
    project = frames[0].scene.project
    references = [read_media(c.image) for c in cast if c.image]
    todo = [(f.pk, with_instructions(keyframe_prompt(f, cast), instructions)) for f in frames]
    provider = image_provider()

    def draw(item: tuple[int, str]) -> str:
        pk, prompt = item
        data = provider.generate_image(
            prompt=prompt,
            references=references,
            aspect_ratio=project.aspect_ratio,
            seed=take_seed(job, pk),
        )
        return store_bytes(project.pk, "frames", f"frame-{pk}", data, image_suffix(data))

    outcomes = gather(draw, todo)
    take_ids = []
    with transaction.atomic():
        for (pk, prompt), name in outcomes:
            if isinstance(name, Exception):
                continue
            frame = Frame.objects.select_related("scene__project").filter(pk=pk).first()
            if frame is None or not services.job_still_active(job):
                delete_after_commit(name)  # the frame went, or the job was cancelled
                continue
            if frame.status != Frame.Status.READY:
                frame.status = Frame.Status.READY
                frame.save(update_fields=["status", "updated_at"])
            take = record_take(
                job,
                provider,
                kind=Take.Kind.KEYFRAME,
                frame=frame,
                file=name,
                inputs=keyframe_inputs(frame),
                prompt=prompt,
                instructions=instructions,
                seed=take_seed(job, pk),
            )
            take_ids.append(take.pk)
    error = first_error(outcomes)
    if error:
        raise error
    return take_ids
