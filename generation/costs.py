"""Money: the ledger of paid provider calls, budgets held by reservation, per-user limits.

- **Usage** comes from the providers (Gemini's `usage_metadata`, seconds of video): every paid
  call reports it with `report`, into the meter of the step (or director turn) that runs it.
- **Ledger**: `record_unit` writes a unit's usage in the transaction that stores what the calls
  made; `flush` writes what is left when the step ends (a call whose result was not kept: a
  cancelled job, an answer that did not parse) in a transaction of its own. Nothing paid for is
  left out. The project's `spent_usd` moves with the rows, under the project's row lock.
- **Budgets**: before a job's paid calls, `reserve` sets aside its estimate under the project's
  row lock (and the user's limit row, for the daily cap): two workers can never both spend the
  last dollar. A job that does not fit is paused, and the project with it (`paused_budget`);
  raising the budget resumes it (`budget_changed`). Finishing releases the reservation.
- **Up front**: `admit` refuses a request whose estimate does not fit (409), or that breaks a
  per-user limit (429)."""

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from filmstudio.exceptions import BudgetExceeded, LimitExceeded
from generation import events, queue
from generation.jobs import ACTIVE, lock_project, wake_project_waiters
from generation.jobtypes import project_waiter_types
from generation.models import GenerationJob, SpendEntry, UserLimit
from generation.usage import Meter, Unit, Usage, current_meter, metering
from projects.models import Project

logger = logging.getLogger(__name__)

Job = GenerationJob
ZERO = Decimal(0)
CENT = Decimal("0.01")


def usd_text(amount: Decimal | None) -> str:
    return "none" if amount is None else f"${amount.quantize(CENT)}"


# --- the meter ------------------------------------------------------------------------------


@contextlib.contextmanager
def metered(meter: Meter) -> Iterator[Meter]:
    """Run a step (or a turn) with its meter; whatever was not recorded with its result is
    written when it ends, however it ends."""
    try:
        with metering(meter):
            yield meter
    finally:
        flush(meter)


def job_meter(job: Job) -> Meter:
    return Meter(
        user_id=job.project.owner_id,
        project_id=job.project_id,
        stage=job.type,
        unit=(job.target_type, job.target_id),
        job_id=job.pk,
    )


# --- the ledger ------------------------------------------------------------------------------


_SPEND = SpendEntry._meta.db_table
_SPEND_COLUMNS = (
    "user_id, project_id, job_id, stage, unit_type, unit_id, provider, model, call_id, "
    "quantity, quantity_unit, usage, usd, created_at"
)
_SPEND_ROW = "(" + ", ".join(["%s"] * 14) + ")"
# The new rows (a call already in the ledger is skipped: `call_id` is unique), what they cost
# off the job's reservation and onto the project's spend: one statement.
#
# What is spent comes off what the job set aside: the two never count the same dollar. Safe
# without the project's lock: the job's row is locked (FOR UPDATE waits and returns its latest
# version) and shrunk, and what it gave comes off the project. (Read in a subquery of the
# project's UPDATE, the job's reservation was the statement's snapshot from before it waited:
# two writes not both under the project's lock settled the same dollar twice.) Callers hold
# that lock all the same: one lock order, the project's row before job rows
# (`jobs.lock_project`). Table names come from the models, values are parameters.
_INSERT = f"""
WITH new AS (
    INSERT INTO {_SPEND} ({_SPEND_COLUMNS}) VALUES {{rows}}
    ON CONFLICT (call_id) DO NOTHING
    RETURNING call_id, usd
), total AS (SELECT COALESCE(SUM(usd), 0) AS usd FROM new)"""
_SETTLE_JOB = f""", settled AS (
    UPDATE {Job._meta.db_table} AS job
    SET reserved_usd = GREATEST(job.reserved_usd - (SELECT usd FROM total), 0)
    FROM (
        SELECT id, reserved_usd FROM {Job._meta.db_table} WHERE id = %s FOR UPDATE
    ) AS held
    WHERE job.id = held.id AND held.reserved_usd > 0 AND (SELECT usd FROM total) > 0
    RETURNING LEAST(held.reserved_usd, (SELECT usd FROM total)) AS usd
)"""
_SPEND_PROJECT = f""", spent AS (
    UPDATE {Project._meta.db_table}
    SET spent_usd = spent_usd + (SELECT usd FROM total),
        reserved_usd = reserved_usd - {{settled}}
    WHERE id = %s AND (SELECT usd FROM total) > 0
)"""


def _write(meter: Meter, entries: list[tuple[Unit, Usage]]) -> Decimal:
    return sum(_write_rows(meter, entries).values(), ZERO)


def _write_rows(meter: Meter, entries: list[tuple[Unit, Usage]]) -> dict[str, Decimal]:
    """Ledger rows for `entries` (those not in it yet) and the project's spend, in one
    statement; what each new row cost, by call id."""
    if not entries:
        return {}
    now = timezone.now()
    usage_field = SpendEntry._meta.get_field("usage")
    params: list = []
    for unit, usage in entries:
        params += [
            meter.user_id,
            meter.project_id,
            meter.job_id,
            meter.stage,
            unit[0],
            unit[1],
            usage.provider,
            usage.model,
            usage.call_id,
            Decimal(str(usage.quantity)).quantize(Decimal("0.001")),
            usage.quantity_unit,
            usage_field.get_db_prep_save(dict(usage.parts), connection),
            usage.usd,
            now,
        ]
    sql = _INSERT.format(rows=", ".join([_SPEND_ROW] * len(entries)))
    if meter.project_id is not None:
        if meter.job_id is not None:
            sql += _SETTLE_JOB
            params.append(meter.job_id)
        settled = "COALESCE((SELECT usd FROM settled), 0)" if meter.job_id is not None else "0"
        sql += _SPEND_PROJECT.format(settled=settled)
        params.append(meter.project_id)
    with connection.cursor() as cursor:
        cursor.execute(sql + " SELECT call_id, usd FROM new", params)
        return dict(cursor.fetchall())


def record_unit(unit_type: str, unit_id: int) -> Decimal:
    """Write the running step's usage for one unit into the ledger, in the caller's transaction
    (the one storing what the calls made); returns its cost (for the take). Should that
    transaction roll back, `flush` finds the calls missing from the ledger and writes them."""
    return record_units(unit_type, [unit_id])[unit_id]


def record_units(unit_type: str, unit_ids: list[int]) -> dict[int, Decimal]:
    """`record_unit` for several units of one type in one write (a step storing a whole
    cast); the cost of each. Once committed they are in the ledger: the step's `flush` need
    not look (a second transaction under the project's lock per clip delivered); rolled
    back, it writes them."""
    costs = dict.fromkeys(unit_ids, ZERO)
    meter = current_meter()
    if meter is None:
        return costs
    entries = [
        (unit, usage)
        for unit, usage in meter.pending
        if unit[0] == unit_type and unit[1] in costs and usage.call_id not in meter.written
    ]
    meter.written.update(usage.call_id for _, usage in entries)
    new = _write_rows(meter, entries)
    for (_, unit_id), usage in entries:
        costs[unit_id] += new.get(usage.call_id, ZERO)
    calls = {usage.call_id for _, usage in entries}
    if calls:
        transaction.on_commit(lambda: _recorded(meter, calls))
    return costs


def _recorded(meter: Meter, calls: set[str]) -> None:
    meter.pending = [(unit, usage) for unit, usage in meter.pending if usage.call_id not in calls]


def flush(meter: Meter) -> Decimal:
    """Write every call of `meter` that is not in the ledger yet (a transaction of its own)."""
    calls = {usage.call_id for _, usage in meter.pending}
    if not calls:
        return ZERO
    with transaction.atomic():
        if meter.project_id is not None:
            found = Project.objects.select_for_update().filter(pk=meter.project_id).first()
            if found is None:
                meter.project_id = None  # deleted meanwhile: the spend stays the user's
        if meter.job_id is not None and not Job.objects.filter(pk=meter.job_id).exists():
            meter.job_id = None
        total = _write(meter, meter.pending)
    meter.pending = []  # only once written: a failed write leaves them for the next flush
    return total


# --- limits ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    daily_spend_usd: Decimal
    max_active_projects: int


def limits_for(user_id: int, *, lock: bool = False) -> Limits:
    """The user's limits (staff set them in the admin; else the settings' defaults). With
    `lock`, the user's limit row is locked too: one user's reservations take turns."""
    rows = UserLimit.objects.filter(user_id=user_id)
    row = rows.select_for_update().first() if lock else rows.first()
    if lock and row is None:  # the user's first reservation: the row to lock is made
        UserLimit.objects.get_or_create(user_id=user_id)
        row = rows.select_for_update().first()
    daily = row.daily_spend_usd if row and row.daily_spend_usd is not None else None
    active = row.max_active_projects if row and row.max_active_projects is not None else None
    return Limits(
        daily_spend_usd=daily if daily is not None else Decimal(str(settings.USER_DAILY_SPEND_USD)),
        max_active_projects=active or settings.USER_MAX_ACTIVE_PROJECTS,
    )


# Both sums in one round trip (a reservation reads them under its locks).
_SPENT_TODAY = f"""
SELECT COALESCE((
    SELECT SUM(usd) FROM {_SPEND} WHERE user_id = %(user)s AND created_at >= %(since)s
), 0) + COALESCE((
    SELECT SUM(reserved_usd) FROM {Project._meta.db_table} WHERE owner_id = %(user)s
), 0)
"""


def spent_today(user_id: int) -> Decimal:
    """The user's spend over the last 24 hours, plus what their running jobs have reserved."""
    since = timezone.now() - timedelta(hours=24)
    with connection.cursor() as cursor:
        cursor.execute(_SPENT_TODAY, {"user": user_id, "since": since})
        return cursor.fetchone()[0]


def _daily_problem(user_id: int, usd: Decimal, limits: Limits) -> str | None:
    if not usd:
        return None
    used = spent_today(user_id)
    if used + usd > limits.daily_spend_usd:
        return (
            f"the daily spend cap of {usd_text(limits.daily_spend_usd)} would be exceeded "
            f"({usd_text(used)} spent or reserved in the last 24 hours, {usd_text(usd)} more "
            "needed); staff can raise it in the admin"
        )
    return None


def _budget_problem(project: Project, usd: Decimal) -> str | None:
    if project.budget_usd is None or not usd:
        return None
    left = project.budget_usd - project.spent_usd - project.reserved_usd
    if usd > left:
        return (
            f"it needs {usd_text(usd)} and {usd_text(max(left, ZERO))} is left of the "
            f"{usd_text(project.budget_usd)} budget ({usd_text(project.spent_usd)} spent, "
            f"{usd_text(project.reserved_usd)} reserved by running jobs); raise budget_usd to go on"
        )
    return None


def remaining(project: Project) -> Decimal | None:
    if project.budget_usd is None:
        return None
    return project.budget_usd - project.spent_usd - project.reserved_usd


def active_projects(user_id: int) -> set[int]:
    """The user's projects with work under way (an agent run parked at its project, waiting for
    the person or for the budget, is not that: it would hold a slot of USER_MAX_ACTIVE_PROJECTS)."""
    jobs = Job.objects.filter(project__owner_id=user_id, status__in=ACTIVE)
    return set(jobs.exclude(type__in=project_waiter_types()).values_list("project_id", flat=True))


def admit(project: Project, estimate: dict, *, what: str) -> None:
    """Refuse, before anything starts, a request of `project`'s owner whose estimate does not
    fit the budget (`BudgetExceeded`, 409) or that breaks a per-user limit (`LimitExceeded`,
    429). `estimate` is the request's estimate document (`estimates.document`)."""
    usd = Decimal(str(estimate["total_usd"]))
    problem = _budget_problem(project, usd)
    if problem:
        raise BudgetExceeded(f"Cannot start {what}: {problem}.", estimate)
    limits = limits_for(project.owner_id)
    problem = _daily_problem(project.owner_id, usd, limits)
    if problem:
        raise LimitExceeded(f"Cannot start {what}: {problem}.")
    busy = active_projects(project.owner_id)
    if project.pk not in busy and len(busy) >= limits.max_active_projects:
        raise LimitExceeded(
            f"Cannot start {what}: {len(busy)} of your projects are already generating (the "
            f"limit is {limits.max_active_projects}); wait for one to finish or cancel it."
        )


# --- reservations ----------------------------------------------------------------------------


_RESERVE = f"""
WITH held AS (UPDATE {Job._meta.db_table} SET reserved_usd = %(usd)s WHERE id = %(job)s)
UPDATE {Project._meta.db_table} SET reserved_usd = reserved_usd + %(usd)s WHERE id = %(project)s
"""  # the job's reservation and its project's, in one statement


def reserve(job: Job, usd: Decimal) -> bool:
    """Before a job's paid calls: set aside `usd` (its estimate) of the budget and of the daily
    cap, or pause the job (and the project) when it does not fit. True if it may go on. A job
    run again (a retry after a transient error) keeps what it reserved."""
    with transaction.atomic():
        project = lock_project(job.project_id)
        row = Job.objects.select_for_update().get(pk=job.pk)
        if row.status != Job.Status.RUNNING:
            return False  # cancelled meanwhile
        if not usd or row.reserved_usd:
            return True
        limits = limits_for(project.owner_id, lock=True)
        problem = _budget_problem(project, usd) or _daily_problem(project.owner_id, usd, limits)
        if problem:
            _pause(row, project, f"Paused before spending: {problem}.")
            return False
        with connection.cursor() as cursor:
            cursor.execute(_RESERVE, {"usd": usd, "job": job.pk, "project": project.pk})
        job.reserved_usd = usd
    return True


def resume_status(project: Project) -> str:
    """The status a paused project goes back to: the one it had when its first job paused."""
    if project.status != Project.Status.PAUSED_BUDGET:
        return project.status
    for params in Job.objects.filter(project=project, status=Job.Status.PAUSED).values_list(
        "params", flat=True
    ):
        status = (params or {}).get("resume_status")
        if status and status != Project.Status.PAUSED_BUDGET:
            return status
    return Project.Status.COMPLETE if project.final_video else Project.Status.DRAFT


def _pause(job: Job, project: Project, reason: str) -> None:
    resume_status_ = resume_status(project)
    job.status, job.error = Job.Status.PAUSED, reason
    job.params = {**job.params, "resume_status": resume_status_}
    job.save(update_fields=["status", "error", "params", "updated_at"])
    events.publish_job(job)
    if project.status != Project.Status.PAUSED_BUDGET:
        project.status = Project.Status.PAUSED_BUDGET
        project.save(update_fields=["status", "updated_at"])
        events.publish_entity(project)
    wake_project_waiters(project.pk)  # an agent run watching the project hears it stopped
    logger.info("job %s paused: %s", job.pk, reason)


def pause_queued(project: Project, reason: str) -> int:
    """The budget was lowered below what is spent (project row locked): queued jobs wait. Not
    an agent run's advance: what it spends it reserves when it runs (pausing then like any
    job), and paused here it would leave its run silent."""
    paused = 0
    queued = Job.objects.filter(project=project, status=Job.Status.QUEUED)
    for job in queued.exclude(type__in=project_waiter_types()).select_for_update():
        queue.rq_cancel(job.rq_job_id)
        _pause(job, project, reason)
        paused += 1
    return paused


def budget_changed(project: Project) -> int:
    """The budget moved (project row locked): paused jobs go back to the queue (they reserve
    again when they run, and pause again if it still does not fit); a budget now below what is
    spent pauses what is queued. Returns how many jobs resumed."""
    if project.budget_usd is not None and project.budget_usd < project.spent_usd:
        pause_queued(
            project,
            f"Paused: the budget of {usd_text(project.budget_usd)} is below what is already "
            f"spent ({usd_text(project.spent_usd)}); raise budget_usd to go on.",
        )
        return 0
    paused = list(
        Job.objects.filter(project=project, status=Job.Status.PAUSED)
        .select_for_update()
        .order_by("pk")
    )
    if not paused:
        return 0
    if project.status == Project.Status.PAUSED_BUDGET:
        project.status = resume_status(project)
        project.save(update_fields=["status", "updated_at"])
        events.publish_entity(project)
    for job in paused:
        job.status, job.error = Job.Status.QUEUED, ""
        job.save(update_fields=["status", "error", "updated_at"])
        events.publish_job(job)
        queue.enqueue(job.pk)
    logger.info("project %s: budget raised, %s paused job(s) resumed", project.pk, len(paused))
    return len(paused)


def limits_changed(user_id: int) -> int:
    """Staff changed a user's limits: their paused work goes back to the queue (and pauses
    again if it still does not fit). Returns how many jobs resumed."""
    resumed = 0
    paused = Job.objects.filter(project__owner_id=user_id, status=Job.Status.PAUSED)
    for project_id in sorted(set(paused.values_list("project_id", flat=True))):
        with transaction.atomic():
            resumed += budget_changed(lock_project(project_id))
    return resumed


def headroom(project: Project) -> Decimal:
    """What may still be spent beyond what is reserved: the lower of what is left of the budget
    and of the user's daily cap."""
    limits = limits_for(project.owner_id)
    daily = limits.daily_spend_usd - spent_today(project.owner_id)
    left = remaining(project)
    return daily if left is None else min(left, daily)


def refuse_over_daily_cap(user_id: int) -> None:
    """`LimitExceeded` when the user has spent their daily cap (a director turn on Gemini is
    paid for: it does not start then)."""
    limits = limits_for(user_id)
    used = spent_today(user_id)
    if used >= limits.daily_spend_usd:
        raise LimitExceeded(
            f"The daily spend cap of {usd_text(limits.daily_spend_usd)} is reached "
            f"({usd_text(used)} in the last 24 hours); staff can raise it in the admin."
        )
