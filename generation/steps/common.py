from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from generation.models import GenerationJob
from media import ffmpeg
from media.storage import delete_name, media_name
from projects.models import Project

T = TypeVar("T")
R = TypeVar("R")


class UnitVanished(Exception):
    """The row a step works on was deleted (project deleted, unit regenerated): end quietly."""


def read_media(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def store_bytes(project_id: int, media_type: str, stem: str, data: bytes, suffix: str) -> str:
    return default_storage.save(media_name(project_id, media_type, stem, suffix), ContentFile(data))


def store_file(project_id: int, media_type: str, stem: str, path: Path) -> str:
    with path.open("rb") as handle:
        return default_storage.save(
            media_name(project_id, media_type, stem, path.suffix), File(handle)
        )


def delete_after_commit(*names: str) -> None:
    for name in names:
        if name:
            transaction.on_commit(lambda name=name: delete_name(name))


def image_suffix(data: bytes) -> str:
    return ".jpg" if data[:3] == b"\xff\xd8\xff" else ".png"


def film_format(project: Project) -> ffmpeg.CanonicalFormat:
    width, height = ffmpeg.canonical_size(project.aspect_ratio, settings.MEDIA_BASE_HEIGHT)
    return ffmpeg.CanonicalFormat(width, height, settings.MEDIA_FPS)


def gather(fn: Callable[[T], R], items: Iterable[T]) -> list[tuple[T, R | Exception]]:
    """Run independent provider calls side by side (they are I/O-bound). Each call's outcome is
    kept, so a step stores what succeeded before reporting what failed. `fn` must not touch the
    database: threads would get connections outside the step's transaction."""
    items = list(items)

    def call(item: T) -> tuple[T, R | Exception]:
        try:
            return item, fn(item)
        except Exception as error:
            return item, error

    if len(items) <= 1:
        return [call(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(settings.STEP_CONCURRENCY, len(items))) as pool:
        return list(pool.map(call, items))


def first_error(outcomes: list[tuple[T, R | Exception]]) -> Exception | None:
    return next((r for _, r in outcomes if isinstance(r, Exception)), None)


def cancel_jobs(project: Project, *, types: list[str], target_ids: list[int] | None = None) -> None:
    """Jobs working on content that is about to be replaced."""
    from generation.services import job_cancel

    jobs = project.jobs.filter(type__in=types, status__in=GenerationJob.ACTIVE, parent=None)
    if target_ids is not None:
        jobs = jobs.filter(target_id__in=target_ids)
    for job in jobs:
        job_cancel(job=job, set_project_status=False)
