"""RQ delivery of job rows. Postgres holds the truth; RQ only carries job ids to workers.

Everything enqueued inside a transaction reaches Redis only when it commits (django-rq's
`COMMIT_MODE="on_db_commit"` for immediate work; scheduled work is deferred the same way here,
since django-rq only wraps `enqueue_call`), so a worker always finds the row it is handed."""

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
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
# A clip the poller saw finished: delivered without asking for its status again.
DELIVER_TASK = "generation.tasks.deliver_video"
POLLER_TASK = "generation.tasks.poll_waiting"
POLLER_KEY = "filmstudio:video-poller"
# Several rows of one kind of work in one RQ job (`batched`): run side by side on its threads.
BATCH_TASKS = {
    RUN_TASK: "generation.tasks.run_jobs",
    POLL_TASK: "generation.tasks.poll_videos",
    DELIVER_TASK: "generation.tasks.deliver_videos",
}
BATCH_PREFIX = "batch-"


def get_queue():
    return django_rq.get_queue("default")


def enqueue(job_id: int, *, delay: float = 0, task: str = RUN_TASK, urgent: bool = False) -> str:
    """Hand a job row to RQ once the current transaction commits (at once outside one).

    `urgent` work goes to the front of the queue: clip submissions, so the remote video service
    (the long pole) starts as early as possible. Polls stay in line: at the front, dozens of
    clips in flight would poll ahead of the submissions still waiting (`make bench`, bench 2)."""
    batch = getattr(_batching, "batch", None)
    if batch is not None and delay <= 0 and task in BATCH_TASKS:
        rq_id = batch.add(job_id, task, urgent)
        GenerationJob.objects.filter(pk=job_id).update(rq_job_id=rq_id)
        return rq_id
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


class _Batch:
    """Rows handed over inside `batched`, `size` to an RQ job, sent when the block ends."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.chunks: list[tuple[str, str, list[int], bool]] = []  # (task, rq id, rows, urgent)
        self.open: dict[str, int] = {}  # task -> index of its chunk being filled

    def add(self, job_id: int, task: str, urgent: bool) -> str:
        index = self.open.get(task)
        if index is None or len(self.chunks[index][2]) >= self.size:
            rq_id = f"{BATCH_PREFIX}{uuid.uuid4().hex[:12]}"
            self.chunks.append((task, rq_id, [], urgent))
            index = self.open[task] = len(self.chunks) - 1
        task, rq_id, rows, was_urgent = self.chunks[index]
        rows.append(job_id)
        self.chunks[index] = (task, rq_id, rows, was_urgent or urgent)
        return rq_id

    def send(self) -> None:
        queue = get_queue()
        # At the front, the last one sent runs first: send those in reverse to keep the order.
        front = [chunk for chunk in self.chunks if chunk[3]]
        for task, rq_id, rows, urgent in [*reversed(front), *(c for c in self.chunks if not c[3])]:
            queue.enqueue(BATCH_TASKS[task], rows, job_id=rq_id, at_front=urgent)


_batching = threading.local()


@contextlib.contextmanager
def batched(size: int | None = None) -> Iterator[None]:
    """Runs and polls enqueued inside (at once, not delayed) reach RQ together when the block
    ends (after commit, like `enqueue`): `size` rows (JOB_BATCH_SIZE) per RQ job, which runs
    them side by side on its threads (`tasks.run_jobs`, `tasks.poll_videos`). Fifty clip
    submissions or deliveries are then a dozen forked jobs, not fifty, each waiting on the
    network, ffmpeg and Postgres for several rows at a time. Each row keeps its own claim,
    reservation and bookkeeping; a cancelled one is skipped by its claim."""
    if getattr(_batching, "batch", None) is not None:  # nested: the outer block sends them
        yield
        return
    batch = _Batch(size or settings.JOB_BATCH_SIZE)
    _batching.batch = batch
    try:
        yield
    finally:
        _batching.batch = None
    if batch.chunks:
        transaction.on_commit(batch.send)


def rq_cancel(rq_job_id: str) -> None:
    """Drop a delivery that has not started (after commit). A running one sees its row's status.
    A batch's RQ job carries other rows too: it stays, and skips this one at its claim."""
    if not rq_job_id or rq_job_id.startswith(BATCH_PREFIX):
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


# RQ's scheduler moves due jobs onto the queue once a second (its interval cannot go lower:
# it is also the base of an integer lock TTL); `tasks.poll_waiting` looks between its ticks.
SCHEDULER_TICK = 1.0


def ensure_poller(*, now: bool = False) -> None:
    """One scheduled poller at a time (a token in Redis; it expires if the poller is lost).
    `now`: at the back of the queue instead of VIDEO_POLL_INTERVAL later (clips are finishing:
    the rest of a burst is looked for as soon as the deliveries ahead of it are under way)."""
    interval = settings.VIDEO_POLL_INTERVAL
    queue = get_queue()
    if queue.connection.set(POLLER_KEY, "1", nx=True, px=int((4 * interval + 10) * 1000)):
        job_id = f"poller-{uuid.uuid4().hex[:8]}"
        if now:
            queue.enqueue(POLLER_TASK, job_id=job_id)
        else:
            queue.enqueue_in(timedelta(seconds=interval), POLLER_TASK, job_id=job_id)


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
