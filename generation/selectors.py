"""Reads of jobs and queues for the API, dashboards and the director (owner-scoped)."""

import django_rq
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from rq import Worker

from generation.models import GenerationJob
from projects.models import Project
from projects.takes import refresh_plan


def jobs_for_user(user) -> QuerySet[GenerationJob]:
    if not user.is_authenticated:
        return GenerationJob.objects.none()
    return GenerationJob.objects.filter(project__owner=user)


def job_for_user(user, job_id: int) -> GenerationJob:
    return get_object_or_404(jobs_for_user(user).select_related("project"), pk=job_id)


def queue_status() -> dict:
    queues = []
    for name in ("default",):
        queue = django_rq.get_queue(name)
        queues.append(
            {
                "name": name,
                "queued": queue.count,
                "started": queue.started_job_registry.count,
                "scheduled": queue.scheduled_job_registry.count,
                "deferred": queue.deferred_job_registry.count,
                "failed": queue.failed_job_registry.count,
                "finished": queue.finished_job_registry.count,
            }
        )
    workers = [
        {
            "name": worker.name,
            "state": str(worker.get_state()),
            "queues": worker.queue_names(),
            "current_job": worker.get_current_job_id(),
        }
        for worker in Worker.all(connection=django_rq.get_connection("default"))
    ]
    return {"queues": queues, "workers": workers}


def project_stale_report(project: Project, *, plan: bool = False) -> dict:
    """`GET /stale` (the stale units) or a refresh's dry run (`plan`: those and what will follow
    them); the estimate is always of the whole refresh."""
    planned = refresh_plan(project)
    units = planned if plan else [u for u in planned if not u.get("follows")]
    counts: dict[str, int] = {}
    for unit in planned:
        counts[unit["type"]] = counts.get(unit["type"], 0) + 1
    # Prices come with the cost work; until then the estimate counts the paid calls.
    return {
        "units": units,
        "estimate": {
            "total_usd": None,
            "items": [{"stage": kind, "count": n} for kind, n in counts.items()],
        },
    }
