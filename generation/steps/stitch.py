import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from generation import services
from generation.models import GenerationJob
from generation.providers.base import PermanentProviderError
from generation.steps.common import delete_after_commit, film_format, store_file
from media import ffmpeg
from media.storage import delete_name
from projects.models import Frame, Project, Take
from projects.takes import film_inputs, take_record


def _local_copy(name: str, folder: Path) -> Path:
    try:
        return Path(default_storage.path(name))
    except NotImplementedError:  # remote storage: fetch a copy, chunk by chunk
        target = folder / Path(name).name
        with default_storage.open(name, "rb") as source, target.open("wb") as out:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                out.write(chunk)
        return target


def run(job: GenerationJob) -> None:
    project = job.project
    frames = list(
        Frame.objects.filter(scene__project=project)
        .select_related("video")
        .order_by("scene__order", "order")
    )
    clips = [c for f in frames if (c := getattr(f, "video", None)) is not None and c.file]
    if not frames or len(clips) < len(frames):
        raise PermanentProviderError("Cannot stitch: not every frame has a ready clip.")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = [_local_copy(c.file, folder) for c in clips]
        services.job_progress(job, 20)
        film, poster = folder / f"film-{project.pk}.mp4", folder / f"poster-{project.pk}.jpg"
        result = ffmpeg.stitch(
            paths, film, fmt=film_format(project), timeout=settings.FFMPEG_TIMEOUT
        )
        ffmpeg.poster(film, poster, timeout=settings.FFMPEG_TIMEOUT)
        film_name = store_file(project.pk, "final", "film", film)
        poster_name = store_file(project.pk, "final", "poster", poster)
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        delete_after_commit(locked.final_poster)  # earlier cuts stay, as takes
        locked.final_poster = poster_name
        locked.save(update_fields=["final_poster", "updated_at"])
        take = take_record(
            project_id=project.pk,
            kind=Take.Kind.FILM,
            file=film_name,
            duration=round(result.info.duration, 3),
            inputs=film_inputs(locked, frames),
            provider="ffmpeg",
            model=result.method,
            source_job_id=job.pk,
        )
        summary = {
            "method": result.method,
            "duration": take.duration,
            "clips": len(paths),
            "take_id": take.pk,
        }
        won = services.job_succeed(job, summary)
        if not won:  # cancelled meanwhile: keep the previous film
            transaction.set_rollback(True)
    if not won:
        delete_name(film_name)
        delete_name(poster_name)
