"""RQ delivery: work reaches Redis only when its transaction commits, and the RQ internals we
lean on still behave as we assume (a change in RQ fails here, not in production)."""

import signal
import time

import django_rq
import pytest
from django.db import transaction
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.worker import WorkerStatus

from generation import queue
from generation.jobtypes import JOB_TYPES, load_job_types
from generation.models import GenerationJob
from generation.worker import PreloadWorker
from tests.factories import JobFactory, ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def rq_queue():
    q = django_rq.get_queue("default")
    q.connection.flushdb()
    yield q
    q.connection.flushdb()


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
