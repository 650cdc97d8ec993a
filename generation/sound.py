"""Reads and writes of sound that the API shares: a project's subtitles and its music."""

import tempfile
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from generation import costs
from generation.jobs import lock_project
from generation.models import GenerationJob
from generation.providers import speech_provider
from generation.steps.common import delete_after_commit, store_file
from generation.steps.stitch import cues, film_frames, timeline
from generation.usage import Meter
from generation.voices import check_voice
from media import ffmpeg
from projects.events import publish_entity
from projects.models import Project
from projects.sound import Cue, srt_text, vtt_text


def film_cues(project: Project) -> list[Cue]:
    """The cues of the current film, timed to where its stitch placed each line; with no film
    yet, where the current clips and lines would put them."""
    take = project.film_take
    if take is not None and take.source_job_id:
        job = GenerationJob.objects.filter(pk=take.source_job_id).first()
        stored = (job.result or {}).get("cues") if job is not None else None
        if stored is not None:
            return [Cue(float(a), float(b), str(text)) for a, b, text in stored]
    frames = [f for f in film_frames(project) if getattr(f, "video", None) is not None]
    return cues(timeline(frames, settings.MEDIA_FPS))


def subtitles(project: Project, fmt: str) -> str:
    timed = film_cues(project)
    return srt_text(timed) if fmt == "srt" else vtt_text(timed)


MUSIC_SUFFIXES = {".mp3", ".wav", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".flac"}


def music_upload(*, project: Project, upload) -> Project:
    """Set an uploaded track as the project's music: it must be audio ffmpeg can read (probed,
    not trusted by its name or type), at most MUSIC_MAX_SECONDS long; else a ValidationError
    and nothing is stored. The film becomes stale (its music changed)."""
    suffix = Path(upload.name or "").suffix.lower()
    with tempfile.TemporaryDirectory(prefix="music-") as tmp:
        path = Path(tmp) / f"upload{suffix if suffix in MUSIC_SUFFIXES else '.audio'}"
        with path.open("wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        try:
            info = ffmpeg.probe(path, timeout=30)
        except ffmpeg.FFmpegError:
            info = None
        if info is None or not info.has_audio:
            raise ValidationError({"file": ["Not an audio file ffmpeg can read."]})
        if info.width or info.height:
            raise ValidationError({"file": ["A video, not an audio file: upload the sound."]})
        if info.duration > settings.MUSIC_MAX_SECONDS:
            raise ValidationError(
                {
                    "file": [
                        f"The track lasts {info.duration:.0f} s: at most "
                        f"{settings.MUSIC_MAX_SECONDS} s."
                    ]
                }
            )
        name = store_file(project.pk, "music", "upload", path)
    with transaction.atomic():
        locked = lock_project(project)
        delete_after_commit(locked.music_file)  # older cuts have it mixed in already
        locked.music_file, locked.music = name, Project.Music.UPLOAD
        locked.save(update_fields=["music_file", "music", "updated_at"])
        publish_entity(locked)
    return locked


SAMPLE_TEXT = "Hello. This is how I sound in your film."


def voice_sample(voice: str, *, user_id: int) -> bytes:
    """A short WAV of `voice` saying SAMPLE_TEXT, made once per provider, model and voice and
    kept under VAR_DIR. A Gemini sample is a small paid call: it goes into the ledger as the
    asking user's (no project), and not past their daily cap."""
    check_voice(voice)
    provider = speech_provider()
    folder = Path(settings.VAR_DIR) / "voice-samples"
    path = folder / f"{provider.name}-{provider.model}-{voice}.wav"
    if not path.exists():
        if provider.name != "local":
            costs.refuse_over_daily_cap(user_id)
        meter = Meter(user_id=user_id, project_id=None, stage="voice-sample", unit=("voice", 0))
        with costs.metered(meter):
            data = provider.speak(text=SAMPLE_TEXT, voice=voice, seed=0)
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(path)
    return path.read_bytes()
