import logging

from django.db import transaction

from generation import costs, services
from generation.models import GenerationJob
from generation.prompts import approved_cast, project_objects, scene_cast_prompt, scenes_prompt
from generation.providers import text_provider
from generation.providers.base import PermanentProviderError, TextProvider, TransientProviderError
from generation.schemas import CastList, SceneDraft, ScenePlan
from generation.steps.common import cancel_jobs, delete_after_commit, lock_if_still_wanted
from projects.cast import match_names, mentioned
from projects.models import Character, Frame, ProjectObject, Scene, Take, Video

logger = logging.getLogger(__name__)

# New scenes replace every shot: whatever works on the shots, their clips or the cut goes.
DOWNSTREAM = [
    GenerationJob.Type.FRAMES,
    GenerationJob.Type.KEYFRAME,
    GenerationJob.Type.IMAGE_EDIT,
    GenerationJob.Type.VIDEOS,
    GenerationJob.Type.STITCH,
    GenerationJob.Type.REFRESH,
]


def present_cast(
    provider: TextProvider, draft: SceneDraft, cast: list[Character]
) -> tuple[list[Character], bool]:
    """Who is in a drafted scene, and whether that is the fallback. A scene that names nobody
    while its text speaks of cast members is asked about once more (who is present, from the
    cast's names); if it still names nobody, the whole approved cast is in it, and it says so."""
    present = match_names(draft.characters, cast)
    text = f"{draft.concise_plot}\n{draft.detailed_plot}\n{draft.dialogue}"
    if present or not mentioned(text, cast):
        return present, False
    schema = CastList.for_cast([c.name for c in cast])
    answer = provider.generate_json(prompt=scene_cast_prompt(draft, cast), schema=schema)
    present = match_names(answer.characters, cast)
    if present:
        return present, False
    logger.warning("scene %r names none of the cast: the whole cast is in it", draft.title)
    return list(cast), True


def proposed_objects(draft: SceneDraft, objects: list[ProjectObject]) -> list[ProjectObject]:
    """The project's objects a drafted scene names (paraphrases matched, unknown names
    dropped); a plan asked without objects names none."""
    return match_names(getattr(draft, "objects", []), objects)


def run(job: GenerationJob) -> None:
    project = job.project
    count = project.num_scenes
    if project.scenes.filter(source_job_id=job.pk).count() < count:
        cast = approved_cast(project)
        if not cast:
            raise PermanentProviderError("No approved character: approve the cast first.")
        objects = project_objects(project)
        prompt = scenes_prompt(project, cast, objects)
        # The project says how many, not the prompt; the cast is named from an enum of it, the
        # objects each scene shows from an enum of theirs.
        names = [c.name for c in cast]
        plan = ScenePlan.for_cast(names, [o.name for o in objects]).sized(count)
        provider = text_provider()
        drafts = provider.generate_json(prompt=prompt, schema=plan).scenes[:count]
        if len(drafts) < count:
            raise TransientProviderError(f"the model wrote {len(drafts)} of {count} scenes")
        casts = [present_cast(provider, draft, cast) for draft in drafts]
        things = [proposed_objects(draft, objects) for draft in drafts]
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
            # An object deleted while the model wrote is not listed (the project row is locked
            # now: none goes before the scenes are stored).
            alive = set(project.project_objects.values_list("pk", flat=True))
            for order, (draft, (present, fallback), shown) in enumerate(
                zip(drafts, casts, things, strict=True), start=1
            ):
                fields = draft.model_dump(exclude={"characters", "objects"})
                scene, _ = Scene.objects.update_or_create(
                    project=project,
                    order=order,
                    defaults={
                        **fields,
                        "status": Scene.Status.READY,
                        "source_job_id": job.pk,
                        "cast_fallback": fallback,
                    },
                )
                scene.characters.set(present)
                scene.project_objects.set([o for o in shown if o.pk in alive])
                services.publish_entity(scene)
    scene_ids = list(project.scenes.order_by("order").values_list("pk", flat=True))
    services.job_succeed(job, {"scene_ids": scene_ids})
