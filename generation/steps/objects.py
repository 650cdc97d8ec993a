"""An object's reference image (a prop, a place): drawn from its name and description (a redraw
with a new seed and the producer's instructions); it becomes the object's current `reference`
take, and goes with the keyframes of its scenes."""

from generation import usage
from generation.models import GenerationJob
from generation.prompts import reference_prompt, with_instructions
from generation.providers import image_provider
from generation.steps.common import (
    UnitVanished,
    finish_with_outcomes,
    gather,
    image_suffix,
    record_take,
    store_bytes,
    take_seed,
)
from projects.models import ProjectObject, Take
from projects.takes import reference_inputs

UNIT = GenerationJob.TargetType.OBJECT


def run(job: GenerationJob) -> None:
    obj = ProjectObject.objects.select_related("project").filter(pk=job.target_id).first()
    if obj is None:
        raise UnitVanished(f"object {job.target_id} no longer exists")
    instructions = job.params.get("instructions", "")
    prompt = with_instructions(reference_prompt(obj, obj.project), instructions)
    inputs = reference_inputs(obj)
    provider = image_provider()
    seed = take_seed(job, obj.pk)  # the object's for its first drawing, a new one to redraw

    def draw(pk: int) -> str:
        with usage.for_unit(UNIT, pk):
            data = provider.generate_image(
                prompt=prompt, references=[], aspect_ratio="1:1", seed=seed
            )
        return store_bytes(obj.project_id, "objects", f"object-{pk}", data, image_suffix(data))

    def store(pk: int, name: str) -> int | None:
        fresh = ProjectObject.objects.select_related("project").filter(pk=pk).first()
        if fresh is None:
            return None
        take = record_take(
            job,
            provider,
            (UNIT, pk),
            kind=Take.Kind.REFERENCE,
            obj=fresh,
            file=name,
            inputs=inputs,
            prompt=prompt,
            instructions=instructions,
            seed=seed,
        )
        return take.pk

    finish_with_outcomes(job, gather(draw, [obj.pk]), store, result={"object_id": obj.pk})
