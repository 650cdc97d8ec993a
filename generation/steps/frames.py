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

UNIT = GenerationJob.TargetType.FRAME


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
        plan = FramePlan.sized(count)  # the project says how many, not the prompt
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
                        **draft.model_dump(exclude={"speaker"}),
                        # A name the scene does not know is the narrator's line.
                        "speaker_id": speakers.get(draft.speaker.strip().lower()),
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
    missing = [f for f in frames if not f.image]
    draw_keyframes(job, missing, cast, result={"frame_ids": [f.pk for f in frames]})


def keyframe_run(job: GenerationJob) -> None:
    """One keyframe, drawn again from the frame's text (no text model call)."""
    frame = Frame.objects.select_related("scene__project").filter(pk=job.target_id).first()
    if frame is None:
        raise UnitVanished(f"frame {job.target_id} no longer exists")
    if not frame.prompt:
        raise PermanentProviderError(f"Frame {frame.pk} has no shot text to draw from.")
    draw_keyframes(
        job,
        [frame],
        scene_cast(frame.scene),
        result={"frame_id": frame.pk},
        instructions=job.params.get("instructions", ""),
    )


def draw_keyframes(
    job: GenerationJob,
    frames: list[Frame],
    cast: list[Character],
    *,
    result: dict,
    instructions: str = "",
) -> None:
    """Draw keyframes side by side with the cast's current portraits as references; each becomes
    its frame's current take, and the job finishes (`finish_with_outcomes`). The inputs are
    taken with the prompt: an edit made while the model draws makes the new take stale."""
    project = job.project
    references = [read_media(c.image) for c in cast if c.image]
    todo = [
        (f.pk, with_instructions(keyframe_prompt(f, cast), instructions), keyframe_inputs(f))
        for f in frames
    ]
    provider = image_provider()

    def draw(item: tuple[int, str, dict]) -> str:
        pk, prompt, _ = item
        with usage.for_unit(UNIT, pk):
            data = provider.generate_image(
                prompt=prompt,
                references=references,
                aspect_ratio=project.aspect_ratio,
                seed=take_seed(job, pk),
            )
        return store_bytes(project.pk, "frames", f"frame-{pk}", data, image_suffix(data))

    def store(item: tuple[int, str, dict], name: str) -> int | None:
        pk, prompt, inputs = item
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

    finish_with_outcomes(job, gather(draw, todo), store, result=result)
