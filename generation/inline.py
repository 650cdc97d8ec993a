"""Run the pipeline's RQ jobs inside this process: for the CLI without a worker, and tests."""

import django_rq
from rq.serializers import JSONSerializer

from generation.queue import promote_due
from generation.worker import InlineWorker


def work_once(*, everything: bool = False) -> bool:
    """Run what is queued now; True if anything ran or is scheduled for later."""
    queue = django_rq.get_queue("default")
    worker = InlineWorker([queue], connection=queue.connection, serializer=JSONSerializer)
    promote_due(queue, everything=everything)
    ran = queue.count > 0
    worker.work(burst=True)
    return ran or queue.scheduled_job_registry.count > 0
