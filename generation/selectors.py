"""Reads of jobs and queues for the API, dashboards and the director (owner-scoped)."""

from datetime import timedelta

import django_rq
from django.db.models import QuerySet, Sum
from django.db.models.functions import TruncDate
from django.shortcuts import get_object_or_404
from django.utils import timezone
from rq import Worker

from generation import costs, estimates
from generation.models import GenerationJob, SpendEntry
from projects.models import Frame, Project
from projects.takes import refresh_plan


def jobs_for_user(user) -> QuerySet[GenerationJob]:
    if not user.is_authenticated:
        return GenerationJob.objects.none()
    return GenerationJob.objects.filter(project__owner=user)


def job_for_user(user, job_id: int) -> GenerationJob:
    return get_object_or_404(jobs_for_user(user).select_related("project"), pk=job_id)


def queue_status(*, workers: bool = False) -> dict:
    """The queues' counts and how many workers are up (busy); `workers` (staff only) adds each
    worker's host name, state and current RQ job."""
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
    found = [
        {
            "name": worker.name,
            "state": str(worker.get_state()),
            "queues": worker.queue_names(),
            "current_job": worker.get_current_job_id(),
        }
        for worker in Worker.all(connection=django_rq.get_connection("default"))
    ]
    return {
        "queues": queues,
        "workers": found if workers else [],
        "workers_total": len(found),
        "workers_busy": sum(1 for worker in found if worker["state"] == "busy"),
    }


def project_stale_report(project: Project, *, plan: bool = False) -> dict:
    """`GET /stale` (the stale units) or a refresh's dry run (`plan`: those and what will follow
    them); the estimate is always of the whole refresh."""
    planned = refresh_plan(project)
    units = planned if plan else [u for u in planned if not u.get("follows")]
    return {
        "units": units,
        "estimate": estimates.document(project, estimates.refresh(project, planned)),
    }


def project_estimate(project: Project) -> dict:
    """`GET /api/projects/{id}/estimate`: what the pipeline would still spend from here."""
    return estimates.document(project, estimates.project_rest(project))


def job_quote(
    project: Project, type: str, target_type: str, target_id: int, params: dict | None = None
) -> dict:
    """A job request's dry run: what it and what follows it by itself would spend."""
    return estimates.document(
        project, estimates.request(project, type, target_type, target_id, params)
    )


def _usd(value) -> float:
    return float(value or 0)


def project_spend(project: Project) -> dict:
    """`GET /api/projects/{id}/spend` without its entries: the ledger's sums."""
    entries = SpendEntry.objects.filter(project=project)
    by_stage = entries.values("stage").annotate(usd=Sum("usd")).order_by("stage")
    by_provider = entries.values("provider", "model").annotate(usd=Sum("usd"))
    return {
        "spent_usd": _usd(project.spent_usd),
        "budget_usd": None if project.budget_usd is None else _usd(project.budget_usd),
        "reserved_usd": _usd(project.reserved_usd),
        "by_stage": {row["stage"]: _usd(row["usd"]) for row in by_stage},
        "by_provider": {
            f"{row['provider']}/{row['model']}": _usd(row["usd"])
            for row in by_provider.order_by("provider", "model")
        },
    }


def spend_entries(project: Project):
    return SpendEntry.objects.filter(project=project).order_by("-created_at", "-id")


def spend_by_user(days: int = 14) -> list[dict]:
    """Staff dashboard: each user's spend per day over the last `days` days."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        SpendEntry.objects.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("user_id", "user__username", "day")
        .annotate(usd=Sum("usd"))
        .order_by("user__username", "day")
    )
    return [
        {
            "user": r["user__username"],
            "user_id": r["user_id"],
            "day": r["day"],
            "usd": _usd(r["usd"]),
        }
        for r in rows
    ]


def spend_by_project(limit: int = 20) -> list[dict]:
    """Staff dashboard: the projects that spent most, with their budgets."""
    rows = Project.objects.filter(spent_usd__gt=0).order_by("-spent_usd")[:limit]
    return [
        {
            "id": p.pk,
            "title": p.title,
            "owner": p.owner.username,
            "spent_usd": _usd(p.spent_usd),
            "budget_usd": None if p.budget_usd is None else _usd(p.budget_usd),
            "status": p.status,
        }
        for p in rows.select_related("owner")
    ]


def spend_users(user_ids: list[int]) -> dict[int, dict]:
    """Staff dashboard: each user's spend (or reservation) over the last 24 hours beside their
    effective limits (the admin's `UserLimit`, else the settings' defaults)."""
    found = {}
    for user_id in user_ids:
        limits = costs.limits_for(user_id)
        found[user_id] = {
            "spent_24h_usd": _usd(costs.spent_today(user_id)),
            "daily_spend_usd": _usd(limits.daily_spend_usd),
            "max_active_projects": limits.max_active_projects,
            "active_projects": len(costs.active_projects(user_id)),
        }
    return found


def user_limits(user_id: int) -> costs.Limits:
    """The limits that hold for a user now (the admin shows them beside what staff set)."""
    return costs.limits_for(user_id)


def keyframe_consistency(project_ids: list[int]) -> dict[int, dict]:
    """Per project, how its current keyframes scored against their characters' portraits
    (`generation.consistency`): `{scored, average, lowest, flagged}`, in one query. A keyframe
    without a verdict (no one in the shot) is not counted; a project without any is absent."""
    rows = Frame.objects.filter(
        scene__project_id__in=project_ids, keyframe_take__consistency__isnull=False
    ).values_list("scene__project_id", "keyframe_take__consistency")
    scores: dict[int, list[float]] = {}
    flagged: dict[int, int] = {}
    for project_id, verdict in rows:
        if not isinstance(verdict, dict) or not isinstance(verdict.get("score"), int | float):
            continue
        scores.setdefault(project_id, []).append(float(verdict["score"]))
        flagged[project_id] = flagged.get(project_id, 0) + bool(verdict.get("flagged"))
    return {
        pk: {
            "scored": len(values),
            "average": sum(values) / len(values),
            "lowest": min(values),
            "flagged": flagged[pk],
        }
        for pk, values in scores.items()
    }
