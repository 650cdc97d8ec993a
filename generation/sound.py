"""Reads and writes of sound that the API shares: the subtitles of a project's film."""

from django.conf import settings

from generation.models import GenerationJob
from generation.steps.stitch import cues, film_frames, timeline
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
