import contextvars
import functools
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from generation import costs, services
from generation.jobs import jobs_cancel, lock_if_active
from generation.models import GenerationJob
from media import ffmpeg
from media.storage import delete_name, media_name, save_whole
from projects.models import Project, Take
from projects.takes import take_record

T = TypeVar("T")
R = TypeVar("R")


class UnitVanished(Exception):
    """The row a step works on was deleted (project deleted, unit regenerated), or its job was
    cancelled while a provider call ran: end quietly, replacing nothing."""


def read_media(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def store_bytes(project_id: int, media_type: str, stem: str, data: bytes, suffix: str) -> str:
    return save_whole(media_name(project_id, media_type, stem, suffix), ContentFile(data))


def store_file(project_id: int, media_type: str, stem: str, path: Path) -> str:
    with path.open("rb") as handle:
        return save_whole(media_name(project_id, media_type, stem, path.suffix), File(handle))


def delete_after_commit(*names: str) -> None:
    for name in names:
        if name:
            transaction.on_commit(functools.partial(delete_name, name))


def image_suffix(data: bytes) -> str:
    return ".jpg" if data[:3] == b"\xff\xd8\xff" else ".png"


def film_format(project: Project) -> ffmpeg.CanonicalFormat:
    return film_format_of(project.aspect_ratio)


def film_format_of(aspect_ratio: str) -> ffmpeg.CanonicalFormat:
    width, height = ffmpeg.canonical_size(aspect_ratio, settings.MEDIA_BASE_HEIGHT)
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
    # Each call runs in a copy of this context: the step's meter goes with it (generation.usage).
    contexts = [contextvars.copy_context() for _ in items]
    with ThreadPoolExecutor(max_workers=min(settings.STEP_CONCURRENCY, len(items))) as pool:
        return list(pool.map(lambda ctx, item: ctx.run(call, item), contexts, items))


def first_error(outcomes: list[tuple[T, R | Exception]]) -> Exception | None:
    return next((r for _, r in outcomes if isinstance(r, Exception)), None)


def lock_if_still_wanted(job: GenerationJob) -> None:
    """Take the project's row lock and make sure the job was not cancelled while its provider
    call ran. Call it first in the transaction that replaces content: cancelling takes the same
    lock, so a cancelled step never deletes or adds anything."""
    if not lock_if_active(job):
        raise UnitVanished(f"job {job.pk} was cancelled before its result was stored")


def cancel_jobs(
    project: Project, *, types: Collection[str], frame_ids: Collection[int] | None = None
) -> None:
    """Jobs working on content that is about to be replaced: parents and children alike. With
    `frame_ids`, only the jobs on those frames (a target id means nothing without its type)."""
    jobs = project.jobs.filter(type__in=types)
    if frame_ids is not None:
        jobs = jobs.filter(target_type=GenerationJob.TargetType.FRAME, target_id__in=frame_ids)
    jobs_cancel(jobs, "Replaced: the content this job worked on was regenerated.")


# Jobs that redo one unit: their seed differs from the first draw's, so a redo is a new take.
REDO_TYPES = (GenerationJob.Type.PORTRAIT, GenerationJob.Type.KEYFRAME)


def take_seed(job: GenerationJob, unit_pk: int) -> int:
    """The unit's own seed for its first take; a new one for a redo (a job type that only
    redoes, or a job asked to redraw: the same prompt offline would draw the same image)."""
    redo = job.type in REDO_TYPES or (job.params or {}).get("redraw")
    return unit_pk + job.pk if redo else unit_pk


def record_take(job: GenerationJob, provider, unit: tuple[str, int], **fields) -> Take:
    """A take made by `provider` for `job`: who made it is recorded with it, and what its calls
    cost goes into the ledger in the same transaction (`unit`: what the calls were for)."""
    return take_record(
        project_id=job.project_id,
        provider=provider.name,
        model=getattr(provider, "model", ""),
        source_job_id=job.pk,
        cost_usd=costs.record_unit(*unit),
        **fields,
    )


def finish_with_outcomes(
    job: GenerationJob,
    outcomes: list[tuple[T, R | Exception]],
    store: Callable[[T, str], int | None] | None = None,
    *,
    result: dict,
    store_all: Callable[[list[tuple[T, str]]], list[int | None]] | None = None,
) -> None:
    """Store what a step's provider calls made, then finish the job, in one transaction under
    the project's row lock: a job cancelled meanwhile stores nothing (its files go), and the
    takes become current together with the job's success.

    `store(item, name)` records one file and returns its take's id, or None when its unit is
    gone; or `store_all([(item, name), ...])` records them all at once (a take id or None for
    each). When a call failed, what succeeded is kept and the first failure is raised."""
    made: list[tuple[T, str]] = [(i, name) for i, name in outcomes if isinstance(name, str)]
    error = first_error(outcomes)
    with transaction.atomic():
        wanted = lock_if_active(job)
        if wanted:
            take_ids = []
            if store_all is not None:
                stored = store_all(made) if made else []
            else:
                stored = [store(item, name) for item, name in made]  # type: ignore[misc]
            for (_, name), take_id in zip(made, stored, strict=True):
                if take_id is None:
                    delete_after_commit(name)
                else:
                    take_ids.append(take_id)
            if error is None:
                services.job_succeed(job, {**result, "take_ids": take_ids})
    if not wanted:
        for _, name in made:
            delete_name(name)
        raise UnitVanished(f"job {job.pk} was cancelled before its result was stored")
    if error is not None:
        raise error
