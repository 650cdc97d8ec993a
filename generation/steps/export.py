"""Export: the hand-off zip (timelines with relative media paths, subtitles, the current clips,
line and music stems, the final film), streamed into storage as it is built: no file is held
whole in memory, nor is the archive."""

import logging
import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from zipstream import ZipStream

from filmstudio.exceptions import ConflictError
from generation import services
from generation.export import (
    Cut,
    Entry,
    bundle_entries,
    project_cut,
    wants_music_bed,
    with_music_bed,
)
from generation.jobs import hold_project_lock
from generation.models import GenerationJob
from generation.providers.base import PermanentProviderError
from generation.steps.common import delete_after_commit
from media import ffmpeg
from media.storage import delete_name, media_name, read_chunks, save_stream

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


def _local_chunks(path: str, size: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(size):
            yield chunk


def _size(entry: Entry) -> int:
    return os.path.getsize(entry.local) if entry.local else default_storage.size(entry.name)


def _zip(entries: list[Entry], sizes: dict[str, int], progress: _Progress) -> ZipStream:
    archive = ZipStream(compress_type=zipfile.ZIP_STORED)
    for entry in entries:
        if entry.name or entry.local:  # media are compressed already: stored as they are
            chunks = read_chunks(entry.name) if entry.name else _local_chunks(entry.local)
            archive.add(_counted(chunks, progress), entry.path, size=sizes[entry.path])
        else:
            archive.add(entry.text.encode(), entry.path, compress_type=zipfile.ZIP_DEFLATED)
    return archive


def _store_zip(job: Job, cut: Cut) -> tuple[str, int]:
    """The zip in storage; returns its name and how many files it holds."""
    entries = bundle_entries(cut)
    sizes = {e.path: _size(e) for e in entries if e.name or e.local}
    services.job_progress(job, 5)
    progress = _Progress(job, sum(sizes.values()))
    name = media_name(cut.project.pk, "exports", "export", ".zip")
    return save_stream(name, _zip(entries, sizes, progress)), len(entries)


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
    with tempfile.TemporaryDirectory(prefix="export-") as tmp:
        if wants_music_bed(cut):  # the same bed the stitch laid under this film
            bed = ffmpeg.music_bed(
                Path(tmp) / "bed.wav",
                duration=cut.length / cut.fps,
                seed=project.pk,
                timeout=settings.FFMPEG_TIMEOUT,
            )
            cut = with_music_bed(cut, str(bed))
        name, files = _store_zip(job, cut)
    result = {
        "file": name,
        "size": default_storage.size(name),
        "files": files,
        "clips": len(cut.shots),
        "lines": len(cut.lines),
        "music": bool(cut.music),
        "frames": cut.length,
        "fps": cut.fps,
        "film_take_id": cut.film.pk,
        "take_ids": [shot.take_id for shot in cut.shots],
    }
    with transaction.atomic():
        hold_project_lock(project.pk)
        won = services.job_succeed(job, result)
        if won:
            _retire_older_exports(job)
    if not won:  # cancelled meanwhile: nothing to hand over
        delete_name(name)
        return
    logger.info("project %s exported: %s (%s bytes)", project.pk, name, result["size"])
