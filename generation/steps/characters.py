from django.db import transaction

from generation import services
from generation.models import GenerationJob
from generation.prompts import approved_cast, cast_prompt, portrait_prompt
from generation.providers import image_provider, text_provider
from generation.providers.base import TransientProviderError
from generation.schemas import CastPlan
from generation.steps.common import (
    first_error,
    gather,
    image_suffix,
    lock_if_still_wanted,
    store_bytes,
)
from projects.models import Character
from projects.services import CHARACTER_FIELDS


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
    todo = [(c.pk, portrait_prompt(c, project)) for c in rows if not c.image]

    def draw(item: tuple[int, str]) -> str:
        pk, prompt = item
        data = provider.generate_image(prompt=prompt, references=[], aspect_ratio="1:1", seed=pk)
        return store_bytes(project.pk, "characters", f"character-{pk}", data, image_suffix(data))

    outcomes = gather(draw, todo)
    with transaction.atomic():
        for (pk, _), name in outcomes:
            if not isinstance(name, Exception):
                Character.objects.filter(pk=pk).update(image=name)
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
