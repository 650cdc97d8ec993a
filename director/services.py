"""State changes of director sessions: starting, storing and ending turns; the turn rate limit."""

import logging
from datetime import timedelta

import django_rq
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from director.models import DirectorMessage, DirectorSession, DirectorTurn
from director.tools import ToolOutcome
from filmstudio.exceptions import ConflictError
from generation.providers.keypool import RateLimiter
from projects.models import Project

logger = logging.getLogger(__name__)

Role = DirectorMessage.Role


def turn_rate_limit_wait(user) -> float:
    """Take one of the user's turns for this minute: 0.0, or the seconds until one frees up."""
    limiter = RateLimiter(
        f"director-turns:user:{user.pk}",
        settings.DIRECTOR_TURNS_PER_MINUTE,
        django_rq.get_connection("default"),
    )
    return limiter.try_acquire()


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
        if session is None:
            session = DirectorSession.objects.create(user=user, project=project, page=page)
        else:
            session = DirectorSession.objects.select_for_update().get(pk=session.pk)
            _expire_lost_turns(session)
            if session.turns.filter(status=DirectorTurn.Status.RUNNING).exists():
                raise ConflictError(
                    "The director is still answering in this session: wait for that turn to "
                    "complete (its events are on /api/director/sessions/{id}/events)."
                )
            project = project or session.project
            session.project, session.page = project, page
            session.save(update_fields=["project", "page", "updated_at"])
        turn = DirectorTurn.objects.create(session=session, page=page, project=project)
        DirectorMessage.objects.create(session=session, turn=turn, role=Role.USER, text=message)
    logger.info("director turn %s started in session %s", turn.pk, session.pk)
    return turn


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
