"""RQ delivery of job rows. Postgres holds the truth; RQ only carries job ids to workers.

Everything enqueued inside a transaction reaches Redis only when it commits (django-rq's
`COMMIT_MODE="on_db_commit"` for immediate work; scheduled work is deferred the same way here,
since django-rq only wraps `enqueue_call`), so a worker always finds the row it is handed."""

import logging
import time
import uuid
from datetime import timedelta

import django_rq
from django.conf import settings
from django.db import transaction
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob

from generation.models import GenerationJob

logger = logging.getLogger(__name__)

RUN_TASK = "generation.tasks.run_job"
POLL_TASK = "generation.tasks.poll_video"
POLLER_TASK = "generation.tasks.poll_waiting"
POLLER_KEY = "filmstudio:video-poller"


def get_queue():
    return django_rq.get_queue("default")


def enqueue(job_id: int, *, delay: float = 0, task: str = RUN_TASK, urgent: bool = False) -> str:
    """Hand a job row to RQ once the current transaction commits (at once outside one).

    `urgent` work goes to the front of the queue: clip submissions, so the remote video service
    (the long pole) starts as early as possible. Polls stay in line: at the front, dozens of
    clips in flight would poll ahead of the submissions still waiting (`make bench`, bench 2)."""
    queue = get_queue()
    rq_id = f"job-{job_id}-{uuid.uuid4().hex[:8]}"
    GenerationJob.objects.filter(pk=job_id).update(rq_job_id=rq_id)
    if delay > 0:
        transaction.on_commit(
            lambda: queue.enqueue_in(
                timedelta(seconds=delay), task, job_id, job_id=rq_id, at_front=urgent
            )
        )
    else:
        queue.enqueue(task, job_id, job_id=rq_id, at_front=urgent)
    return rq_id


def rq_cancel(rq_job_id: str) -> None:
    """Drop a delivery that has not started (after commit). A running one sees its row's status."""
    if not rq_job_id:
        return

    def cancel() -> None:
        try:
            queue = get_queue()
            RQJob.fetch(
                rq_job_id, connection=queue.connection, serializer=queue.serializer
            ).cancel()
        except NoSuchJobError:
            pass
        except Exception:  # running or finished: the row's status decides anyway
            logger.debug("rq job %s not cancelled", rq_job_id)

    transaction.on_commit(cancel)


def ensure_poller() -> None:
    """One scheduled poller at a time (a token in Redis; it expires if the poller is lost)."""
    interval = settings.VIDEO_POLL_INTERVAL
    queue = get_queue()
    if queue.connection.set(POLLER_KEY, "1", nx=True, px=int((4 * interval + 10) * 1000)):
        queue.enqueue_in(
            timedelta(seconds=interval), POLLER_TASK, job_id=f"poller-{uuid.uuid4().hex[:8]}"
        )


def poller_done() -> None:
    get_queue().connection.delete(POLLER_KEY)


CANCEL_REMOTE_TASK = "generation.tasks.cancel_remote"


def cancel_remote(request_ids: list[str]) -> None:
    """Ask a worker to cancel these requests at the video service (no web request waits on it)."""
    get_queue().enqueue(CANCEL_REMOTE_TASK, request_ids, at_front=True)


def promote_due(queue, *, everything: bool = False, before: float | None = None) -> int:
    """Move scheduled jobs (polls, back-offs) due by `before` (default now), or all, onto the
    queue. RQ's scheduler does this in one worker holding a lock for a minute; the watchdog and
    the in-process runner (CLI, tests) use this when that worker is gone or absent."""
    registry = queue.scheduled_job_registry
    if everything:
        ids = registry.get_job_ids()
    else:
        ids = registry.get_jobs_to_schedule(int(time.time() if before is None else before))
    for job_id in ids:
        job = RQJob.fetch(job_id, connection=queue.connection, serializer=queue.serializer)
        registry.remove(job)
        queue.enqueue_job(job, at_front=job.should_enqueue_at_front())
    return len(ids)
