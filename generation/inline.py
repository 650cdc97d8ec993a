"""Run the pipeline's RQ jobs inside this process: for the CLI without a worker, and tests."""

import time

import django_rq
from rq import SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer


def promote_due(queue, *, everything: bool = False, before: float | None = None) -> int:
    """Enqueue scheduled jobs (polls, back-offs) due by `before` (default now), or all."""
    registry = queue.scheduled_job_registry
    if everything:
        ids = registry.get_job_ids()
    else:
        ids = registry.get_jobs_to_schedule(int(time.time() if before is None else before))
    for job_id in ids:
        job = Job.fetch(job_id, connection=queue.connection, serializer=JSONSerializer)
        registry.remove(job)
        queue._enqueue_job(job, at_front=job.should_enqueue_at_front())
    return len(ids)


def work_once(*, everything: bool = False) -> bool:
    """Run what is queued now; True if anything ran or is scheduled for later."""
    queue = django_rq.get_queue("default")
    worker = SimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer)
    promote_due(queue, everything=everything)
    ran = queue.count > 0
    worker.work(burst=True)
    return ran or queue.scheduled_job_registry.count > 0
