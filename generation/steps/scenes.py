from django.db import transaction

from generation import costs, services
from generation.models import GenerationJob
from generation.prompts import approved_cast, scenes_prompt
from generation.providers import text_provider
from generation.providers.base import PermanentProviderError, TransientProviderError
from generation.schemas import ScenePlan
from generation.steps.common import cancel_jobs, delete_after_commit, lock_if_still_wanted
from projects.models import Frame, Scene, Take, Video

# New scenes replace every shot: whatever works on the shots, their clips or the cut goes.
DOWNSTREAM = [
    GenerationJob.Type.FRAMES,
    GenerationJob.Type.KEYFRAME,
    GenerationJob.Type.VIDEOS,
    GenerationJob.Type.STITCH,
    GenerationJob.Type.REFRESH,
]


def run(job: GenerationJob) -> None:
    project = job.project
    count = project.num_scenes
    if project.scenes.filter(source_job_id=job.pk).count() < count:
        cast = approved_cast(project)
        if not cast:
            raise PermanentProviderError("No approved character: approve the cast first.")
        prompt = scenes_prompt(project, cast)
        plan = ScenePlan.sized(count)  # the project says how many, not the prompt
        drafts = text_provider().generate_json(prompt=prompt, schema=plan).scenes
        if len(drafts) < count:
            raise TransientProviderError(f"the model wrote {len(drafts)} of {count} scenes")
        by_name = {c.name.casefold(): c for c in cast}
        with transaction.atomic():
            lock_if_still_wanted(job)
            costs.record_unit(job.target_type, job.target_id)
            # Regenerating scenes replaces everything below them.
            cancel_jobs(project, types=DOWNSTREAM)
            old_frames = Frame.objects.filter(scene__project=project)
            # New scenes replace every shot: the shots go with their takes and files.
            delete_after_commit(
                *old_frames.values_list("image", flat=True),
                *Video.objects.filter(frame__scene__project=project).values_list("file", flat=True),
                *Take.objects.filter(frame__scene__project=project).values_list("file", flat=True),
            )
            old_frames.delete()
            project.scenes.filter(order__gt=count).delete()
            for order, draft in enumerate(drafts[:count], start=1):
                fields = draft.model_dump(exclude={"characters"})
                scene, _ = Scene.objects.update_or_create(
                    project=project,
                    order=order,
                    defaults={**fields, "status": Scene.Status.READY, "source_job_id": job.pk},
                )
                present = [
                    by_name[n.casefold()] for n in draft.characters if n.casefold() in by_name
                ]
                scene.characters.set(present)
                services.publish_entity(scene)
    scene_ids = list(project.scenes.order_by("order").values_list("pk", flat=True))
    services.job_succeed(job, {"scene_ids": scene_ids})
