"""RQ entry points: a job id in, one step run. Postgres decides; a duplicate delivery is a no-op."""

import contextlib
import logging
import random
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
)
from django.utils import timezone

from filmstudio.logging import public_error, redact
from generation import costs, estimates, queue, services, usage
from generation.jobtypes import job_type, remote_types
from generation.models import GenerationJob
from generation.providers import video_provider
from generation.providers.base import ProviderError, TransientProviderError
from generation.steps import videos
from generation.steps.common import UnitVanished, gather

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def heartbeat(job_id: int):
    """Touch the job row while the step runs, so the watchdog can tell lost work from slow."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.JOB_HEARTBEAT_INTERVAL):
                GenerationJob.objects.filter(pk=job_id, status=GenerationJob.Status.RUNNING).update(
                    heartbeat_at=timezone.now()
                )
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _retry_delay(attempts: int, hint: float | None) -> float:
    bound = min(settings.PROVIDER_BACKOFF_CAP, settings.PROVIDER_BACKOFF_BASE * 2**attempts)
    return max(hint or 0.0, random.uniform(0, bound))


# Lost connections, restarts, failovers: the database will be back; the step runs again.
DATABASE_TRANSIENT = (OperationalError, InterfaceError)


def _handle_failure(job: GenerationJob, error: Exception, *, poll: bool = False) -> None:
    if isinstance(error, DATABASE_TRANSIENT):
        connection.close()  # a broken connection stays broken: take a fresh one
        error = TransientProviderError(f"database connection lost: {error}".strip())
    meter = usage.current_meter()
    if meter is not None:
        # What the failed step spent is spent before its reservation goes (a write that fails
        # keeps the calls pending for the step's own flush).
        try:
            costs.flush(meter)
        except DATABASE_TRANSIENT as lost:
            connection.close()
            logger.warning(
                "job %s: spend not written yet (%s); written when the step ends", job.pk, lost
            )
    if _superseded(job):
        # The watchdog took this delivery for lost and queued the job again (an attempt more):
        # the row is the new delivery's; this one's failure must not requeue or fail it.
        logger.warning("job %s attempt %s failed after it was queued again: %s", job.pk,
                       job.attempts, error)  # fmt: skip
        return
    job.refresh_from_db()
    # What the job's owner reads (job.error): the message, without server paths or secrets;
    # the traceback is for staff (the dashboard's job page).
    if isinstance(error, UnitVanished):
        logger.info("job %s: %s; ending quietly", job.pk, error)
        services.job_end_quietly(job, public_error(str(error)))
    elif isinstance(error, TransientProviderError) and job.attempts <= settings.JOB_AUTO_RETRIES:
        delay = _retry_delay(job.attempts, error.retry_after)
        if poll:
            services.job_poll_later(job, delay=delay, reason=public_error(error.message))
        else:
            services.job_requeue(job, delay=delay, reason=public_error(error.message))
    elif isinstance(error, ProviderError):
        services.job_fail(job, public_error(error.message))
    else:
        message = public_error(f"{type(error).__name__}: {error}")
        services.job_fail(job, message, redact(traceback.format_exc()))


def _superseded(job: GenerationJob) -> bool:
    try:
        return services.job_superseded(job.pk, job.attempts)
    except DATABASE_TRANSIENT:
        connection.close()
        return False


def run_job(job_id: int) -> None:
    close_old_connections()
    job = services.job_claim(job_id)
    if job is None:
        logger.info("job %s is not queued (duplicate delivery or cancelled): skipped", job_id)
        return
    logger.info("job %s (%s) started, attempt %s", job.pk, job.type, job.attempts)
    with heartbeat(job.pk), costs.metered(costs.job_meter(job)):
        try:
            # Its estimate is set aside first; a job that does not fit the budget pauses.
            if costs.reserve(job, estimates.total(estimates.job_items(job))):
                job_type(job.type).run(job)
        except Exception as error:
            _handle_failure(job, error)


def side_by_side(task: Callable[[int], None], job_ids: list[int]) -> None:
    """`task` for each job row of a batch (`queue.batched`) at once: every row as if delivered
    on its own. The first runs on this thread (on the connection the worker handed its horse),
    each other one on a thread of its own with a database connection of its own (closed when
    it is done). Inside a transaction (tests that run jobs in-process in theirs) the rows run
    one after the other on this one, which other threads cannot see."""
    if len(job_ids) <= 1 or connection.in_atomic_block:
        for job_id in job_ids:
            task(job_id)
        return

    def run(job_id: int, *, own_connection: bool) -> BaseException | None:
        try:
            task(job_id)
        except Exception as error:  # the others go on; RQ hears of it at the end
            logger.exception("job %s of a batch failed", job_id)
            return error
        finally:
            if own_connection:
                connections.close_all()
        return None

    first, *others = job_ids
    with ThreadPoolExecutor(max_workers=min(settings.JOB_BATCH_SIZE, len(others))) as pool:
        running = [pool.submit(run, job_id, own_connection=True) for job_id in others]
        outcomes = [run(first, own_connection=False), *(r.result() for r in running)]
    errors = [error for error in outcomes if error is not None]
    if errors:
        raise errors[0]


def run_jobs(job_ids: list[int]) -> None:
    """Several job rows handed over together (clip submissions): each as `run_job`."""
    side_by_side(run_job, job_ids)


def poll_videos(job_ids: list[int]) -> None:
    """Several finished clips handed over together: each delivered as by `poll_video`."""
    side_by_side(poll_video, job_ids)


def deliver_videos(job_ids: list[int]) -> None:
    """Several clips the poller saw finished, handed over together: each as `deliver_video`."""
    side_by_side(deliver_video, job_ids)


def deliver_video(job_id: int) -> None:
    """`poll_video` for a clip the poller saw finished: its status is not asked again."""
    poll_video(job_id, completed=True)


def poll_video(job_id: int, *, completed: bool = False) -> None:
    close_old_connections()
    job = (
        GenerationJob.objects.select_related("project")
        .filter(pk=job_id, status=GenerationJob.Status.WAITING)
        .first()
    )
    if job is None:
        return
    with costs.metered(costs.job_meter(job)):
        try:
            videos.poll(job, completed=completed)
        except Exception as error:
            _handle_failure(job, error, poll=True)


def poll_waiting() -> None:
    """Check every clip in flight at once (status only, side by side) and hand the finished
    ones to `poll_video`: one job per round instead of one per clip per round. RQ's scheduler
    starts a round due sooner than its tick (a second) up to a second late: with a shorter
    VIDEO_POLL_INTERVAL, a round that finds nothing finished looks again itself, every
    interval, for up to a tick, before it is scheduled again."""
    close_old_connections()
    interval = settings.VIDEO_POLL_INTERVAL
    until = time.monotonic() + queue.SCHEDULER_TICK
    try:
        while True:
            pending, finishing = _poll_round()
            if not pending or finishing or time.monotonic() + interval >= until:
                break
            time.sleep(interval)
    finally:
        queue.poller_done()
    if pending:
        # Clips finish in bursts (submitted together): while they do, look again at once.
        queue.ensure_poller(now=finishing)


def _poll_round() -> tuple[bool, bool]:
    """One look at the clips due for one: (some are still in flight, some were seen done)."""
    now = timezone.now()
    waiting = GenerationJob.objects.filter(
        type__in=remote_types(), status=GenerationJob.Status.WAITING
    )
    due = list(
        waiting.filter(heartbeat_at__lte=now - timedelta(seconds=settings.VIDEO_POLL_INTERVAL))
        .exclude(provider_request_ids=[])
        .values_list("pk", "provider_request_ids")[:500]
    )
    provider = video_provider()
    outcomes = gather(lambda item: provider.ready(item[1][-1]), due)
    # An error is poll_video's to handle (back-off, attempts): hand it over as if ready, to
    # ask again; the ones seen finished are fetched at once (no second status call).
    finished = [pk for (pk, _), ready in outcomes if ready is not False]
    seen_done = {pk for (pk, _), ready in outcomes if ready is True}
    # Looked at now: the next round (at once, below) does not hand them over a second time
    # while their delivery waits in the queue. One seen finished is not asked about again
    # while it is delivered (on a failure its delivery comes back by itself; a lost one is
    # looked at again JOB_HEARTBEAT_INTERVAL later): rounds in a burst ask only the others.
    waiting.filter(pk__in=[pk for pk, _ in due]).exclude(pk__in=seen_done).update(heartbeat_at=now)
    if seen_done:
        later = now + timedelta(seconds=settings.JOB_HEARTBEAT_INTERVAL)
        waiting.filter(pk__in=seen_done).update(heartbeat_at=later)
    with queue.batched():
        for pk in finished:
            task = queue.DELIVER_TASK if pk in seen_done else queue.POLL_TASK
            queue.enqueue(pk, task=task, urgent=True)
    return waiting.exclude(pk__in=finished).exists(), bool(seen_done)


def cancel_remote(request_ids: list[str]) -> None:
    """Cancel requests in flight at the video service (their jobs were cancelled), so they stop
    costing. Best effort: a request that already finished or is unknown there is fine."""
    provider = video_provider()
    for request_id, outcome in gather(provider.cancel, request_ids):
        if isinstance(outcome, Exception):
            logger.warning("could not cancel request %s at the provider: %s", request_id, outcome)
