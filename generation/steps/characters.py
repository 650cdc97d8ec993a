from django.db import transaction

from generation import services
from generation.models import GenerationJob
from generation.prompts import approved_cast, cast_prompt, portrait_prompt, with_instructions
from generation.providers import image_provider, text_provider
from generation.providers.base import TransientProviderError
from generation.schemas import CastPlan
from generation.steps.common import (
    UnitVanished,
    delete_after_commit,
    first_error,
    gather,
    image_suffix,
    lock_if_still_wanted,
    store_bytes,
)
from projects.models import Character, Take
from projects.services import CHARACTER_FIELDS
from projects.takes import portrait_inputs, take_record


def run(job: GenerationJob) -> None:
    project = job.project
    count = int(job.params.get("count", 4))
    rows = list(Character.objects.filter(source_job_id=job.pk).order_by("slot"))
    if len(rows) < count:  # a re-run after a crash skips the text call it already paid for
        prompt = cast_prompt(
            project,
            count=count,
            instructions=job.params.get("instructions", ""),
            keep=approved_cast(project),
        )
        drafts = text_provider().generate_json(prompt=prompt, schema=CastPlan).characters
        if len(drafts) < count:
            raise TransientProviderError(f"the model wrote {len(drafts)} of {count} characters")
        with transaction.atomic():
            lock_if_still_wanted(job)
            for slot, draft in enumerate(drafts[:count]):
                character, _ = Character.objects.update_or_create(
                    source_job_id=job.pk,
                    slot=slot,
                    defaults={
                        "project": project,
                        "status": Character.Status.GENERATING,
                        **draft.model_dump(include=set(CHARACTER_FIELDS)),
                    },
                )
                services.publish_entity(character)
        rows = list(Character.objects.filter(source_job_id=job.pk).order_by("slot"))
    services.job_progress(job, 30)

    provider = image_provider()
    prompts = {c.pk: portrait_prompt(c, project) for c in rows if not c.image}
    todo = list(prompts.items())

    def draw(item: tuple[int, str]) -> str:
        pk, prompt = item
        data = provider.generate_image(prompt=prompt, references=[], aspect_ratio="1:1", seed=pk)
        return store_bytes(project.pk, "characters", f"character-{pk}", data, image_suffix(data))

    outcomes = gather(draw, todo)
    with transaction.atomic():
        for (pk, prompt), name in outcomes:
            character = Character.objects.select_related("project").filter(pk=pk).first()
            if isinstance(name, Exception) or character is None:
                continue
            take_record(
                project_id=project.pk,
                kind=Take.Kind.PORTRAIT,
                character=character,
                file=name,
                inputs=portrait_inputs(character),
                prompt=prompt,
                provider=provider.name,
                model=getattr(provider, "model", ""),
                seed=pk,
                source_job_id=job.pk,
            )
        for character in Character.objects.filter(
            source_job_id=job.pk, status=Character.Status.GENERATING
        ).exclude(image=""):
            character.status = Character.Status.PENDING
            character.save(update_fields=["status", "updated_at"])
            services.publish_entity(character)
    error = first_error(outcomes)
    if error:
        raise error
    services.job_succeed(job, {"character_ids": [c.pk for c in rows]})


def portrait_run(job: GenerationJob) -> None:
    """One portrait drawn again (the character's text stays); a new current take."""
    character = Character.objects.select_related("project").filter(pk=job.target_id).first()
    if character is None:
        raise UnitVanished(f"character {job.target_id} no longer exists")
    project = character.project
    instructions = job.params.get("instructions", "")
    prompt = with_instructions(portrait_prompt(character, project), instructions)
    provider = image_provider()
    data = provider.generate_image(
        prompt=prompt, references=[], aspect_ratio="1:1", seed=character.pk + job.pk
    )
    name = store_bytes(
        project.pk, "characters", f"character-{character.pk}", data, image_suffix(data)
    )
    with transaction.atomic():
        lock_if_still_wanted(job)
        character = Character.objects.select_related("project").filter(pk=character.pk).first()
        if character is None:
            delete_after_commit(name)
            raise UnitVanished(f"character {job.target_id} no longer exists")
        take = take_record(
            project_id=project.pk,
            kind=Take.Kind.PORTRAIT,
            character=character,
            file=name,
            inputs=portrait_inputs(character),
            prompt=prompt,
            instructions=instructions,
            provider=provider.name,
            model=getattr(provider, "model", ""),
            seed=character.pk + job.pk,
            source_job_id=job.pk,
        )
        services.job_succeed(job, {"character_id": character.pk, "take_id": take.pk})
