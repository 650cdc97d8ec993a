"""Run the pipeline's RQ jobs inside this process: for the CLI without a worker, and tests."""

import time

import django_rq
from rq import SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer


def promote_due(queue, *, everything: bool = False) -> int:
    """Enqueue scheduled jobs (polls, back-offs) whose time has come, or all of them."""
    registry = queue.scheduled_job_registry
    ids = registry.get_job_ids() if everything else registry.get_jobs_to_schedule(int(time.time()))
    for job_id in ids:
        job = Job.fetch(job_id, connection=queue.connection, serializer=JSONSerializer)
        registry.remove(job)
        queue._enqueue_job(job)
    return len(ids)


def work_once(*, everything: bool = False) -> bool:
    """Run what is queued now; True if anything ran or is scheduled for later."""
    queue = django_rq.get_queue("default")
    worker = SimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer)
    promote_due(queue, everything=everything)
    ran = queue.count > 0
    worker.work(burst=True)
    return ran or queue.scheduled_job_registry.count > 0
