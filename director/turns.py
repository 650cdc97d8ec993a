"""Running a director turn: model steps, tool rounds, storage and events.

A turn runs as its own task in a thread pool, not inside the HTTP response: under ASGI a
client that goes away cancels the response's iterator, and the turn must still finish, be
stored and reach the session channel. The response only relays (director.streaming).
"""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections

from director import services
from director.agents.base import Director, Round, TurnInput, configured_director
from director.agents.local import LocalDirector
from director.models import DirectorConfirmation, DirectorTurn
from director.pages import PAGES, page_system_prompt
from director.selectors import session_history
from director.streaming import TurnEvents, TurnRelay
from director.tools import Proposal, ToolContext, ToolOutcome, execute, page_tools
from filmstudio.exceptions import LimitExceeded
from generation import costs
from generation.providers.base import ProviderError
from generation.usage import Meter

logger = logging.getLogger(__name__)

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _turn_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=settings.DIRECTOR_MAX_CONCURRENT_TURNS,
                thread_name_prefix="director-turn",
            )
        return _pool


def director_for_settings(*, paced: bool) -> Director:
    delay = settings.DIRECTOR_LOCAL_DELAY if paced else 0.0
    return configured_director(lambda: LocalDirector(delay=delay), what="direct")


def start_turn(
    turn: DirectorTurn,
    *,
    inline: bool = False,
    confirmation: DirectorConfirmation | None = None,
) -> TurnRelay:
    """Announce the turn and run it; the returned relay carries its events as they come.

    `inline` runs it right here, to the end, before returning: for a caller inside an open
    transaction (tests, ATOMIC_REQUESTS), whose new rows another connection cannot see yet.
    With a `confirmation` the turn carries out the confirmed call instead of asking the model.
    """
    relay = TurnRelay()
    events = TurnEvents(turn.session_id, relay)
    events.emit("start", {"session_id": turn.session_id, "turn_id": turn.pk})
    confirmation_id = confirmation.pk if confirmation else None
    if inline:
        run_turn(turn.pk, events, paced=False, confirmation_id=confirmation_id)
    else:
        _turn_pool().submit(_run_in_thread, turn.pk, events, confirmation_id)
    return relay


def _run_in_thread(turn_id: int, events: TurnEvents, confirmation_id: int | None) -> None:
    close_old_connections()
    try:
        run_turn(turn_id, events, paced=True, confirmation_id=confirmation_id)
    finally:
        close_old_connections()


class _Speaker:
    """Streams the turn's text as `message` events; rounds are set apart by a blank line."""

    def __init__(self, events: TurnEvents):
        self.events = events
        self.spoken: list[str] = []
        self._new_round = False

    def begin_round(self) -> None:
        self._new_round = bool(self.spoken)

    def say(self, delta: str) -> None:
        if not delta:
            return
        if self._new_round and not self.spoken[-1][-1:].isspace() and not delta[:1].isspace():
            delta = "\n\n" + delta
        self._new_round = False
        self.spoken.append(delta)
        self.events.emit("message", {"delta": delta})

    @property
    def text(self) -> str:
        return "".join(self.spoken)


def run_turn(
    turn_id: int, events: TurnEvents, *, paced: bool, confirmation_id: int | None = None
) -> None:
    """The whole turn, ending with `complete` or `error`; never raises."""
    turn, provider = None, ""
    try:
        turn = DirectorTurn.objects.select_related("session__user").get(pk=turn_id)
        # What the model's calls cost goes into the ledger as the user's (and the project's).
        with costs.metered(turn_meter(turn)):
            if confirmation_id is not None:
                provider = "confirm"
                confirmation = DirectorConfirmation.objects.get(pk=confirmation_id)
                text = carry_out(turn, confirmation, events)
            else:
                director = director_for_settings(paced=paced)
                provider = director.name
                if provider != "local":  # a paid model: not past the user's daily cap
                    costs.refuse_over_daily_cap(turn.session.user_id)
                text = converse(turn, director, events)
        services.turn_complete(turn=turn, provider=provider)
    except (ProviderError, ImproperlyConfigured, LimitExceeded) as error:
        message = str(error) if isinstance(error, ImproperlyConfigured) else error.message
        _fail(turn, provider, events, f"The director could not answer: {message}")
    except Exception:
        logger.exception("director turn %s crashed", turn_id)
        _fail(turn, provider, events, "The director failed unexpectedly; please try again.")
    else:
        events.emit("complete", {"text": text})
    finally:
        events.close()


def turn_meter(turn: DirectorTurn) -> Meter:
    return Meter(
        user_id=turn.session.user_id,
        project_id=turn.project_id,
        stage="director",
        unit=("session", turn.session_id),
    )


def _fail(turn: DirectorTurn | None, provider: str, events: TurnEvents, message: str) -> None:
    try:
        if turn is not None:
            services.turn_fail(turn=turn, provider=provider, error=message)
    except Exception:  # the client must still hear how the turn ended
        logger.exception("could not store the failure of director turn %s", turn.pk)
    events.emit("error", {"message": message})


def _turn_input(turn: DirectorTurn) -> tuple[TurnInput, ToolContext]:
    page = PAGES[turn.page]
    user = turn.session.user
    project_line = (
        f"The person has project #{turn.project_id} open."
        if turn.project_id
        else "The person has no project open."
    )
    message = turn.messages.get(role="user").text
    history = session_history(turn.session, before=turn, turns=settings.DIRECTOR_HISTORY_TURNS)
    turn_input = TurnInput(
        system=page_system_prompt(page, project_line=project_line),
        page=page,
        tools=page_tools(page),
        history=history,
        message=message,
        project_id=turn.project_id,
        rounds=[],
    )
    return turn_input, ToolContext(user=user, project_id=turn.project_id, page=page)


def converse(turn: DirectorTurn, director: Director, events: TurnEvents) -> str:
    """Model steps and tool rounds, up to the cap; then one last step without tools."""
    turn_input, ctx = _turn_input(turn)
    speaker = _Speaker(events)
    cap = settings.DIRECTOR_MAX_TOOL_ROUNDS
    for number in range(cap + 1):
        speaker.begin_round()
        final = number == cap
        step = director.step(replace(turn_input, final=final), speaker.say)
        calls = [] if final else step.calls
        outcomes = []
        for call in calls:
            outcome = execute(ctx, call.name, call.args)
            outcomes.append(outcome)
            events.emit("function_call", outcome.as_call())
            if outcome.proposal is not None:
                _ask_to_confirm(turn, outcome, events)
        services.turn_store_round(
            turn=turn, text=step.text, calls=[c.as_dict() for c in calls], outcomes=outcomes
        )
        if not outcomes:
            if final and step.calls:
                speaker.say(f" (I stopped after {cap} rounds of tool calls in one turn.)")
            break
        turn_input = replace(turn_input, rounds=[*turn_input.rounds, Round(step, outcomes)])
    return speaker.text


def _ask_to_confirm(turn: DirectorTurn, outcome: ToolOutcome, events: TurnEvents) -> None:
    assert outcome.proposal is not None
    token, confirmation = services.confirmation_create(
        turn=turn, name=outcome.name, args=outcome.args, proposal=outcome.proposal
    )
    events.emit(
        "confirm",
        {
            "token": token,
            "summary": confirmation.summary,
            "estimate": confirmation.estimate,
            "name": outcome.name,
            "args": outcome.args,
            "expires_at": confirmation.expires_at.isoformat(),
        },
    )


def outcome_text(outcome: ToolOutcome) -> str:
    """What the person is told about a confirmed call (no model is asked)."""
    result = outcome.result or {}
    if "error" in result:
        return f"That could not be done: {result['error']}"
    jobs = result.get("jobs") or ([result["job"]] if "job" in result else [])
    if jobs:
        listed = ", ".join(f"#{job['id']} ({job['type']}, {job['status']})" for job in jobs)
        return f"Started: job {listed}. I will show the result when it is ready."
    if "take" in result:
        return f"Done: take #{result['take']['id']} is now the current one."
    return "Done."


def carry_out(turn: DirectorTurn, confirmation: DirectorConfirmation, events: TurnEvents) -> str:
    """The rest of a turn that asked for confirmation: the held call, run as confirmed.

    Stored like any round (the call, then its result) so the next turn's model sees it."""
    _, ctx = _turn_input(turn)
    agreed = Proposal(summary=confirmation.summary, estimate=confirmation.estimate)
    outcome = execute(ctx, confirmation.tool, confirmation.args, agreed=agreed)
    events.emit("function_call", outcome.as_call())
    services.turn_store_round(
        turn=turn,
        text="",
        calls=[{"name": outcome.name, "args": outcome.args}],
        outcomes=[outcome],
    )
    text = outcome_text(outcome)
    events.emit("message", {"delta": text})
    services.turn_store_round(turn=turn, text=text, calls=[], outcomes=[])
    return text
