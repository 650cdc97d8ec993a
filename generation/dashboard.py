"""Staff dashboards: queues, projects, jobs, spend. Retry and Cancel call the same services as
the API.

Pages render on the server; static/filmstudio/live.js refreshes their `[data-live-part]` regions
in place when the project's eventstream reports a change (or, where no single project is in view,
every few seconds).
"""

import json
import math
from collections.abc import Callable
from datetime import timedelta
from functools import wraps

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Page, Paginator
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from redis.exceptions import RedisError

from filmstudio.api import ID
from filmstudio.exceptions import ConflictError
from filmstudio.streams import authenticated_stream
from filmstudio.support import WORKER_SHELL_COMMAND
from generation import events, services
from generation.jobtypes import generating_statuses
from generation.models import GenerationJob
from generation.selectors import (
    keyframe_consistency,
    queue_status,
    spend_by_project,
    spend_by_user,
    spend_users,
)
from media.signing import blob_url
from projects.models import Project
from projects.selectors import project_hierarchy
from projects.takes import project_stale_units

Job = GenerationJob
PAGE_SIZE = 50
View = Callable[..., HttpResponse]


def staff_required(view: View) -> View:
    """Anonymous users go to the login page; signed-in non-staff get a 403 page, not a loop."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            return render(request, "dashboard/forbidden.html", status=403)
        return view(request, *args, **kwargs)

    return wrapper


def _render(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    # live.js re-fetches pages with this header; such a refresh must not consume flash messages.
    context["background"] = request.headers.get("X-Live-Refresh") == "1"
    return render(request, template, context, status=status)


# --- filters -------------------------------------------------------------------------------


def _choice(params: QueryDict, key: str, choices: list[str], errors: list[str]) -> str:
    value = params.get(key, "")
    if value and value not in choices:
        errors.append(f"Unknown {key} “{value}”.")
        return ""
    return value


def _integer(params: QueryDict, key: str, errors: list[str]) -> int | None:
    value = params.get(key, "")
    if value and not ID.fullmatch(value):
        errors.append(f"{key.capitalize()} must be a whole number, not “{value}”.")
        return None
    return int(value) if value else None


def _paginate(queryset: QuerySet, params: QueryDict, errors: list[str]) -> Page:
    number = _integer(params, "page", errors) or 1
    return Paginator(queryset, PAGE_SIZE).get_page(number)  # out of range: the last page


def _query_without_page(params: QueryDict) -> str:
    rest = params.copy()
    rest.pop("page", None)
    return rest.urlencode()


# --- overview ------------------------------------------------------------------------------


@require_GET
@staff_required
def overview(request: HttpRequest) -> HttpResponse:
    try:
        queues, queue_error = queue_status(workers=True), ""
    except RedisError as error:  # the page stays useful when Redis is down: it says so
        queues, queue_error = {"queues": [], "workers": []}, str(error)
    counts = dict(Job.objects.values_list("status").annotate(n=Count("id")).order_by())
    since = timezone.now() - timedelta(hours=1)
    failures = Job.objects.filter(status=Job.Status.FAILED, finished_at__gte=since)
    context = {
        "nav": "overview",
        "queues": queues["queues"],
        "workers": queues["workers"],
        "queue_error": queue_error,
        "worker_command": WORKER_SHELL_COMMAND,
        "job_counts": [(s, counts.get(s, 0)) for s in Job.Status.values],
        "failure_count": failures.count(),
        "failures": failures.select_related("project").order_by("-finished_at")[:10],
        "active_projects": Project.objects.filter(status__in=generating_statuses()).count(),
        "awaiting_approval": Project.objects.filter(
            status=Project.Status.AWAITING_APPROVAL
        ).count(),
    }
    return _render(request, "dashboard/overview.html", context)


# --- projects ------------------------------------------------------------------------------


@require_GET
@staff_required
def project_list(request: HttpRequest) -> HttpResponse:
    errors: list[str] = []
    status = _choice(request.GET, "status", Project.Status.values, errors)
    search = request.GET.get("q", "").strip()
    projects = Project.objects.select_related("owner").order_by("-created_at", "-id")
    if status:
        projects = projects.filter(status=status)
    if search:
        projects = projects.filter(
            Q(title__icontains=search) | Q(logline__icontains=search) | Q(owner__username=search)
        )
    page = _paginate(projects, request.GET, errors)
    scores = keyframe_consistency([p.pk for p in page]) if not errors else {}
    for project in page if not errors else []:
        # a handful of queries per project on the page (takes, frames, cast), staff only
        project.stale_count = len(project_stale_units(project))
        project.consistency = scores.get(project.pk)
    context = {
        "nav": "projects",
        "page": page if not errors else None,
        "errors": errors,
        "status": status,
        "search": search,
        "statuses": Project.Status.values,
        "query": _query_without_page(request.GET),
    }
    return _render(request, "dashboard/projects.html", context, status=400 if errors else 200)


def _sign_media(project: Project) -> str | None:
    """Attach signed URLs to the prefetched tree; returns the final film's URL."""
    for character in project.characters.all():
        character.image_url = blob_url(character.image)
    for scene in project.scenes.all():
        for frame in scene.frames.all():
            frame.image_url = blob_url(frame.image)
            frame.clip = getattr(frame, "video", None)  # the reverse one-to-one raises if absent
            frame.clip_url = blob_url(frame.clip.file) if frame.clip else None
            take = frame.keyframe_take
            frame.consistency = take.consistency if take is not None else None
    return blob_url(project.final_video)


@require_GET
@staff_required
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(
        project_hierarchy(Project.objects.select_related("owner")), pk=project_id
    )
    jobs = project.jobs.order_by("-created_at", "-id")
    context = {
        "nav": "projects",
        "project": project,
        "final_url": _sign_media(project),
        "jobs": jobs[:PAGE_SIZE],
        "job_total": jobs.count(),
        "stale": project_stale_units(project),
        "consistency": keyframe_consistency([project.pk]).get(project.pk),
    }
    return _render(request, "dashboard/project.html", context)


@staff_required
def project_events(request: HttpRequest, project_id: int) -> HttpResponse:
    """The project's eventstream for staff, who watch projects they do not own."""
    return authenticated_stream(
        request,
        channel=events.project_channel(project_id),
        owns=lambda user: user.is_staff and Project.objects.filter(pk=project_id).exists(),
    )


# --- jobs ----------------------------------------------------------------------------------


def _job_search(jobs: QuerySet[Job], search: str) -> QuerySet[Job]:
    match = Q(error__icontains=search) | Q(project__title__icontains=search)
    if ID.fullmatch(search.lstrip("#")):
        match |= Q(pk=int(search.lstrip("#")))
    return jobs.filter(match)


@require_GET
@staff_required
def job_list(request: HttpRequest) -> HttpResponse:
    errors: list[str] = []
    params = request.GET
    status = _choice(params, "status", Job.Status.values, errors)
    job_type = _choice(params, "type", Job.Type.values, errors)
    project_id = _integer(params, "project", errors)
    search = params.get("q", "").strip()
    jobs = Job.objects.select_related("project").order_by("-created_at", "-id")
    if status:
        jobs = jobs.filter(status=status)
    if job_type:
        jobs = jobs.filter(type=job_type)
    if project_id is not None:
        jobs = jobs.filter(project_id=project_id)
    if search:
        jobs = _job_search(jobs, search)
    page = _paginate(jobs, params, errors)
    context = {
        "nav": "jobs",
        "page": page if not errors else None,
        "errors": errors,
        "status": status,
        "type": job_type,
        "project_id": project_id,
        "search": search,
        "statuses": Job.Status.values,
        "types": Job.Type.values,
        "projects": Project.objects.order_by("-created_at", "-id").only("id", "title")[:200],
        "query": _query_without_page(params),
    }
    return _render(request, "dashboard/jobs.html", context, status=400 if errors else 200)


@require_GET
@staff_required
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job.objects.select_related("project", "parent"), pk=job_id)
    took = job.finished_at - job.started_at if job.started_at and job.finished_at else None
    context = {
        "nav": "jobs",
        "job": job,
        "children": job.children.order_by("id"),
        "params": json.dumps(job.params, indent=2) if job.params else "",
        "result": json.dumps(job.result, indent=2) if job.result else "",
        "duration": took,
    }
    return _render(request, "dashboard/job.html", context)


def _job_action(request: HttpRequest, job_id: int, action: Callable[..., Job], done: str):
    job = get_object_or_404(Job, pk=job_id)
    try:
        action(job=job)
    except ConflictError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Job #{job.pk} {done}.")
    return redirect("dashboard:job", job_id=job.pk)


@require_POST
@staff_required
def job_retry(request: HttpRequest, job_id: int) -> HttpResponseRedirect:
    return _job_action(request, job_id, services.job_retry, "queued again")


@require_POST
@staff_required
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponseRedirect:
    return _job_action(request, job_id, services.job_cancel, "cancelled")


# --- spend ---------------------------------------------------------------------------------

CHART_DAYS = 14
CHART_SIZE = (720, 240)  # the SVG's viewBox, in its own units
CHART_PAD = {"left": 60, "right": 24, "top": 12, "bottom": 30}
CHART_STEPS = 5  # gridlines above zero: a nice top divides into clean labels
PALETTE = ["#3454d1", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#0b7285", "#5c940d", "#a61e4d"]


def _nice_ceiling(value: float) -> float:
    """The chart's top: 1, 2 or 5 times a power of ten, at least the largest day."""
    if value <= 0:
        return 1.0
    step = 10 ** math.floor(math.log10(value))
    return next(m * step for m in (1, 2, 5, 10) if m * step >= value)


def _y_ticks(top: float, bottom: float) -> list[dict]:
    step = top / CHART_STEPS
    decimals = max(2, -math.floor(math.log10(step)))
    span = bottom - CHART_PAD["top"]
    return [
        {"label": f"${step * k:.{decimals}f}", "y": round(bottom - k * span / CHART_STEPS, 1)}
        for k in range(CHART_STEPS + 1)
    ]


def _day_points(days: list, values: list[float], top: float) -> list[tuple[float, float]]:
    width, height = CHART_SIZE
    left, bottom = CHART_PAD["left"], height - CHART_PAD["bottom"]
    span_x = width - left - CHART_PAD["right"]
    span_y = bottom - CHART_PAD["top"]
    gap = span_x / max(len(days) - 1, 1)
    return [
        (round(left + i * gap, 1), round(bottom - (v / top) * span_y, 1))
        for i, v in enumerate(values)
    ]


def spend_chart(rows: list[dict], days: int = CHART_DAYS) -> dict:
    """`spend_by_user` rows as a line chart drawn by the template as SVG: one series per user
    (a polyline and a dot per day), the y axis in dollars, the last `days` days on x."""
    today = timezone.localdate()
    axis = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    per_user: dict[str, dict] = {}
    for row in rows:
        if row["day"] in axis:
            per_user.setdefault(row["user"], {})[row["day"]] = row["usd"]
    top = _nice_ceiling(max((v for u in per_user.values() for v in u.values()), default=0))
    series = []
    for n, (user, by_day) in enumerate(sorted(per_user.items())):
        values = [by_day.get(day, 0.0) for day in axis]
        points = _day_points(axis, values, top)
        series.append(
            {
                "user": user,
                "color": PALETTE[n % len(PALETTE)],
                "total": sum(values),
                "points": " ".join(f"{x},{y}" for x, y in points),
                "dots": [
                    {"x": x, "y": y, "day": day, "usd": v}
                    for (x, y), day, v in zip(points, axis, values, strict=True)
                ],
            }
        )
    width, height = CHART_SIZE
    bottom = height - CHART_PAD["bottom"]
    base = _day_points(axis, [0.0] * len(axis), top)
    return {
        "width": width,
        "height": height,
        "left": CHART_PAD["left"],
        "right": width - CHART_PAD["right"],
        "bottom": bottom,
        "series": series,
        "y_ticks": _y_ticks(top, bottom),
        # every other day labelled, counting back from today
        "x_ticks": [
            {"x": x, "day": day}
            for i, ((x, _), day) in enumerate(zip(base, axis, strict=True))
            if (len(axis) - 1 - i) % 2 == 0
        ],
        "days": days,
    }


@require_GET
@staff_required
def spend(request: HttpRequest) -> HttpResponse:
    """Spend per project (spent against budget) and per user, with a chart of each user's spend
    per day over the last two weeks (server-rendered SVG)."""
    rows = spend_by_user(CHART_DAYS)
    chart = spend_chart(rows)
    user_ids = {row["user"]: row["user_id"] for row in rows}
    limits = spend_users(list(user_ids.values()))
    users = [
        {"user": s["user"], "color": s["color"], "total": s["total"], **limits[user_ids[s["user"]]]}
        for s in chart["series"]
    ]
    projects = spend_by_project(limit=30)
    for project in projects:
        budget, spent = project["budget_usd"], project["spent_usd"]
        if budget is None:
            project["share"] = None
        else:
            project["share"] = min(100, round(100 * spent / budget)) if budget else 100
    context = {"nav": "spend", "chart": chart, "users": users, "projects": projects}
    return _render(request, "dashboard/spend.html", context)
