from django.db import transaction

from generation import services
from generation.models import GenerationJob
from generation.prompts import frames_prompt, keyframe_prompt
from generation.providers import image_provider, text_provider
from generation.providers.base import TransientProviderError
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
    store_bytes,
)
from projects.models import Character, Frame, Scene, Video


def run(job: GenerationJob) -> None:
    scene = Scene.objects.select_related("project").filter(pk=job.target_id).first()
    if scene is None:
        raise UnitVanished(f"scene {job.target_id} no longer exists")
    project = scene.project
    count = project.frames_per_scene
    cast = list(scene.characters.filter(status=Character.Status.APPROVED).order_by("id"))
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
                types=[GenerationJob.Type.VIDEOS],
                frame_ids=list(old.values_list("pk", flat=True)),
            )
            videos = Video.objects.filter(frame__scene=scene)
            delete_after_commit(
                *old.values_list("image", flat=True), *videos.values_list("file", flat=True)
            )
            videos.delete()
            old.filter(order__gt=count).delete()
            for order, draft in enumerate(drafts[:count], start=1):
                frame, _ = Frame.objects.update_or_create(
                    scene=scene,
                    order=order,
                    defaults={
                        **draft.model_dump(),
                        "duration": float(project.clip_seconds),
                        "status": Frame.Status.GENERATING,
                        "image": "",
                        "source_job_id": job.pk,
                    },
                )
                services.publish_entity(frame)
    services.job_progress(job, 30)

    frames = list(scene.frames.order_by("order").select_related("scene__project"))
    references = [read_media(c.image) for c in cast if c.image]
    todo = [(f.pk, keyframe_prompt(f, cast)) for f in frames if not f.image]
    provider = image_provider()

    def draw(item: tuple[int, str]) -> str:
        pk, prompt = item
        data = provider.generate_image(
            prompt=prompt, references=references, aspect_ratio=project.aspect_ratio, seed=pk
        )
        return store_bytes(project.pk, "frames", f"frame-{pk}", data, image_suffix(data))

    outcomes = gather(draw, todo)
    with transaction.atomic():
        for (pk, _), name in outcomes:
            if isinstance(name, Exception):
                continue
            frame = Frame.objects.select_related("scene").filter(pk=pk).first()
            if frame is None:
                delete_after_commit(name)
                continue
            frame.image, frame.status = name, Frame.Status.READY
            frame.save(update_fields=["image", "status", "updated_at"])
            services.publish_entity(frame)
    error = first_error(outcomes)
    if error:
        raise error
    services.job_succeed(job, {"frame_ids": [f.pk for f in frames]})
