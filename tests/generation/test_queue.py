"""RQ delivery: work reaches Redis only when its transaction commits, and the RQ internals we
lean on still behave as we assume (a change in RQ fails here, not in production)."""

import signal
import threading
import time

import pytest
from django.db import transaction
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.worker import WorkerStatus

from generation import queue, services, tasks
from generation.jobtypes import JOB_TYPES, load_job_types
from generation.models import GenerationJob
from generation.worker import PreloadWorker
from tests.factories import JobFactory, ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)


def job_row(user) -> GenerationJob:
    return JobFactory(project=ProjectFactory(owner=user))


def test_work_enqueued_in_a_transaction_reaches_redis_on_commit(user, rq_queue):
    job = job_row(user)
    with transaction.atomic():
        rq_id = queue.enqueue(job.pk)
        assert rq_queue.count == 0
    assert rq_queue.job_ids == [rq_id]
    job.refresh_from_db()
    assert job.rq_job_id == rq_id


def test_work_enqueued_in_a_rolled_back_transaction_never_reaches_redis(user, rq_queue):
    job = job_row(user)
    with pytest.raises(RuntimeError), transaction.atomic():
        queue.enqueue(job.pk)
        queue.enqueue(job.pk, delay=5)
        raise RuntimeError("rolled back")
    assert rq_queue.count == 0
    assert rq_queue.scheduled_job_registry.count == 0


def test_scheduled_work_waits_for_the_commit_too(user, rq_queue):
    job = job_row(user)
    with transaction.atomic():
        queue.enqueue(job.pk, delay=30)
        assert rq_queue.scheduled_job_registry.count == 0
    assert rq_queue.scheduled_job_registry.count == 1


def test_promote_due_moves_due_scheduled_jobs_onto_the_queue(user, rq_queue):
    job = job_row(user)
    rq_id = queue.enqueue(job.pk, delay=0.01)
    time.sleep(1.1)  # RQ schedules to the second
    assert queue.promote_due(rq_queue) == 1
    assert rq_queue.job_ids == [rq_id]
    assert rq_queue.scheduled_job_registry.count == 0


def test_rq_cancel_drops_a_delivery_that_has_not_started(user, rq_queue):
    job = job_row(user)
    rq_id = queue.enqueue(job.pk)
    queue.rq_cancel(rq_id)
    assert rq_queue.count == 0
    status = RQJob.fetch(rq_id, connection=rq_queue.connection).get_status()
    assert str(getattr(status, "value", status)) == "canceled"
    queue.rq_cancel("job-that-never-existed")  # gone already: not an error
    with pytest.raises(NoSuchJobError):
        RQJob.fetch("job-that-never-existed", connection=rq_queue.connection)


def test_batched_work_reaches_redis_on_commit_a_few_rows_per_rq_job(user, rq_queue):
    project = ProjectFactory(owner=user)
    a, b, c = (JobFactory(project=project) for _ in range(3))
    d = JobFactory(project=project)
    with transaction.atomic(), queue.batched(size=2):
        for job in (a, b, c):
            queue.enqueue(job.pk, urgent=True)
        queue.enqueue(d.pk, task=queue.POLL_TASK)
        assert rq_queue.count == 0
    batches = rq_queue.jobs
    # urgent ones at the front, in the order they were made
    assert [(j.func_name, j.args) for j in batches] == [
        ("generation.tasks.run_jobs", [[a.pk, b.pk]]),
        ("generation.tasks.run_jobs", [[c.pk]]),
        ("generation.tasks.poll_videos", [[d.pk]]),
    ]
    for job, batch in ((a, 0), (b, 0), (c, 1), (d, 2)):
        job.refresh_from_db()
        assert job.rq_job_id == batches[batch].id
    # Cancelling one row leaves the RQ job that carries the others: its claim skips the row.
    queue.rq_cancel(a.rq_job_id)
    assert rq_queue.count == 3


def test_a_batch_runs_its_rows_side_by_side_each_claimed_on_its_own(user):
    project = ProjectFactory(owner=user)
    rows = [JobFactory(project=project).pk for _ in range(3)]
    GenerationJob.objects.filter(pk=rows[0]).update(status=GenerationJob.Status.CANCELLED)
    claimed, threads = [], set()

    def claim(pk: int) -> None:
        threads.add(threading.get_ident())
        if services.job_claim(pk) is not None:  # each thread on a connection of its own
            claimed.append(pk)

    tasks.side_by_side(claim, rows)
    assert sorted(claimed) == rows[1:]  # the cancelled row is skipped by its claim
    assert threading.get_ident() in threads and len(threads) >= 2  # side by side
    assert GenerationJob.objects.get(pk=rows[1]).status == GenerationJob.Status.RUNNING


@pytest.mark.parametrize("busy", [False, True])
def test_a_stop_request_ends_the_preload_worker_idle_or_busy(rq_queue, busy):
    """Idle, RQ raises StopRequested without setting its flag; PreloadWorker must still stop
    instead of "working again" after what looks like a crash."""
    worker = PreloadWorker([rq_queue], connection=rq_queue.connection)
    worker.set_state(WorkerStatus.BUSY if busy else WorkerStatus.IDLE)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        worker.request_stop(signal.SIGTERM, None)
    except Exception as error:
        assert type(error).__name__ == "StopRequested"
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    assert worker.stop_asked is True


def test_every_job_type_has_a_row_and_every_path_resolves():
    assert set(JOB_TYPES) == set(GenerationJob.Type.values)
    load_job_types()
    targets = set(GenerationJob.TargetType.values)
    for jt in JOB_TYPES.values():
        assert set(jt.targets) <= targets
