from django.db import transaction
from django.utils import timezone

from generation import costs, services, usage
from generation.models import GenerationJob
from generation.prompts import approved_cast, cast_prompt, portrait_prompt, with_instructions
from generation.providers import image_provider, text_provider
from generation.providers.base import TransientProviderError
from generation.schemas import CastPlan
from generation.steps.common import (
    UnitVanished,
    finish_with_outcomes,
    gather,
    image_suffix,
    lock_if_still_wanted,
    store_bytes,
    take_seed,
)
from generation.voices import cast_voices, pick_voice
from projects.models import Character, Take
from projects.services import CHARACTER_FIELDS
from projects.takes import inputs_hash, portrait_inputs

UNIT = GenerationJob.TargetType.CHARACTER


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
        plan = CastPlan.sized(count)  # the project says how many, not the prompt
        drafts = text_provider().generate_json(prompt=prompt, schema=plan).characters
        if len(drafts) < count:
            raise TransientProviderError(f"the model wrote {len(drafts)} of {count} characters")
        with transaction.atomic():
            lock_if_still_wanted(job)
            costs.record_unit(job.target_type, job.target_id)
            # Slots an earlier attempt wrote, read under the lock: `rows` is from before the
            # text call, and another attempt (a watchdog requeue) may have stored its cast since.
            earlier = dict(Character.objects.filter(source_job_id=job.pk).values_list("slot", "pk"))
            # Each a voice of its own that fits it (a re-run picks the same ones again).
            taken = cast_voices(project.pk, exclude=earlier.values())
            made = []
            for slot, draft in enumerate(drafts[:count]):
                fields = draft.model_dump(include=set(CHARACTER_FIELDS))
                voice = pick_voice(Character(**fields), taken)
                taken.append(voice)
                values = {"status": Character.Status.GENERATING, "voice": voice, **fields}
                if slot in earlier:
                    character, _ = Character.objects.update_or_create(
                        source_job_id=job.pk, slot=slot, defaults={"project": project, **values}
                    )
                    services.publish_entity(character)
                else:
                    made.append(
                        Character(project=project, source_job_id=job.pk, slot=slot, **values)
                    )
            # New rows in one INSERT (update_or_create cost six statements each).
            for character in Character.objects.bulk_create(made):
                services.publish_entity(character)
            if earlier:
                rows = list(Character.objects.filter(source_job_id=job.pk).order_by("slot"))
            else:  # just written, with their ids: not read again
                rows = made
    for character in rows:
        character.project = project  # the job's, loaded with it: not once more per portrait
    services.job_progress(job, 30)

    draw_portraits(
        job, [c for c in rows if not c.image], result={"character_ids": [c.pk for c in rows]}
    )


def portrait_run(job: GenerationJob) -> None:
    """One portrait drawn again (the character's text stays); a new current take."""
    character = Character.objects.select_related("project").filter(pk=job.target_id).first()
    if character is None:
        raise UnitVanished(f"character {job.target_id} no longer exists")
    draw_portraits(
        job,
        [character],
        result={"character_id": character.pk},
        instructions=job.params.get("instructions", ""),
    )


def draw_portraits(
    job: GenerationJob, characters: list[Character], *, result: dict, instructions: str = ""
) -> None:
    """Draw portraits side by side; each becomes its character's current take (a character
    just written moves on to await its decision), and the job finishes (`finish_with_outcomes`)."""
    project = job.project
    todo = [
        (c.pk, with_instructions(portrait_prompt(c, project), instructions), portrait_inputs(c))
        for c in characters
    ]
    provider = image_provider()

    def draw(item: tuple[int, str, dict]) -> str:
        pk, prompt, _ = item
        with usage.for_unit(UNIT, pk):
            data = provider.generate_image(
                prompt=prompt, references=[], aspect_ratio="1:1", seed=take_seed(job, pk)
            )
        return store_bytes(project.pk, "characters", f"character-{pk}", data, image_suffix(data))

    def store_all(made: list[tuple[tuple[int, str, dict], str]]) -> list[int | None]:
        return store_portraits(job, provider, made, instructions=instructions)

    finish_with_outcomes(job, gather(draw, todo), result=result, store_all=store_all)


def store_portraits(
    job: GenerationJob,
    provider,
    made: list[tuple[tuple[int, str, dict], str]],
    *,
    instructions: str,
) -> list[int | None]:
    """Each drawn portrait (`made`: (character id, prompt, inputs), file name) becomes its
    character's current take, and a character just written awaits its decision: the takes
    and their ledger rows for the whole cast in a few statements (row by row it cost seven per
    character). None for a character gone meanwhile (its calls are written by the step's flush)."""
    found = Character.objects.in_bulk([pk for (pk, _, _), _ in made])
    cost = costs.record_units(UNIT, list(found))
    takes = {
        pk: Take(
            project_id=job.project_id,
            kind=Take.Kind.PORTRAIT,
            character=found[pk],
            file=name,
            prompt=prompt,
            instructions=instructions,
            provider=provider.name,
            model=getattr(provider, "model", ""),
            seed=take_seed(job, pk),
            cost_usd=cost[pk],
            inputs=inputs,
            inputs_hash=inputs_hash(inputs),
            source_job_id=job.pk,
        )
        for (pk, prompt, inputs), name in made
        if pk in found
    }
    Take.objects.bulk_create(takes.values())
    now = timezone.now()
    for pk, take in takes.items():
        character = found[pk]
        if character.status == Character.Status.GENERATING:
            character.status = Character.Status.PENDING
        character.take, character.image, character.updated_at = take, take.file, now
    Character.objects.bulk_update(
        [found[pk] for pk in takes], ["status", "take", "image", "updated_at"]
    )
    for pk in takes:
        services.publish_entity(found[pk])
    return [takes[pk].pk if pk in takes else None for (pk, _, _), _ in made]
