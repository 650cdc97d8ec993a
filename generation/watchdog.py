"""Resume pipeline work whose RQ job was lost (worker SIGKILL, Redis restart or flush).

Postgres holds the truth, so the sweep needs nothing from Redis but "is this RQ job alive?".
"""

import logging
import time
from datetime import timedelta

import django_rq
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from rq.job import Job as RQJob
from rq.serializers import JSONSerializer

from filmstudio import eventstore
from generation import services
from generation.events import project_channel
from generation.jobs import hold_project_lock, wake_project_waiters
from generation.jobtypes import project_waiter_types, remote_types
from generation.models import GenerationJob
from generation.queue import get_queue, promote_due

logger = logging.getLogger(__name__)
Job = GenerationJob
ALIVE = {"queued", "scheduled", "started", "deferred"}


def rq_job_alive(rq_job_id: str) -> bool:
    if not rq_job_id:
        return False
    try:
        job = RQJob.fetch(
            rq_job_id, connection=django_rq.get_connection("default"), serializer=JSONSerializer
        )
    except Exception:  # NoSuchJobError, or a record we cannot read: either way, not alive
        return False
    status = job.get_status(refresh=False)
    return getattr(status, "value", str(status)) in ALIVE


def persist_live_events(recent: float = 600.0, most: int = 100) -> int:
    """The live events of projects at work (jobs active or changed in the last `recent`
    seconds, at most `most` projects), from Redis into the replay table: a job process killed
    before its end never stored its own. How many events were new there."""
    since = timezone.now() - timedelta(seconds=recent)
    active = Job.objects.filter(Q(status__in=Job.ACTIVE) | Q(updated_at__gte=since))
    projects = active.order_by().values_list("project_id", flat=True).distinct()[:most]
    return eventstore.persist_recent([project_channel(pk) for pk in projects])


def promote_overdue(grace: float) -> int:
    """RQ's scheduler lives in one worker and holds a lock for a minute: when that worker is
    killed, scheduled polls and back-offs wait for the lock to expire. Move the overdue ones."""
    return promote_due(get_queue(), before=time.time() - grace)


def sweep() -> dict[str, int]:
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT)
    resumed = {"running": 0, "queued": 0, "waiting": 0}
    resumed["overdue"] = promote_overdue(settings.JOB_HEARTBEAT_TIMEOUT)

    for job in Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=cutoff):
        logger.warning(
            "job %s lost its worker (no heartbeat since %s): resumed", job.pk, job.heartbeat_at
        )
        if services.job_resume_lost(job=job, stale_before=cutoff):
            resumed["running"] += 1

    # Plain containers are never queued (they run while their children do); a queued job with
    # children is a refresh between its stages and goes to RQ like any other.
    queued = Job.objects.filter(status=Job.Status.QUEUED, updated_at__lt=cutoff)
    for job in queued:
        if not rq_job_alive(job.rq_job_id):
            logger.warning("job %s was queued but its RQ job is gone: re-enqueued", job.pk)
            if services.job_resume_lost(job=job):
                resumed["queued"] += 1

    poll_cutoff = cutoff - timedelta(seconds=settings.VIDEO_POLL_INTERVAL)
    waiting = Job.objects.filter(status=Job.Status.WAITING, heartbeat_at__lt=poll_cutoff)
    for job in waiting.exclude(type__in=[*remote_types(), *project_waiter_types()]):
        # A stage-by-stage job (refresh) whose children all ended while nobody noticed.
        if not job.children.filter(status__in=Job.ACTIVE).exists():
            services.job_resume_children_done(job=job)
    waiters = waiting.filter(type__in=project_waiter_types())
    paused = Job.objects.filter(status=Job.Status.PAUSED).values("project_id")
    for project_id in set(
        waiters.exclude(project_id__in=paused).values_list("project_id", flat=True)
    ):
        # Waiting for a project that no longer moves (a wake lost with its worker); one whose
        # work is paused for the budget waits for the person (raising it moves the project).
        with transaction.atomic():
            hold_project_lock(project_id)
            resumed["waiting"] += len(wake_project_waiters(project_id))
    for job in waiting.filter(type__in=remote_types()):
        if not rq_job_alive(job.rq_job_id):
            logger.warning("job %s waits on a remote clip but nobody polls: poll resumed", job.pk)
            if services.job_resume_lost(job=job, poll=True):
                resumed["waiting"] += 1
    return resumed
