"""An image edited by an instruction: the current portrait or keyframe goes to the image model
as the only reference, with "Edit this image: ..."; the result is the unit's new current take
(its dependents become stale by themselves: their inputs name the take they were made from)."""

from generation import usage
from generation.models import GenerationJob
from generation.prompts import edit_prompt
from generation.providers import image_provider
from generation.steps.common import (
    UnitVanished,
    finish_with_outcomes,
    gather,
    image_suffix,
    read_media,
    record_take,
    store_bytes,
)
from projects.models import Character, Frame, Take
from projects.takes import keyframe_inputs, portrait_inputs

Target = GenerationJob.TargetType


def _unit(job: GenerationJob) -> Character | Frame:
    unit: Character | Frame | None
    if job.target_type == Target.CHARACTER:
        unit = Character.objects.select_related("project").filter(pk=job.target_id).first()
    else:
        unit = Frame.objects.select_related("scene__project").filter(pk=job.target_id).first()
    if unit is None or not unit.image:
        raise UnitVanished(f"{job.target_type} {job.target_id} no longer has an image to edit")
    return unit


def run(job: GenerationJob) -> None:
    unit = _unit(job)
    instruction = job.params.get("instruction", "")
    prompt = edit_prompt(instruction)
    portrait = isinstance(unit, Character)
    aspect_ratio = "1:1" if portrait else job.project.aspect_ratio
    current = read_media(unit.image)
    seed = unit.pk + job.pk
    provider = image_provider()
    media_type, stem = ("characters", "character") if portrait else ("frames", "frame")

    def draw(_: int) -> str:
        with usage.for_unit(job.target_type, unit.pk):
            data = provider.generate_image(
                prompt=prompt, references=[current], aspect_ratio=aspect_ratio, seed=seed
            )
        return store_bytes(
            job.project_id, media_type, f"{stem}-{unit.pk}", data, image_suffix(data)
        )

    def store(_: int, name: str) -> int | None:
        model = Character if portrait else Frame
        now = model.objects.select_related(*(["project"] if portrait else ["scene__project"]))
        fresh = now.filter(pk=unit.pk).first()
        if fresh is None:
            return None
        if isinstance(fresh, Character):
            unit_fields = {"kind": Take.Kind.PORTRAIT, "character": fresh}
            inputs = portrait_inputs(fresh)
        else:
            unit_fields = {"kind": Take.Kind.KEYFRAME, "frame": fresh}
            inputs = keyframe_inputs(fresh)
        take = record_take(
            job,
            provider,
            (job.target_type, unit.pk),
            file=name,
            inputs=inputs,
            prompt=prompt,
            instructions=instruction,
            seed=seed,
            **unit_fields,
        )
        return take.pk

    result = {
        f"{stem}_id": unit.pk,
        "edited_take_id": unit.take_id if isinstance(unit, Character) else unit.keyframe_take_id,
    }
    finish_with_outcomes(job, gather(draw, [unit.pk]), store, result=result)
