"""Helpers to run the pipeline's RQ jobs in tests: in-process (SimpleWorker) or real workers."""

import time

import django_rq
from rq import SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer


def promote_scheduled(queue) -> int:
    """Move jobs scheduled for later (polls, retry back-offs) onto the queue right now."""
    registry = queue.scheduled_job_registry
    moved = 0
    for job_id in registry.get_job_ids():
        job = Job.fetch(job_id, connection=queue.connection, serializer=JSONSerializer)
        registry.remove(job)
        queue._enqueue_job(job)
        moved += 1
    return moved


def drain(*, rounds: int = 200) -> None:
    """Run every queued and scheduled job until nothing is left."""
    queue = django_rq.get_queue("default")
    worker = SimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer)
    for _ in range(rounds):
        worker.work(burst=True)
        if not promote_scheduled(queue) and queue.count == 0:
            return
    raise AssertionError("the pipeline did not settle")


def wait_for(predicate, *, timeout: float = 60, interval: float = 0.1, message: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(message or "condition not met in time")
