"""Export: the hand-off zip (timelines with relative media paths, subtitles, the current clips,
line and music stems, the final film), streamed into storage as it is built: no file is held
whole in memory, nor is the archive."""

import logging
import zipfile
from collections.abc import Iterable, Iterator

from django.core.files.storage import default_storage
from django.db import transaction
from zipstream import ZipStream

from filmstudio.exceptions import ConflictError
from generation import services
from generation.jobs import lock_project
from generation.models import GenerationJob
from generation.providers.base import PermanentProviderError
from generation.steps.common import delete_after_commit
from media.storage import delete_name, media_name, read_chunks, save_stream
from projects.export import Entry, bundle_entries, project_cut

logger = logging.getLogger(__name__)

Job = GenerationJob


def _counted(chunks: Iterable[bytes], on_bytes) -> Iterator[bytes]:
    for chunk in chunks:
        on_bytes(len(chunk))
        yield chunk


class _Progress:
    """Job progress from the media bytes read so far (they are nearly all of the zip)."""

    def __init__(self, job: Job, total: int) -> None:
        self.job, self.total, self.done, self.shown = job, max(1, total), 0, 0

    def __call__(self, count: int) -> None:
        self.done += count
        percent = min(99, 100 * self.done // self.total)
        if percent >= self.shown + 5:
            self.shown = percent
            services.job_progress(self.job, percent)


def _zip(entries: list[Entry], sizes: dict[str, int], progress: _Progress) -> ZipStream:
    archive = ZipStream(compress_type=zipfile.ZIP_STORED)
    for entry in entries:
        if entry.name:  # media are compressed already: stored as they are
            chunks = _counted(read_chunks(entry.name), progress)
            archive.add(chunks, entry.path, size=sizes[entry.name])
        else:
            archive.add(entry.text.encode(), entry.path, compress_type=zipfile.ZIP_DEFLATED)
    return archive


def _retire_older_exports(job: Job) -> None:
    """One hand-off zip per project is kept: earlier ones go once this one is stored."""
    older = Job.objects.filter(
        project_id=job.project_id, type=Job.Type.EXPORT, status=Job.Status.SUCCEEDED
    ).exclude(pk=job.pk)
    for previous in older:
        result = previous.result or {}
        if result.get("file"):
            delete_after_commit(result["file"])
            previous.result = {**result, "file": "", "replaced_by": job.pk}
            previous.save(update_fields=["result", "updated_at"])


def run(job: Job) -> None:
    project = job.project
    try:
        cut = project_cut(project)
    except ConflictError as error:
        raise PermanentProviderError(error.message) from None
    entries = bundle_entries(cut)
    sizes = {e.name: default_storage.size(e.name) for e in entries if e.name}
    services.job_progress(job, 5)
    progress = _Progress(job, sum(sizes.values()))
    name = save_stream(
        media_name(project.pk, "final", "export", ".zip"), _zip(entries, sizes, progress)
    )
    result = {
        "file": name,
        "size": default_storage.size(name),
        "files": len(entries),
        "clips": len(cut.shots),
        "lines": len(cut.lines),
        "frames": cut.length,
        "fps": cut.fps,
        "film_take_id": cut.film.pk,
        "take_ids": [shot.take.pk for shot in cut.shots],
    }
    with transaction.atomic():
        lock_project(project.pk)
        won = services.job_succeed(job, result)
        if won:
            _retire_older_exports(job)
    if not won:  # cancelled meanwhile: nothing to hand over
        delete_name(name)
        return
    logger.info("project %s exported: %s (%s bytes)", project.pk, name, result["size"])
