"""State changes of director sessions (starting, storing and ending turns; the turn rate limit)
and of agent runs (starting, deciding, cancelling; `director.runs` advances them)."""

import hashlib
import json
import logging
import secrets
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

import django_rq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone
from redis import Redis

from director import runs
from director.agents.autopilot import planner_for_settings
from director.models import (
    AgentRun,
    DirectorConfirmation,
    DirectorMessage,
    DirectorSession,
    DirectorTurn,
)
from director.tools import Proposal, ToolOutcome
from filmstudio.exceptions import ConflictError, RateLimited
from generation import estimates
from generation import services as generation
from generation.jobs import hold_project_lock, lock_project
from generation.jobtypes import JOB_TYPES, generating_statuses
from generation.models import GenerationJob
from generation.pipeline import set_status
from generation.providers.keypool import RateLimiter
from projects.models import Project

logger = logging.getLogger(__name__)

Role = DirectorMessage.Role

CONFIRMATION_TTL = timedelta(minutes=10)


_redis_clients: dict[str, Redis] = {}


def _redis() -> Redis:
    """One Redis client per process (and URL): django_rq.get_connection() builds a client and
    its connection pool each call, so every turn paid for a new TCP connection (1.4-5 ms of
    the request before its first event, bench 6a)."""
    url = str(settings.RQ_QUEUES["default"]["URL"])
    client = _redis_clients.get(url)
    if client is None:
        client = _redis_clients.setdefault(url, django_rq.get_connection("default"))
    return client


def _take_a_turn(user_id: int) -> None:
    """Take one of the user's turns for this minute, or RateLimited. Called once everything
    else about the request was accepted: a refused request (409, a bad token) spends none."""
    limit = settings.DIRECTOR_TURNS_PER_MINUTE
    limiter = RateLimiter(f"director-turns:user:{user_id}", limit, _redis())
    wait = limiter.try_acquire()
    if wait:
        raise RateLimited(f"Too many director turns: at most {limit} per minute.", wait)


def _expire_lost_turns(session: DirectorSession) -> None:
    """A turn still running long after its start died with its process: close it."""
    cutoff = timezone.now() - timedelta(seconds=settings.DIRECTOR_TURN_TIMEOUT)
    session.turns.filter(status=DirectorTurn.Status.RUNNING, created_at__lt=cutoff).update(
        status=DirectorTurn.Status.FAILED,
        error="Lost: the turn never finished.",
        finished_at=timezone.now(),
    )


def turn_start(
    *,
    user,
    page: str,
    message: str,
    project: Project | None = None,
    session: DirectorSession | None = None,
) -> DirectorTurn:
    """A new turn with the user's message, in a new session or the given one.

    One turn at a time per session: the conversation is sequential, and the channel's event ids
    follow one writer (director.streaming.TurnEvents).
    """
    with transaction.atomic():
        if session is not None:
            session = _lock_idle_session(session)
        _take_a_turn(user.pk)
        if session is None:
            session = DirectorSession.objects.create(user=user, project=project, page=page)
        else:
            project = project or session.project
            session.project, session.page = project, page
            session.save(update_fields=["project", "page", "updated_at"])
        turn = _new_turn(session, page=page, project=project, message=message)
    logger.info("director turn %s started in session %s", turn.pk, session.pk)
    return turn


def _lock_idle_session(session: DirectorSession) -> DirectorSession:
    session = DirectorSession.objects.select_for_update().get(pk=session.pk)
    _expire_lost_turns(session)
    if session.turns.filter(status=DirectorTurn.Status.RUNNING).exists():
        raise ConflictError(
            "The director is still answering in this session: wait for that turn to "
            "complete (its events are on /api/director/sessions/{id}/events)."
        )
    return session


def _new_turn(
    session: DirectorSession, *, page: str, project: Project | None, message: str
) -> DirectorTurn:
    turn = DirectorTurn.objects.create(session=session, page=page, project=project)
    DirectorMessage.objects.create(session=session, turn=turn, role=Role.USER, text=message)
    return turn


# ------------------------------------------------------------------ confirmations


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def call_hash(name: str, args: dict) -> str:
    """What a token stands for: this tool with exactly these arguments."""
    return _digest(json.dumps({"name": name, "args": args}, sort_keys=True, default=str))


def confirmation_create(
    *, turn: DirectorTurn, name: str, args: dict, proposal: Proposal
) -> tuple[str, DirectorConfirmation]:
    """Hold a call for the person to confirm; the token is returned once and stored hashed."""
    token = secrets.token_urlsafe(32)
    confirmation = DirectorConfirmation.objects.create(
        session_id=turn.session_id,
        turn=turn,
        token_hash=_digest(token),
        tool=name,
        args=args,
        call_hash=call_hash(name, args),
        summary=proposal.summary,
        estimate=proposal.estimate,
        expires_at=timezone.now() + CONFIRMATION_TTL,
    )
    logger.info("director turn %s asks to confirm %s", turn.pk, name)
    return token, confirmation


def confirmation_redeem(
    *, session: DirectorSession, token: str
) -> tuple[DirectorTurn, DirectorConfirmation]:
    """Use a token (once): a new turn of the session that carries out the call it stands for.

    `session` is the caller's own (looked up by `session_for_user`). A token of another
    session, the user's or anyone's, is `Http404`; an unknown one a `ValidationError`; one
    used or expired a `ConflictError`. What the call would do is checked again when it runs
    (`tools.execute(agreed=...)`)."""
    with transaction.atomic():
        confirmation = (
            DirectorConfirmation.objects.select_for_update()
            .select_related("turn")
            .filter(token_hash=_digest(token))
            .first()
        )
        if confirmation is None:
            raise ValidationError({"token": ["Unknown confirmation token."]})
        if confirmation.session_id != session.pk:
            raise Http404("No such confirmation in this session.")
        if confirmation.used_at is not None:
            raise ConflictError("This confirmation was already used: ask the director again.")
        if confirmation.expires_at <= timezone.now():
            raise ConflictError("This confirmation has expired (after 10 minutes): ask again.")
        session = _lock_idle_session(session)
        _take_a_turn(session.user_id)
        asked = confirmation.turn
        # The same call asked for twice (two turns, or the model calling it twice) is paid for
        # once: every token of this session for it is used up by this one.
        DirectorConfirmation.objects.filter(
            session_id=session.pk, call_hash=confirmation.call_hash, used_at__isnull=True
        ).update(used_at=timezone.now())
        confirmation.refresh_from_db(fields=["used_at"])
        turn = _new_turn(
            session,
            page=asked.page,
            project=asked.project,
            message=f"Confirmed: {confirmation.summary}",
        )
    logger.info(
        "confirmation %s used: turn %s runs %s", confirmation.pk, turn.pk, confirmation.tool
    )
    return turn, confirmation


def turn_store_round(
    *, turn: DirectorTurn, text: str, calls: list[dict], outcomes: list[ToolOutcome]
) -> None:
    """One model step and its tool results, together: a stored call always has its result."""
    if not text and not calls:
        return
    with transaction.atomic():
        DirectorMessage.objects.create(
            session_id=turn.session_id,
            turn=turn,
            role=Role.ASSISTANT,
            text=text,
            function_calls=calls,
        )
        if outcomes:
            DirectorMessage.objects.create(
                session_id=turn.session_id,
                turn=turn,
                role=Role.TOOL,
                function_calls=[outcome.as_call() for outcome in outcomes],
            )


def _end(turn: DirectorTurn, status: str, *, provider: str, error: str = "") -> None:
    turn.status, turn.provider, turn.error = status, provider, error
    turn.finished_at = timezone.now()
    turn.save(update_fields=["status", "provider", "error", "finished_at"])


def turn_complete(*, turn: DirectorTurn, provider: str) -> None:
    _end(turn, DirectorTurn.Status.COMPLETE, provider=provider)
    logger.info("director turn %s complete", turn.pk)


def turn_fail(*, turn: DirectorTurn, provider: str, error: str) -> None:
    _end(turn, DirectorTurn.Status.FAILED, provider=provider, error=error)
    logger.warning("director turn %s failed: %s", turn.pk, error)


# --------------------------------------------------------------------------- agent runs


def _run_budget(project: Project, budget_usd: Decimal | None) -> Decimal | None:
    """What the project may spend with the run's budget on top of what it has spent, or the
    project's own budget if that is lower (a run never raises it)."""
    if budget_usd is None:
        return project.budget_usd
    ceiling = (project.spent_usd + budget_usd).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    return ceiling if project.budget_usd is None else min(project.budget_usd, ceiling)


def run_start(
    *,
    user,
    project: Project,
    goal: str,
    budget_usd: Decimal | None = None,
    checkpoints: list[str] | None = None,
) -> AgentRun:
    """A run toward `goal` on the user's `project`; its first advance is queued on commit.

    `checkpoints` adds `storyboard` to the project's checkpoints (the cast is one anyway);
    `budget_usd` becomes the project's budget (`_run_budget`), so the run's jobs reserve
    against it like any other. One active run per project (`ConflictError`)."""
    goal = goal.strip()
    if not goal:
        raise ValidationError({"goal": ["Say what film to make."]})
    chosen = ["storyboard"] if checkpoints is None else checkpoints
    checkpoints = list(dict.fromkeys(["cast", *chosen]))
    with transaction.atomic():
        project = lock_project(project.pk)
        busy = project.agent_runs.filter(status__in=AgentRun.ACTIVE).first()
        if busy is not None:
            raise ConflictError(
                f"Agent run #{busy.pk} of this project is {busy.status}: decide or cancel it "
                "before starting another."
            )
        fields: dict = {}
        if "storyboard" in checkpoints and "storyboard" not in project.checkpoints:
            fields["checkpoints"] = [*project.checkpoints, "storyboard"]
        budget = _run_budget(project, budget_usd)
        if budget != project.budget_usd:
            fields["budget_usd"] = budget
        if fields:
            project = generation.project_update(project=project, **fields)
        run = AgentRun.objects.create(
            project=project,
            user=user,
            goal=goal,
            budget_usd=budget_usd,
            checkpoints=checkpoints,
            planner=planner_for_settings().name,
            spent_at_start_usd=project.spent_usd,
        )
        runs.emit(run, "status", {"status": run.status, "project_status": project.status})
        runs.emit(run, "log", {"text": f"Goal: {goal}", "planner": "run"})
        runs.start_advance(run)
    logger.info("agent run %s started on project %s", run.pk, project.pk)
    return run


DECISIONS = ("approve", "revise")


def run_decide(*, run: AgentRun, decision: str, notes: str = "") -> AgentRun:
    """The person's answer at the run's checkpoint: `approve` carries it out, `revise` has the
    planner act on `notes` and ask again. `ConflictError` when the run awaits no decision."""
    notes = notes.strip()
    if decision not in DECISIONS:
        raise ValidationError({"decision": [f"Choose one of {list(DECISIONS)}."]})
    if decision == "revise" and not notes:
        raise ValidationError({"notes": ["Say what to change (required with revise)."]})
    with transaction.atomic():
        hold_project_lock(run.project_id)
        run = AgentRun.objects.select_for_update().select_related("project").get(pk=run.pk)
        if run.status != AgentRun.Status.AWAITING_DECISION:
            raise ConflictError(f"This run awaits no decision: it is {run.status}.")
        entry = {"kind": run.checkpoint_kind, "decision": decision, "notes": notes}
        run.decision = entry
        run.notes = [*run.notes, {**entry, "at": timezone.now().isoformat()}]
        run.checkpoint_kind, run.checkpoint_summary, run.checkpoint_estimate = "", "", {}
        runs.emit(run, "decision", entry)
        runs.set_run_status(run, AgentRun.Status.RUNNING)
        runs.start_advance(run)
    return run


def advance_estimate(
    project: Project, target_type: str, target_id: int, params: dict
) -> list[estimates.Item]:
    """(The `agent-run` job type's estimate: what one advance reserves before it runs, and
    pauses on when it does not fit.) Its planner's rounds when it will plan: the goal not set
    up yet, or a revise's notes. An advance that waits, approves or stops spends nothing."""
    run_id = params.get("run_id")
    running = AgentRun.objects.filter(status=AgentRun.Status.RUNNING)
    run = running.filter(pk=run_id).first() if isinstance(run_id, int) else None
    if run is None:
        return []
    decision = run.decision or {}
    if decision.get("decision") == "revise":
        situation = runs.revise_situation(str(decision.get("kind", "")), decision.get("notes", ""))
    elif not run.set_up and not project.characters.exists():
        situation = runs.set_up_situation(run)
    else:
        return []
    _, system, tools = runs.planner_page(project.pk)
    declared = [
        {"name": t.name, "description": t.description, "parameters": t.parameters} for t in tools
    ]
    return estimates.planner(f"{system}\n{json.dumps(declared)}\n{situation}")


def _stage_goes_on(project: Project) -> bool:
    """A job of the stage the project shows is still active: the person's own, which a run's
    cancel spares (its success moves the project on as if no run had been)."""
    stage = [t.name for t in JOB_TYPES.values() if t.project_status == project.status]
    return project.jobs.filter(type__in=stage, status__in=GenerationJob.ACTIVE).exists()


def run_cancel(*, run: AgentRun) -> AgentRun:
    """Stop the run and cancel the jobs it set going (at the provider too: `generation.jobs.
    jobs_cancel`), so nothing further is asked of the providers for it: its advances, the jobs
    their tool calls started and what those started in turn (`generation.jobs.lineage`). Jobs
    the person started meanwhile are theirs and go on."""
    with transaction.atomic():
        project = lock_project(run.project_id)
        run = AgentRun.objects.select_for_update().select_related("project").get(pk=run.pk)
        if run.status not in AgentRun.ACTIVE:
            raise ConflictError(
                f"Only a running or waiting run can be cancelled; it is {run.status}."
            )
        runs.set_run_status(run, AgentRun.Status.CANCELLED, held_call=None, decision=None)
        cancelled = runs.cancel_what_it_started(run, "The agent run was cancelled.")
        if project.status in generating_statuses() and not _stage_goes_on(project):
            set_status(project, Project.Status.CANCELLED)
        runs.emit(run, "log", {"text": f"Cancelled; jobs {cancelled} cancelled.", "planner": "run"})
    logger.info("agent run %s cancelled (jobs %s)", run.pk, cancelled)
    return run
