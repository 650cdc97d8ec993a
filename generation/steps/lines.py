"""Spoken lines: each frame's dialogue said by its speaker's voice (the narrator's without one),
one `line` take per frame, a WAV file stored as `{project}/lines/frame-{frame id}-{random}.wav`.

A project or scene job speaks the lines that are missing or stale; a frame job speaks its
line again (a new take). A frame whose dialogue was emptied loses its current line."""

from django.db import transaction

from generation import services, usage
from generation.models import GenerationJob
from generation.providers import speech_provider
from generation.providers.base import SpeechProvider
from generation.providers.local import wav_seconds
from generation.steps.common import (
    UnitVanished,
    finish_with_outcomes,
    gather,
    lock_if_still_wanted,
    read_media,
    record_take,
    store_bytes,
    take_seed,
)
from generation.voices import voice_for
from projects.models import Frame, Take
from projects.sound import spoken_text
from projects.takes import line_inputs, line_wanted, with_line_inputs

Job = GenerationJob
UNIT = Job.TargetType.FRAME


def _frames(job: Job) -> list[Frame]:
    frames = with_line_inputs(Frame.objects.select_related("scene__project"))
    if job.target_type == Job.TargetType.FRAME:
        frame = frames.filter(pk=job.target_id).first()
        if frame is None:
            raise UnitVanished(f"frame {job.target_id} no longer exists")
        return [frame]
    if job.target_type == Job.TargetType.SCENE:
        frames = frames.filter(scene_id=job.target_id)
    else:
        frames = frames.filter(scene__project_id=job.project_id)
    return list(frames.order_by("scene__order", "order"))


def run(job: Job) -> None:
    frames = _frames(job)
    one = job.target_type == Job.TargetType.FRAME
    silent = [f for f in frames if not spoken_text(f) and f.line_take_id]
    if silent:
        with transaction.atomic():
            lock_if_still_wanted(job)
            for frame in silent:  # its words are gone: so is its line (its takes stay)
                Frame.objects.filter(pk=frame.pk).update(line_take=None)
                frame.line_take = None
                services.publish_entity(frame)
    provider = speech_provider()
    speech = {"provider": provider.name, "model": provider.model}  # who speaks them
    todo = [f for f in frames if spoken_text(f) and (one or line_wanted(f, speech))]
    speak_lines(job, todo, provider, speech, result={"frame_ids": [f.pk for f in todo]})


def speak_lines(
    job: Job, frames: list[Frame], provider: SpeechProvider, speech: dict, *, result: dict
) -> None:
    """Speak side by side with `provider` (`speech`: its name and model, which the inputs
    record); each line becomes its frame's current take, and the job finishes. The inputs
    are taken with the text: an edit made while it is spoken makes it stale."""
    project_id = job.project_id
    todo = []
    for f in frames:  # the voice the inputs record is the one spoken
        inputs = line_inputs(f, speech)
        voice = inputs["voice"] if f.speaker is not None else voice_for(None)
        todo.append((f.pk, spoken_text(f), voice, inputs))

    def speak(item: tuple[int, str, str, dict]) -> str:
        pk, text, voice, _ = item
        with usage.for_unit(UNIT, pk):
            data = provider.speak(text=text, voice=voice, seed=take_seed(job, pk))
        return store_bytes(project_id, "lines", f"frame-{pk}", data, ".wav")

    def store(item: tuple[int, str, str, dict], name: str) -> int | None:
        pk, text, _, inputs = item
        frame = Frame.objects.filter(pk=pk).first()
        if frame is None:
            return None
        take = record_take(
            job,
            provider,
            (UNIT, pk),
            kind=Take.Kind.LINE,
            frame=frame,
            file=name,
            duration=round(wav_seconds(read_media(name)), 3),
            inputs=inputs,
            prompt=text,
            seed=take_seed(job, pk),
        )
        return take.pk

    finish_with_outcomes(job, gather(speak, todo), store, result=result)
