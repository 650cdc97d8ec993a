"""Job rows through their life: created, claimed, progressing, waiting on a remote service,
finished, requeued, cancelled. What differs by type comes from the table in `jobtypes`."""

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from filmstudio.exceptions import ConflictError
from filmstudio.queries import columns, instance_from
from generation import events, queue
from generation.jobtypes import job_type, project_waiter_types
from generation.models import GenerationJob
from projects.models import Project

logger = logging.getLogger(__name__)

Job = GenerationJob
ACTIVE = GenerationJob.ACTIVE
# The job whose work creates jobs now (its successors as it succeeds, an agent run's tool
# calls): noted as `params["started_by"]`, so what a job set going can be found (`lineage`).
_starter: ContextVar[int | None] = ContextVar("job_starter", default=None)


@contextmanager
def started_by(job_id: int | None) -> Iterator[None]:
    """Jobs created inside are noted as started by the job `job_id`."""
    token = _starter.set(job_id)
    try:
        yield
    finally:
        _starter.reset(token)


def job_superseded(job_id: int, attempt: int) -> bool:
    """The job was queued again since this delivery claimed it at `attempt` (the watchdog took
    it for lost: each requeue counts an attempt; a cancel does not)."""
    return Job.objects.filter(pk=job_id).exclude(attempts=attempt).exists()


def lineage(project_id: int, roots: Iterable[int]) -> set[int]:
    """`roots` and every job they set going: their children and the jobs they started
    (`started_by`), and theirs in turn."""
    found = set(roots)
    frontier = set(found)
    jobs = Job.objects.filter(project_id=project_id)
    while frontier:
        ids = list(frontier)
        started = jobs.filter(Q(parent_id__in=ids) | Q(params__started_by__in=ids))
        frontier = set(started.values_list("pk", flat=True)) - found
        found |= frontier
    return found


def job_create(
    *,
    project: Project,
    type: str,
    target_type: str,
    target_id: int,
    parent: Job | None = None,
    params: dict | None = None,
    container: bool = False,
) -> Job:
    """A job row, handed to RQ when the transaction commits; or a running container of children."""
    starter = _starter.get()
    if starter is not None:
        params = {**(params or {}), "started_by": starter}
    job = Job.objects.create(
        project=project,
        type=type,
        target_type=target_type,
        target_id=target_id,
        parent=parent,
        params=params or {},
        attempts=1,
        status=Job.Status.RUNNING if container else Job.Status.QUEUED,
        started_at=timezone.now() if container else None,
    )
    if not container:
        queue.enqueue(job.pk, urgent=job_type(type).urgent)
    events.publish_job(job)
    return job


def job_still_active(job: Job) -> bool:
    return Job.objects.filter(pk=job.pk, status__in=ACTIVE).exists()


def lock_if_active(job: Job) -> bool:
    """`hold_project_lock`, then `job_still_active`. Two statements, not one: a statement that
    waited for the lock sees other rows as they were when it began (READ COMMITTED), so a job
    cancelled by the transaction it waited for would still look active to it. Under the lock the
    answer holds until the transaction ends (a cancel takes the lock too)."""
    hold_project_lock(job.project_id)
    return job_still_active(job)


_JOB, _PROJECT = Job._meta.db_table, Project._meta.db_table
# The claim and the job's row with its project's, in one statement (`job_claim`).
_CLAIM = f"""
WITH claimed AS (
    UPDATE {_JOB} SET status = %(running)s, started_at = %(now)s, heartbeat_at = %(now)s,
        updated_at = %(now)s, error = ''
    WHERE id = %(job)s AND status = %(queued)s
    RETURNING {columns(Job)}
)
SELECT {columns(Job, "claimed")}, {columns(Project, "project")}
FROM claimed JOIN {_PROJECT} AS project ON project.id = claimed.project_id
"""


def job_claim(job_id: int) -> Job | None:
    """Atomically take a queued job; None if another delivery took it or it was cancelled."""
    statuses = {"running": Job.Status.RUNNING, "queued": Job.Status.QUEUED}
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM, {"job": job_id, "now": timezone.now(), **statuses})
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(Job._meta.concrete_fields)
    job = instance_from(Job, row[:split])
    job.project = instance_from(Project, row[split:])
    events.publish_job(job)
    return job


def job_progress(job: Job, progress: int) -> None:
    progress = max(0, min(100, int(progress)))
    now = timezone.now()
    moved = Job.objects.filter(pk=job.pk, status__in=ACTIVE).update(
        progress=progress, heartbeat_at=now, updated_at=now
    )
    job.progress = progress
    if moved:  # a cancelled job stays cancelled on the page too
        events.publish_job(job)


def job_wait(job: Job, *, request_id: str, params: dict | None = None) -> bool:
    """A remote generation is in flight: no worker is held until it reports back. `params` adds
    what the delivery will need (what the request was made from)."""
    now = timezone.now()
    ids = job.provider_request_ids
    if not ids or ids[-1] != request_id:
        ids = [*ids, request_id]
    params = {**job.params, **(params or {})}
    moved = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
        status=Job.Status.WAITING,
        provider_request_ids=ids,
        params=params,
        heartbeat_at=now,
        updated_at=now,
    )
    job.status, job.provider_request_ids, job.params = Job.Status.WAITING, ids, params
    if moved:
        events.publish_job(job)
    return bool(moved)


def job_wait_for_children(job: Job) -> bool:
    """A job that goes on when its children are done (`resumes_after_children`)."""
    moved = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
        status=Job.Status.WAITING, heartbeat_at=timezone.now(), updated_at=timezone.now()
    )
    if moved:
        job.status = Job.Status.WAITING
        events.publish_job(job)
        settle_container(job.pk)  # children that finished before we got here
    return bool(moved)


def project_busy(project_id: int) -> bool:
    """A job of the project (other than those waiting for it) is queued, running or waiting.
    A paused job does not count: nothing moves until its budget is raised."""
    moving = (Job.Status.QUEUED, Job.Status.RUNNING, Job.Status.WAITING)
    jobs = Job.objects.filter(project_id=project_id, status__in=moving)
    return jobs.exclude(type__in=project_waiter_types()).exists()


def wake_project_waiters(project_id: int) -> list[int]:
    """Jobs waiting for their project (`waits_for_project`: agent runs) go back to the queue
    once nothing else of the project moves. Called (project row locked) wherever a job ends
    or pauses, and by the watchdog for a wake that was lost."""
    waiting = Job.objects.filter(
        project_id=project_id, status=Job.Status.WAITING, type__in=project_waiter_types()
    )
    if not waiting.exists() or project_busy(project_id):  # most projects have no waiter
        return []
    woken = list(waiting.select_for_update().values_list("pk", flat=True))
    for pk in woken:
        Job.objects.filter(pk=pk).update(status=Job.Status.QUEUED, updated_at=timezone.now())
        queue.enqueue(pk)
    return woken


def job_wait_for_project(job: Job, *, recheck: bool = True) -> bool:
    """A job that goes on when the rest of its project has stopped moving (the jobs it started
    finished, failed or paused): no worker is held meanwhile. Without `recheck` it waits even
    if nothing moves now (its project waits for the person: paused for the budget). Only the
    delivery of the job's attempt moves it (not one the watchdog has queued again since)."""
    with transaction.atomic():
        hold_project_lock(job.project_id)
        running = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, attempts=job.attempts)
        moved = running.update(
            status=Job.Status.WAITING, heartbeat_at=timezone.now(), updated_at=timezone.now()
        )
        if moved:
            job.status = Job.Status.WAITING
            events.publish_job(job)
            if recheck:
                wake_project_waiters(job.project_id)  # what it waits for may be over already
    return bool(moved)


def job_poll_later(job: Job, *, delay: float | None = None, reason: str = "") -> None:
    """Come back to a waiting job later. Pending clips are checked together by one poller
    (`tasks.poll_waiting`); a transient polling error gets a back-off poll of its own and
    counts as an attempt."""
    fields: dict = {"heartbeat_at": timezone.now()}
    if reason:
        fields.update(attempts=F("attempts") + 1, error=reason[:4000])
    if not Job.objects.filter(pk=job.pk, status=Job.Status.WAITING).update(**fields):
        return
    if reason:
        wait = settings.VIDEO_POLL_INTERVAL if delay is None else delay
        queue.enqueue(job.pk, delay=wait, task=queue.POLL_TASK)
    else:
        queue.ensure_poller()


def lock_project(project: Project | int) -> Project:
    """The project's row lock. Every change of the pipeline's state takes it first (then job
    rows): one order everywhere, so cancel, finish and retry never deadlock."""
    pk = project if isinstance(project, int) else project.pk
    row = Project.objects.select_for_update().get(pk=pk)
    _note_project_lock(pk)
    return row


_LOCK = f"SELECT 1 FROM {_PROJECT} WHERE id = %s FOR UPDATE"


def hold_project_lock(project_id: int) -> None:
    """`lock_project` for a caller that does not read the row: no statement at all when this
    transaction holds the lock already (a step's finish takes it before the job's)."""
    if _holds(project_id):
        return
    with connection.cursor() as cursor:
        cursor.execute(_LOCK, [project_id])
        if cursor.fetchone() is None:
            raise Project.DoesNotExist(f"project {project_id} does not exist")
    _note_project_lock(project_id)


class LockNote:
    """The note that this transaction holds a project's row lock: one of the connection's
    on-commit callbacks (doing nothing), because Django drops those exactly when the lock goes:
    with the savepoint it was taken in rolled back, and when the transaction ends."""

    __slots__ = ("project_id",)

    def __init__(self, project_id: int):
        self.project_id = project_id

    def __call__(self) -> None:
        pass


def _holds(project_id: int) -> bool:
    db = transaction.get_connection()
    return db.in_atomic_block and any(
        isinstance(hook, LockNote) and hook.project_id == project_id
        for _, hook, _ in db.run_on_commit
    )


def _note_project_lock(project_id: int) -> None:
    """This transaction has just locked the project's row (`lock_project`, or a statement of
    its own with FOR UPDATE)."""
    if transaction.get_connection().in_atomic_block and not _holds(project_id):
        transaction.on_commit(LockNote(project_id))


def release_reservations(job_ids: list[int]) -> None:
    """Jobs ended (their project's row locked): what they set aside of the budget is free again
    (what they spent is in the ledger already, `generation.costs`)."""
    held = list(
        Job.objects.filter(pk__in=job_ids, reserved_usd__gt=0).values_list(
            "pk", "project_id", "reserved_usd"
        )
    )
    for pk, project_id, usd in held:
        Job.objects.filter(pk=pk).update(reserved_usd=0)
        Project.objects.filter(pk=project_id).update(reserved_usd=F("reserved_usd") - usd)


def job_finish(
    job: Job, status: str, *, wake: bool = True, attempt: int | None = None, **fields
) -> bool:
    """Move an active job to a final status; False if it was no longer active (or, given
    `attempt`, no longer at that attempt: queued again since). Without `wake` the caller wakes
    the project's waiters itself (`services.job_succeed`: once its successors exist, so a
    stage boundary does not queue an advance that finds the next stage running)."""
    # No savepoint: a failure here fails the caller's transaction anyway (two statements less).
    with transaction.atomic(savepoint=False):
        hold_project_lock(job.project_id)
        now = timezone.now()
        values = {"status": status, "finished_at": now, "updated_at": now, "reserved_usd": 0}
        row = _finish_row(job, {**values, **fields}, attempt)
        if row is not None:
            fresh = instance_from(Job, row)
            for field in Job._meta.concrete_fields:  # the row as it is now (its events say so)
                setattr(job, field.attname, getattr(fresh, field.attname))
            job._state.fields_cache.clear()  # its related rows are read again, as after a refresh
            events.publish_job(job)
            if job.parent_id:
                settle_container(job.parent_id)
            if wake:
                wake_project_waiters(job.project_id)
    return row is not None


# The job's final status and what it set aside freed on its project (read while the job is
# still active), in one statement; the job's row as it is after.
_FINISH = f"""
WITH held AS (
    SELECT id, reserved_usd FROM {_JOB}
    WHERE id = %(job)s AND status = ANY(%(active)s)
        AND (%(attempt)s::int IS NULL OR attempts = %(attempt)s)
    FOR UPDATE
), done AS (
    UPDATE {_JOB} AS job SET {{values}} FROM held WHERE job.id = held.id
    RETURNING {columns(Job, "job")}, held.reserved_usd AS held_usd
), released AS (
    UPDATE {_PROJECT} SET reserved_usd = reserved_usd - (SELECT held_usd FROM done)
    WHERE id = %(project)s AND (SELECT held_usd FROM done) <> 0
)
SELECT {columns(Job, "done")} FROM done
"""


def _finish_row(job: Job, values: dict, attempt: int | None) -> tuple | None:
    quote = connection.ops.quote_name
    assignments, params = [], {}
    fields = {field.name: field for field in Job._meta.concrete_fields}
    for index, (name, value) in enumerate(values.items()):
        field = fields[name]
        assignments.append(f"{quote(str(field.column))} = %(v{index})s")
        params[f"v{index}"] = field.get_db_prep_save(value, connection)
    params.update(job=job.pk, active=list(ACTIVE), attempt=attempt, project=job.project_id)
    with connection.cursor() as cursor:
        cursor.execute(_FINISH.format(values=", ".join(assignments)), params)
        return cursor.fetchone()


def job_end_quietly(job: Job, reason: str) -> bool:
    """The unit a job worked on is gone (deleted or replaced): nothing to do, nothing failed."""
    return job_finish(job, Job.Status.CANCELLED, error=reason[:4000])


def job_requeue(job: Job, *, delay: float, reason: str) -> bool:
    """A transient failure: try again later, counting an attempt."""
    now = timezone.now()
    moved = Job.objects.filter(
        pk=job.pk, status__in=[Job.Status.RUNNING, Job.Status.WAITING]
    ).update(
        status=Job.Status.QUEUED, attempts=F("attempts") + 1, error=reason[:4000], updated_at=now
    )
    if moved:
        job.refresh_from_db()
        events.publish_job(job)
        queue.enqueue(job.pk, delay=delay)
    return bool(moved)


def settle_container(parent_id: int) -> None:
    """A container's progress and status follow its children's."""
    parent = Job.objects.select_for_update().get(pk=parent_id)
    children = list(parent.children.values_list("status", "progress"))
    if not children:
        return
    parent.progress = sum(p for _, p in children) // len(children)
    fields = ["progress", "updated_at"]
    if all(s not in ACTIVE for s, _ in children) and job_type(parent.type).resumes_after_children:
        if parent.status == Job.Status.WAITING:  # its next stage: run it again
            parent.status = Job.Status.QUEUED
            fields.append("status")
            queue.enqueue(parent.pk)
    elif all(s not in ACTIVE for s, _ in children) and parent.status in ACTIVE:
        failed = sum(1 for s, _ in children if s != Job.Status.SUCCEEDED)
        parent.status = Job.Status.FAILED if failed else Job.Status.SUCCEEDED
        parent.error = f"{failed} of {len(children)} parts did not succeed." if failed else ""
        parent.finished_at = timezone.now()
        fields += ["status", "error", "finished_at"]
    parent.save(update_fields=fields)
    events.publish_job(parent)


def jobs_cancel(jobs: QuerySet[Job], reason: str) -> list[int]:
    """The one cancel: the active jobs among `jobs` and every active child of theirs.

    Rows change now; RQ deliveries are dropped after commit; requests in flight at the video
    service are cancelled there (by a task, so no request waits on the provider); containers
    whose children all ended settle."""
    now = timezone.now()
    roots = set(jobs.filter(status__in=ACTIVE).values_list("pk", flat=True))
    victims = Job.objects.filter(Q(pk__in=roots) | Q(parent_id__in=roots), status__in=ACTIVE)
    rows = list(
        victims.select_for_update().values_list(
            "pk", "rq_job_id", "status", "provider_request_ids", "parent_id", "type"
        )
    )
    ids = [pk for pk, *_ in rows]
    Job.objects.filter(pk__in=ids).update(
        status=Job.Status.CANCELLED, error=reason, finished_at=now, updated_at=now
    )
    release_reservations(ids)
    in_flight = [
        request_ids[-1]
        for _, _, status, request_ids, _, type in rows
        if status == Job.Status.WAITING and request_ids and job_type(type).polls_remote
    ]
    for _, rq_id, *_ in rows:
        queue.rq_cancel(rq_id)
    if in_flight:
        transaction.on_commit(lambda: queue.cancel_remote(in_flight))
    for victim in Job.objects.filter(pk__in=ids):
        events.publish_job(victim)
        job_type(victim.type).was_cancelled(victim)
    for parent_id in sorted({row[4] for row in rows if row[4] and row[4] not in ids}):
        settle_container(parent_id)
    for project_id in sorted(
        set(Job.objects.filter(pk__in=ids).values_list("project_id", flat=True))
    ):
        wake_project_waiters(project_id)
    if ids:
        logger.info("cancelled jobs %s: %s", ids, reason)
    return ids


def active(jobs: QuerySet[Job]) -> bool:
    return jobs.filter(status__in=ACTIVE).exists()


def busy_targets(project: Project, types: Iterable[str], target_type: str) -> set[int]:
    """Ids of the units of `target_type` that active jobs of `types` work on (a target id means
    nothing without its type: a project-wide container's id could equal a scene's)."""
    jobs = project.jobs.filter(type__in=list(types), target_type=target_type, status__in=ACTIVE)
    return set(jobs.values_list("target_id", flat=True))


def refuse_while_busy(
    project: Project,
    what: str,
    *,
    character_id: int | None = None,
    scene_id: int | None = None,
    frame_id: int | None = None,
    object_id: int | None = None,
    film: bool = False,
) -> None:
    """`ConflictError` if an active job works on this unit or is about to replace it: a job aimed
    at it, the frames job of its scene, the project's scene generation, or (the film) a stitch."""
    target = Job.TargetType
    unit = Q(pk__in=[])
    if character_id is not None:
        unit |= Q(target_type=target.CHARACTER, target_id=character_id)
    if scene_id is not None:
        unit |= Q(target_type=target.SCENE, target_id=scene_id) | Q(type=Job.Type.SCENES)
    if frame_id is not None:
        unit |= Q(target_type=target.FRAME, target_id=frame_id)
    if object_id is not None:
        unit |= Q(target_type=target.OBJECT, target_id=object_id)
    if film:
        unit |= Q(type=Job.Type.STITCH)
    job = project.jobs.filter(unit, status__in=ACTIVE).order_by("pk").first()
    if job is not None:
        raise ConflictError(
            f"Cannot change {what} while job #{job.pk} ({job.type}) is {job.status}; "
            "cancel it or wait for it to finish."
        )
