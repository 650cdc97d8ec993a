"""An image edited by an instruction: the current portrait, keyframe or object's reference image
goes to the image model as the only reference, with "Edit this image: ..."; the result is the
unit's new current take (its dependents become stale by themselves: their inputs name the take
they were made from)."""

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
from projects.models import Character, Frame, ProjectObject, Take
from projects.takes import keyframe_inputs, portrait_inputs, reference_inputs

Target = GenerationJob.TargetType
Unit = Character | Frame | ProjectObject
# Each kind of target: its model, what to read with it, its name in files and results.
KINDS: dict[str, tuple[type[Unit], str, str]] = {
    Target.CHARACTER: (Character, "project", "character"),
    Target.FRAME: (Frame, "scene__project", "frame"),
    Target.OBJECT: (ProjectObject, "project", "object"),
}


def _fetch(target_type: str, pk: int) -> Unit | None:
    model, related, _ = KINDS[target_type]
    return model.objects.select_related(related).filter(pk=pk).first()


def _unit(job: GenerationJob) -> Unit:
    unit = _fetch(job.target_type, job.target_id)
    if unit is None or not unit.image:
        raise UnitVanished(f"{job.target_type} {job.target_id} no longer has an image to edit")
    return unit


def _take_fields(unit: Unit) -> dict:
    """The new take's unit and inputs."""
    if isinstance(unit, Character):
        return {"kind": Take.Kind.PORTRAIT, "character": unit, "inputs": portrait_inputs(unit)}
    if isinstance(unit, ProjectObject):
        return {"kind": Take.Kind.REFERENCE, "obj": unit, "inputs": reference_inputs(unit)}
    return {"kind": Take.Kind.KEYFRAME, "frame": unit, "inputs": keyframe_inputs(unit)}


def run(job: GenerationJob) -> None:
    unit = _unit(job)
    instruction = job.params.get("instruction", "")
    prompt = edit_prompt(instruction)
    # Portraits and reference images are square; a keyframe has the film's shape.
    aspect_ratio = job.project.aspect_ratio if isinstance(unit, Frame) else "1:1"
    current = read_media(unit.image)
    seed = unit.pk + job.pk
    provider = image_provider()
    stem = KINDS[job.target_type][2]

    def draw(_: int) -> str:
        with usage.for_unit(job.target_type, unit.pk):
            data = provider.generate_image(
                prompt=prompt, references=[current], aspect_ratio=aspect_ratio, seed=seed
            )
        return store_bytes(
            job.project_id, f"{stem}s", f"{stem}-{unit.pk}", data, image_suffix(data)
        )

    def store(_: int, name: str) -> int | None:
        fresh = _fetch(job.target_type, unit.pk)
        if fresh is None:
            return None
        take = record_take(
            job,
            provider,
            (job.target_type, unit.pk),
            file=name,
            prompt=prompt,
            instructions=instruction,
            seed=seed,
            **_take_fields(fresh),
        )
        return take.pk

    edited = unit.keyframe_take_id if isinstance(unit, Frame) else unit.take_id
    result = {f"{stem}_id": unit.pk, "edited_take_id": edited}
    finish_with_outcomes(job, gather(draw, [unit.pk]), store, result=result)
