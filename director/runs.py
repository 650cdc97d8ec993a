"""Agent runs: the director drives a project's whole pipeline toward a goal, stopping at
checkpoints for the person's decision (`POST /api/projects/{id}/agent-runs`).

A run is a chain of `agent-run` jobs (a row of generation/jobtypes.py) whose state lives in
Postgres (`director.models.AgentRun`). Each advance (`advance_job`, on a worker) reads the
run and the project, decides the next action, carries it out through the tools of
director/tools.py (the API's own services and owner-scoped selectors beneath), and ends:
either it waits (`job_wait_for_project`: no worker held) and is queued again when nothing of
the project moves any more (the jobs it started finished, failed or paused), or it stops at a
checkpoint (its job succeeds; the person's decision queues the next advance). A SIGKILLed
worker leaves a running job whose heartbeat stops: the watchdog queues it again, and the
advance, reading everything afresh, goes on from the state (a decision is consumed before the
planner acts on it: what is paid for is asked for at most once).

The next action, from the project's state:
- not set up yet: the planner (`director.agents.autopilot`) turns the goal into the project
  and starts character generation;
- pipeline work queued, running or waiting: wait; work paused for the budget: wait (said once);
- a decision to carry out: `approve` → the approval through the tools (cast: each pending
  character approved, which starts the scenes; storyboard: approve_storyboard; spend: the held
  call, as agreed; budget: the approval the project waits for); `revise` → the planner acts on
  the notes (a held call is dropped: the planner calls again if they want it), then the
  project's checkpoint again;
- `awaiting_approval`: the `cast` checkpoint (always);
- `awaiting_storyboard_approval`: the `storyboard` checkpoint, or (a run started without it)
  the approval by itself, a paid step like any other;
- `complete`: the run is complete; `failed` or `cancelled`: the run failed.

Money: `budget_usd` is applied as the project's budget when the run starts (what the project
has spent plus it, or the project's own budget if that is lower: `director.services.
run_start`), so every job of the run reserves against it through `generation.costs.reserve`
like any other job: work that does not fit pauses and the run says so. The set-up's first
step (the cast) or an approval whose quote does not fit what is left (checked before anything
is approved) stops at a `budget` checkpoint instead of failing: raise budget_usd then approve
(still short: the same checkpoint again). A paid call the planner makes by itself whose quote
is over `AGENT_CONFIRM_ABOVE_USD` (over what is left of it: it counts for all of one plan's
calls together) is held at a `spend` checkpoint, and the calls of its plan after it with it
(`with_rest`: made once it is approved, dropped with it by a revise). The run acts on its
own project only: ids of the user's other projects are refused here, ids of other users' by
the owner-scoped selectors (`Not found.`).
"""

import logging
from collections import defaultdict
from contextvars import ContextVar
from dataclasses import dataclass, replace
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Model, Sum
from django.utils import timezone
from django_eventstream import send_event

from director.agents.autopilot import REVISE, SET_UP, goal_numbers, planner_for_settings
from director.agents.base import Round, TurnInput
from director.models import AgentRun, AgentRunEvent
from director.pages import BASE_PROMPT, UNIT_TOOLS, Page
from director.tools import Proposal, ToolContext, ToolOutcome, execute, normalized, page_tools
from filmstudio.exceptions import LimitExceeded
from generation import costs
from generation import services as generation
from generation.jobs import (
    hold_project_lock,
    job_superseded,
    jobs_cancel,
    lineage,
    project_busy,
    started_by,
)
from generation.jobtypes import generating_statuses
from generation.models import GenerationJob, SpendEntry
from generation.pipeline import set_status
from generation.providers.base import ProviderError
from generation.selectors import job_quote
from media.signing import blob_url
from projects.models import Character, Frame, Project, Scene, Take

logger = logging.getLogger(__name__)

Job = GenerationJob
Status = AgentRun.Status
# What an advance ends with: wait for the project to stop moving; wait for the person (the
# project's work is paused: only they can move it); or stop (a checkpoint, or the run ended).
WAIT, PARK, STOP = "wait", "park", "stop"
RUN_EVENTS = ("status", "log", "action", "checkpoint", "decision", "complete", "error")
CHECKPOINT_KINDS = ("cast", "storyboard", "spend", "budget")
# The approval the project waits for, by its status: the checkpoint's kind, what it starts.
APPROVALS: dict[str, tuple[str, str]] = {
    Project.Status.AWAITING_APPROVAL: ("cast", Job.Type.SCENES),
    Project.Status.AWAITING_STORYBOARD_APPROVAL: ("storyboard", Job.Type.VIDEOS),
}
APPROVALS_BY_KIND = dict(APPROVALS.values())

AGENT_PAGE = Page(
    id="agent-run",
    title="Agent run",
    description="The director drives the project's pipeline toward the person's goal.",
    prompt="You are running the film's pipeline for the person, on project #{project_id} "
    "only. Do what the situation asks with the tools, then answer in one sentence without "
    "calling tools. Never approve characters or the storyboard yourself: the app asks the "
    "person at those checkpoints.",
    tools=(
        "get_project_status",
        "update_project",
        "start_generation",
        "retry_job",
        "approve_character",
        "reject_character",
        *UNIT_TOOLS,
    ),
)
# The run's own calls at checkpoints: not offered to the planner, refused if it calls them.
PLANNER_REFUSED = ("approve_character", "approve_storyboard")


def run_channel(run_id: int) -> str:
    return f"agentrun-{run_id}"


# --------------------------------------------------------------------------- events


def emit(run: AgentRun, event_type: str, data: dict) -> AgentRunEvent:
    """Stored (the run's log) and published on the run's channel once the transaction commits
    (django-eventstream keeps it for Last-Event-ID replay)."""
    event = AgentRunEvent.objects.create(run=run, type=event_type, data=data)
    payload = {"run_id": run.pk, "seq": event.pk, **data}
    channel = run_channel(run.pk)

    def publish() -> None:
        try:
            send_event(channel, event_type, payload)
        except Exception:  # live events are best effort; the log has it
            logger.exception("could not publish %s on %s", event_type, channel)

    transaction.on_commit(publish)
    return event


def set_run_status(run: AgentRun, status: str, **fields) -> None:
    """(Run row locked.) A new status, saved and announced."""
    run.status = status
    for name, value in fields.items():
        setattr(run, name, value)
    if status not in AgentRun.ACTIVE:
        run.finished_at = timezone.now()
    run.save()
    emit(run, "status", {"status": status, "project_status": run.project.status})


def run_spent(run: AgentRun) -> Decimal:
    """What the run's work cost: the ledger's entries of its advances (a Gemini planner's
    calls), of the jobs their tool calls started and of what those set going in turn
    (`lineage`). What the person started by hand meanwhile is theirs, not the run's."""
    return runs_spent(run.project_id, [run.pk])[run.pk]


def runs_spent(project_id: int, run_ids: list[int]) -> dict[int, Decimal]:
    """`run_spent` of several runs of one project in two statements for them all: the
    project's jobs read once and walked from each run's advances as `lineage` walks them."""
    rows = GenerationJob.objects.filter(project_id=project_id).values_list(
        "pk", "type", "parent_id", "params__started_by", "params__run_id"
    )
    wanted, owner, below = set(run_ids), {}, defaultdict(list)
    for pk, type, parent_id, starter, run_id in rows:
        if type == GenerationJob.Type.AGENT_RUN and run_id in wanted:
            owner[pk] = run_id
        for up in {parent_id, starter if isinstance(starter, int) else None} - {None}:
            below[up].append(pk)
    frontier = list(owner)
    while frontier:
        up = frontier.pop()
        for pk in below[up]:
            if pk not in owner:
                owner[pk] = owner[up]
                frontier.append(pk)
    spent = dict.fromkeys(run_ids, Decimal(0))
    entries = SpendEntry.objects.filter(job_id__in=owner).values_list("job_id")
    for job_id, usd in entries.annotate(usd=Sum("usd")):
        spent[owner[job_id]] += usd
    return spent


def _advances(run: AgentRun):
    return GenerationJob.objects.filter(
        project_id=run.project_id, type=GenerationJob.Type.AGENT_RUN, params__run_id=run.pk
    )


def finish(run: AgentRun, status: str, *, error: str = "") -> None:
    """(Project and run rows locked.) complete, failed or cancelled. A failed run's work is
    cancelled: nothing goes on spending for a run that ended (the person's own jobs go on)."""
    set_run_status(run, status, error=error[:4000])
    if status == Status.COMPLETE:
        project = run.project
        emit(
            run,
            "complete",
            {
                "final_video_url": blob_url(project.final_video),
                "final_duration": project.final_duration,
                "spent_usd": float(run_spent(run)),
            },
        )
    elif status == Status.FAILED:
        emit(run, "error", {"message": run.error})
        stopped = cancel_what_it_started(run, f"The agent run failed: {run.error}"[:4000])
        project = Project.objects.get(pk=run.project_id)
        if stopped and project.status in generating_statuses() and not project_busy(project.pk):
            set_status(project, Project.Status.CANCELLED)  # its stage was the run's


def start_advance(run: AgentRun) -> Job:
    """The run's next advance, queued when the transaction commits (project row locked)."""
    return generation.job_create(
        project=run.project,
        type=Job.Type.AGENT_RUN,
        target_type=Job.TargetType.PROJECT,
        target_id=run.project_id,
        params={"run_id": run.pk},
    )


# --------------------------------------------------------------------------- the tools


class RunStopped(Exception):
    """The run was cancelled (or finished) while this advance worked."""


class Superseded(RunStopped):
    """This advance's job is no longer this delivery's: the watchdog took it for lost (no
    heartbeat) and queued it again while this one still worked. The new delivery goes on from
    the run's state; this one acts no more and leaves the job row alone."""


# The (job id, attempt) of the advance at work in this context (`advance_job`).
_ADVANCE: ContextVar[tuple[int, int] | None] = ContextVar("agent_run_advance", default=None)


def _still_ours() -> None:
    """Raise Superseded when the job of the advance at work was queued again (each requeue
    counts an attempt; a cancel does not: that is the run's own matter, RunStopped)."""
    current = _ADVANCE.get()
    if current is not None and job_superseded(*current):
        raise Superseded()


@dataclass(frozen=True)
class Checkpoint:
    kind: str
    summary: str
    estimate: dict
    held_call: dict | None = None  # spend: the call that waits for the person


def _context(run: AgentRun) -> ToolContext:
    return ToolContext(user=run.user, project_id=run.project_id, page=AGENT_PAGE)


# Argument → (model, its path to the project, its path to the owner).
_OWNED: dict[str, tuple[type[Model], str, str]] = {
    "project_id": (Project, "pk", "owner_id"),
    "character_id": (Character, "project_id", "project__owner_id"),
    "scene_id": (Scene, "project_id", "project__owner_id"),
    "frame_id": (Frame, "scene__project_id", "scene__project__owner_id"),
    "job_id": (Job, "project_id", "project__owner_id"),
    "take_id": (Take, "project_id", "project__owner_id"),
}


def _elsewhere(run: AgentRun, args: dict) -> str | None:
    """A refusal when an argument names an object of another of the user's projects. Other
    users' objects go on to the tool, whose owner-scoped selectors answer `Not found.`."""
    for name, (model, project_path, owner_path) in _OWNED.items():
        value = args.get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        mine = model._default_manager.filter(pk=value, **{owner_path: run.user_id})
        if mine.exclude(**{project_path: run.project_id}).exists():
            return f"This run acts on project #{run.project_id} only; {name} {value} is not in it."
    return None


def _clips_before_the_approval(run: AgentRun, name: str, args: dict) -> str | None:
    """A refusal for a call that makes clips (one frame's, a scene's) while the project awaits
    its storyboard's approval: the run's approval starts them, at its checkpoint (every
    frame's are refused by `start_video_generation` itself)."""
    clips = (
        name == "regenerate_clip"
        or (name == "regenerate_scene" and args.get("kind") == "clips")
        or (name == "start_generation" and args.get("kind") == "videos")
    )
    awaiting = Project.Status.AWAITING_STORYBOARD_APPROVAL
    if clips and Project.objects.filter(pk=run.project_id, status=awaiting).exists():
        return "The storyboard awaits approval at its checkpoint: no clip is made before it."
    return None


@dataclass
class Allowance:
    """What the run may still agree to by itself in one plan: AGENT_CONFIRM_ABOVE_USD for all
    its calls together, not for each (ten calls just under it are not ten times it)."""

    left: Decimal
    agreed: Decimal = Decimal(0)


def call_tool(
    run: AgentRun,
    name: str,
    args: dict,
    *,
    agreed: Proposal | None = None,
    approved: bool = False,
    planner: bool = False,
    allowance: Allowance | None = None,
    consumes_held: bool = False,
) -> tuple[ToolOutcome, Checkpoint | None]:
    """One call as the run's user, under the project's row lock and only while the run runs
    (a cancel, which takes the same lock, cannot slip between the check and the call).

    A tool that spends or replaces answers with a proposal first: the run agrees to it by
    itself when its quote is at most AGENT_CONFIRM_ABOVE_USD, or what is left of the plan's
    `allowance` (or the person `approved` the checkpoint it answers), else the call is held at
    a `spend` checkpoint. The arguments are
    normalised first, as `execute` does (7.0 is project 7), so the check that keeps the run on
    its own project sees the ids the tool will use. `consumes_held`: the run's held call and
    decision are done with in the same transaction as the call, when it is made (a crash after
    it cannot make it, and pay for it, a second time)."""
    args = normalized(args)
    with transaction.atomic():
        hold_project_lock(run.project_id)
        if not AgentRun.objects.filter(pk=run.pk, status=Status.RUNNING).exists():
            raise RunStopped()
        _still_ours()
        refusal = _elsewhere(run, args) or _clips_before_the_approval(run, name, args)
        if planner and name in PLANNER_REFUSED:
            refusal = "The app asks the person at the checkpoints; do not approve yourself."
        elif planner and name == "reject_character" and _settles_the_cast(run, args):
            refusal = (
                "Rejecting the last undecided character settles the cast and starts the scenes: "
                "the person decides that at the cast checkpoint."
            )
        if refusal:
            outcome = ToolOutcome(name, args, {"error": refusal})
        else:
            outcome = execute(_context(run), name, args, agreed=agreed)
        checkpoint = None
        if outcome.proposal is not None:
            proposal = outcome.proposal
            total = Decimal(str(proposal.estimate.get("total_usd") or 0))
            free = _threshold() if allowance is None else allowance.left
            if approved or total <= free:
                outcome = execute(_context(run), name, outcome.args, agreed=proposal)
                if allowance is not None and not approved and refused(outcome) is None:
                    allowance.left -= total
                    allowance.agreed += total
            else:
                summary = proposal.summary
                if allowance is not None and allowance.agreed:
                    summary += (
                        f" (The run agreed to ${allowance.agreed:.2f} by itself in this step; "
                        f"more than ${settings.AGENT_CONFIRM_ABOVE_USD:.2f} in all waits for "
                        "you.)"
                    )
                held = {"name": name, "args": outcome.args, **_proposal_dict(proposal)}
                checkpoint = Checkpoint("spend", summary, proposal.estimate, held)
        made = checkpoint is None and outcome.proposal is None and refused(outcome) is None
        if consumes_held and made:
            _consume_decision(run)
        emit(run, "action", outcome.as_call() | ({"held": True} if checkpoint else {}))
    return outcome, checkpoint


def _threshold() -> Decimal:
    return Decimal(str(settings.AGENT_CONFIRM_ABOVE_USD))


def _settles_the_cast(run: AgentRun, args: dict) -> bool:
    """(Project row locked.) No other character of the run's project waits for a decision."""
    pending = Character.objects.filter(project_id=run.project_id, status=Character.Status.PENDING)
    return not pending.exclude(pk=args.get("character_id") or 0).exists()


def refused(outcome: ToolOutcome) -> str | None:
    """The tool's refusal, if it refused."""
    return (outcome.result or {}).get("error")


def _proposal_dict(proposal: Proposal) -> dict:
    return {"summary": proposal.summary, "estimate": proposal.estimate}


# --------------------------------------------------------------------------- the planner


def planner_page(project_id: int) -> tuple[Page, str, list]:
    """The planner's page, its system prompt and its tools (no approvals: those are the
    person's, at the checkpoints)."""
    page = replace(AGENT_PAGE, prompt=AGENT_PAGE.prompt.format(project_id=project_id))
    tools = [t for t in page_tools(page) if t.name not in PLANNER_REFUSED]
    return page, f"{BASE_PROMPT}\n{page.prompt}", tools


def plan(run: AgentRun, situation: str) -> Checkpoint | None:
    """The planner's rounds on one situation; each call through `call_tool`, each result back
    to it. Ends when it answers without calls (or at the tool-round cap), or at a call held for
    the person (`spend`)."""
    planner = planner_for_settings()
    if planner.name != "local":  # a paid model: not past the user's daily cap
        costs.refuse_over_daily_cap(run.user_id)
    page, system, tools = planner_page(run.project_id)
    turn = TurnInput(
        system=system,
        page=page,
        tools=tools,
        history=[],
        message=situation,
        project_id=run.project_id,
        rounds=[],
    )
    cap = settings.DIRECTOR_MAX_TOOL_ROUNDS
    allowance = Allowance(_threshold())
    for number in range(cap + 1):
        spoken: list[str] = []
        step = planner.step(replace(turn, final=number == cap), spoken.append)
        text = ("".join(spoken) or step.text).strip()
        if text:
            with transaction.atomic():
                emit(run, "log", {"text": text[:4000], "planner": planner.name})
        calls = [] if number == cap else step.calls
        outcomes = []
        for index, call in enumerate(calls):
            outcome, checkpoint = call_tool(
                run, call.name, call.args, planner=True, allowance=allowance
            )
            if checkpoint is not None:
                rest = [c.as_dict() for c in calls[index + 1 :]]
                return with_rest(checkpoint, rest, allowance)
            outcomes.append(outcome)
        if not outcomes:
            return None
        turn = replace(turn, rounds=[*turn.rounds, Round(step, outcomes)])
    return None


def with_rest(checkpoint: Checkpoint, rest: list[dict], allowance: Allowance) -> Checkpoint:
    """A call held at a `spend` checkpoint keeps the calls the planner made with it in the same
    step (`rest`), made in order once the person approves it (`rest_of_step`), with what the
    plan may still agree to by itself; a revise drops them with it. The summary names them."""
    if checkpoint.held_call is None or not rest:
        return checkpoint
    summary = (
        f"{checkpoint.summary} Then {len(rest)} more call(s) of the same step: {_names(rest)} "
        "(made once you approve, each asked again if it spends more than the run may agree to; "
        "dropped if you revise)."
    )
    held = {
        **checkpoint.held_call,
        "rest": rest,
        "allowance": {"left": str(allowance.left), "agreed": str(allowance.agreed)},
    }
    return replace(checkpoint, summary=summary, held_call=held)


def _names(calls: list[dict]) -> str:
    return ", ".join(str(call["name"]) for call in calls)


def held_allowance(held: dict) -> Allowance:
    """What the plan of a held call may still agree to by itself (`with_rest`); nothing when
    not recorded."""
    kept = held.get("allowance") or {}
    return Allowance(Decimal(kept.get("left", "0")), Decimal(kept.get("agreed", "0")))


def rest_of_step(run: AgentRun, held: dict) -> Checkpoint | None:
    """The calls held behind an approved (or re-asked) one (`with_rest`), in order, each as the
    planner's, with its plan's allowance; one that waits for the person stops them there, with
    the ones after it. A refused one is in the run's log (its `action` event) like any other."""
    rest = list(held.get("rest") or [])
    allowance = held_allowance(held)
    for index, call in enumerate(rest):
        _, checkpoint = call_tool(
            run, call["name"], call["args"], planner=True, allowance=allowance
        )
        if checkpoint is not None:
            return with_rest(checkpoint, rest[index + 1 :], allowance)
    return None


def set_up_situation(run: AgentRun) -> str:
    return f"{SET_UP}{run.goal}"


def revise_situation(kind: str, notes: str) -> str:
    return f"{REVISE}{kind}: {notes}"


# --------------------------------------------------------------------------- checkpoints


def _quote(project: Project, type: str, params: dict | None = None) -> dict:
    return job_quote(project, type, Job.TargetType.PROJECT, project.pk, params)


def cast_checkpoint(project: Project) -> Checkpoint:
    cast = list(project.characters.order_by("slot", "pk"))
    listed = "; ".join(
        f"{c.name} ({c.role or 'role not given'}, {'portrait ready' if c.image else c.status})"
        for c in cast
    )
    scenes, shots = project.num_scenes, project.frames_per_scene
    return Checkpoint(
        "cast",
        f"The cast of “{project.title}”: {listed}. Approve to write the {scenes} scene(s) and "
        f"draw their {scenes * shots} keyframe(s); or revise with notes, e.g. “redo "
        f"{cast[0].name if cast else 'Mara'}'s portrait: older”.",
        _quote(project, Job.Type.SCENES),
    )


def storyboard_checkpoint(project: Project) -> Checkpoint:
    frames = Frame.objects.filter(scene__project=project).count()
    return Checkpoint(
        "storyboard",
        f"The storyboard of “{project.title}” is drawn: {frames} keyframe(s) in "
        f"{project.scenes.count()} scene(s). Approve to make the {frames} clip(s) and the "
        "spoken lines, then cut the film; or revise with notes, e.g. “make frame 2 of scene 1 "
        "darker”.",
        _quote(project, Job.Type.VIDEOS),
    )


# What a budget checkpoint is asked before: the job type its quote is of, and what it starts.
BUDGETED = {
    "set-up": (Job.Type.CHARACTERS, "Starting the film draws the cast"),
    "cast": (Job.Type.SCENES, "Approving the cast starts the scenes"),
    "storyboard": (Job.Type.VIDEOS, "Approving the storyboard starts the clips"),
}


def budget_checkpoint(project: Project, kind: str, params: dict | None = None) -> Checkpoint | None:
    """Before `kind` (the set-up's first step, the cast's or the storyboard's approval), which
    starts paid work: a `budget` checkpoint when its quote (of the job with `params`) does not
    fit what is left of the project's budget (the check `generation.costs.admit` makes of
    it), else None."""
    type, what = BUDGETED[kind]
    estimate = _quote(project, type, params)
    needs = Decimal(str(estimate.get("total_usd") or 0))
    left = costs.remaining(project)
    if left is None or not needs or needs <= left:
        return None
    return Checkpoint(
        "budget",
        f"{what}: it needs {costs.usd_text(needs)} and "
        f"{costs.usd_text(max(left, Decimal(0)))} is left of the "
        f"{costs.usd_text(project.budget_usd)} budget ({costs.usd_text(project.spent_usd)} "
        f"spent, {costs.usd_text(project.reserved_usd)} reserved): raise budget_usd then approve.",
        estimate,
    )


def stop_at(run: AgentRun, checkpoint: Checkpoint) -> str:
    with transaction.atomic():
        run = _locked(run)
        if run.status != Status.RUNNING:
            return STOP
        run.checkpoint_kind, run.checkpoint_summary = checkpoint.kind, checkpoint.summary
        run.checkpoint_estimate = checkpoint.estimate
        if checkpoint.held_call is not None:
            run.held_call = checkpoint.held_call
        emit(run, "checkpoint", checkpoint_payload(run) or {})
        set_run_status(run, Status.AWAITING_DECISION)
    return STOP


def checkpoint_payload(run: AgentRun) -> dict | None:
    if not run.checkpoint_kind:
        return None
    return {
        "kind": run.checkpoint_kind,
        "summary": run.checkpoint_summary,
        "estimate": run.checkpoint_estimate,
    }


# --------------------------------------------------------------------------- advancing


def _locked(run: AgentRun) -> AgentRun:
    """The run's row, locked; inside an advance, only while its job is still this delivery's."""
    locked = AgentRun.objects.select_for_update().select_related("project", "user").get(pk=run.pk)
    _still_ours()
    return locked


def _run_of(job: Job) -> AgentRun | None:
    run_id = (job.params or {}).get("run_id")
    return AgentRun.objects.filter(pk=run_id).first() if isinstance(run_id, int) else None


def advance_job(job: Job) -> None:
    """The `agent-run` job's step: one advance, then wait for the project or end (unless the
    job was queued again meanwhile: the other delivery's, then)."""
    run = _run_of(job)
    token = _ADVANCE.set((job.pk, job.attempts))
    try:
        with started_by(job.pk):  # what its tool calls start is the run's (run_cancel)
            outcome = STOP if run is None else advance(run)
        if outcome in (WAIT, PARK) and generation.job_wait_for_project(
            job, recheck=outcome == WAIT
        ):
            return
    except Superseded:
        logger.warning(
            "agent-run job %s attempt %s was queued again: stopped", job.pk, job.attempts
        )
        return
    except RunStopped:
        pass
    finally:
        _ADVANCE.reset(token)
    # Not if queued again meanwhile: the row is the new delivery's (checked in the write).
    generation.job_succeed(job, {"run_id": run.pk if run else None}, attempt=job.attempts)


def advance_failed(job: Job) -> None:
    """The `agent-run` job failed (a crash, an error the planner's provider would not get
    over, lost workers past JOB_MAX_ATTEMPTS): the run fails with its message."""
    run = _run_of(job)
    if run is None:
        return
    run = _locked(run)
    if run.status == Status.RUNNING:
        finish(run, Status.FAILED, error=job.error or "The run's step failed.")


def advance_cancelled(job: Job) -> None:
    """The `agent-run` job was cancelled by itself (the job API, the project's jobs
    cancelled): its run, which nothing would advance any more, is cancelled with it."""
    run = _run_of(job)
    if run is None:
        return
    run = _locked(run)
    if run.status in AgentRun.ACTIVE:
        set_run_status(run, Status.CANCELLED, error=f"Its job #{job.pk} was cancelled: {job.error}")
        cancel_what_it_started(run, f"The agent run was cancelled with its job #{job.pk}.")


def cancel_what_it_started(run: AgentRun, reason: str) -> list[int]:
    """Cancel (through `generation.jobs.jobs_cancel`, at the provider too) the run's advances,
    the jobs their tool calls started and what those started in turn (`lineage`); jobs the
    person started meanwhile are theirs and go on. The run is no longer active by then, so the
    `cancelled` hook of its other advances finds it done."""
    ours = lineage(run.project_id, _advances(run).values_list("pk", flat=True))
    return jobs_cancel(GenerationJob.objects.filter(pk__in=ours), reason)


def advance(run: AgentRun) -> str:
    with transaction.atomic():
        hold_project_lock(run.project_id)  # before the run's row, as everywhere (a finish cancels)
        run = _locked(run)
        if run.status != Status.RUNNING:
            return STOP
        run.advances += 1
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["advances", "heartbeat_at", "updated_at"])
        if run.advances > settings.AGENT_MAX_ADVANCES:
            finish(
                run,
                Status.FAILED,
                error=f"Stopped after {settings.AGENT_MAX_ADVANCES} advances "
                "(AGENT_MAX_ADVANCES) without reaching the film.",
            )
            return STOP
    if project_busy(run.project_id):
        return WAIT
    project = run.project
    project.refresh_from_db()
    paused = project.jobs.filter(status=Job.Status.PAUSED).order_by("pk").first()
    if paused is not None:
        _say_once(run, f"Waiting: job #{paused.pk} ({paused.type}) is paused. {paused.error}")
        return PARK
    if run.decision:
        return carry_out(run, project)
    held = run.held_call
    if held:  # agreed but changed since it was quoted: asked again, freshly quoted
        outcome, checkpoint = call_tool(
            run, held["name"], held["args"], allowance=Allowance(Decimal(0)), consumes_held=True
        )
        if checkpoint is not None:  # the calls behind it still wait with it
            rest = held.get("rest") or []
            return stop_at(run, with_rest(checkpoint, rest, held_allowance(held)))
        if error := refused(outcome):  # what the calls behind it were made with is not there
            with transaction.atomic():
                _consume_decision(run)
                if held.get("rest"):
                    emit(
                        run,
                        "log",
                        {"text": f"Not made, with it ({error}): {_names(held['rest'])}."},
                    )
            return WAIT
        return _after_the_held_call(run, held)
    if not run.set_up:
        if not project.characters.exists():
            return set_up(run, project)
        # The pipeline is under way (an advance lost after starting it, or a project that had
        # its cast already): the state says what comes next.
        AgentRun.objects.filter(pk=run.pk).update(set_up=True)
    return next_after(run, project)


def _say_once(run: AgentRun, text: str) -> None:
    with transaction.atomic():
        last = run.events.filter(type="log").order_by("-pk").first()
        if last is None or last.data.get("text") != text:
            emit(run, "log", {"text": text, "planner": "run"})


def set_up(run: AgentRun, project: Project) -> str:
    """The goal into the project, and its first step. Run again from the start when its advance
    was lost before a cast existed (what it does before that is an edit and one start)."""
    checkpoint = plan(run, set_up_situation(run))
    if checkpoint is None:
        AgentRun.objects.filter(pk=run.pk).update(set_up=True)
    else:
        return stop_at(run, checkpoint)
    if not project_busy(run.project_id) and not project.characters.exists():
        # The planner started nothing: the pipeline's first step, as the goal's run needs it.
        return start_cast(run, project)
    return WAIT


def start_cast(run: AgentRun, project: Project) -> str:
    """The pipeline's first step (the cast, as many as the goal names); a budget it does not
    fit stops at a `budget` checkpoint (approved once raised: this again), not a failure."""
    count = goal_numbers(run.goal).get("count")
    params = {"count": count} if count else None
    if checkpoint := budget_checkpoint(project, "set-up", params):
        return stop_at(run, checkpoint)
    outcome, checkpoint = call_tool(
        run, "start_generation", {"kind": "characters", **(params or {})}
    )
    if checkpoint is not None:
        return stop_at(run, checkpoint)
    if error := refused(outcome):
        project.refresh_from_db()  # the budget moved since it was checked: asked as well
        if checkpoint := budget_checkpoint(project, "set-up", params):
            return stop_at(run, checkpoint)
        return fail(run, f"The pipeline did not start: {error}")
    return WAIT


def fail(run: AgentRun, message: str) -> str:
    with transaction.atomic():
        hold_project_lock(run.project_id)
        run = _locked(run)
        if run.status == Status.RUNNING:
            finish(run, Status.FAILED, error=message)
    return STOP


def _last_error(project: Project) -> str:
    failed = project.jobs.filter(status=Job.Status.FAILED).exclude(type=Job.Type.AGENT_RUN)
    job = failed.order_by("-finished_at", "-pk").first()
    return f"job #{job.pk} ({job.type}) failed: {job.error}" if job else ""


def next_after(run: AgentRun, project: Project) -> str:
    """Nothing of the project moves and no decision is pending: what its state asks for."""
    state = project.status
    if state == Project.Status.COMPLETE and project.final_video:
        with transaction.atomic():
            run = _locked(run)
            if run.status == Status.RUNNING:
                finish(run, Status.COMPLETE)
        return STOP
    if state == Project.Status.AWAITING_APPROVAL:
        return stop_at(run, cast_checkpoint(project))
    if state == Project.Status.AWAITING_STORYBOARD_APPROVAL:
        if "storyboard" in run.checkpoints:
            return stop_at(run, storyboard_checkpoint(project))
        return approve(run, project, "storyboard")
    if not project.characters.exists() and not _last_error(project):
        return start_cast(run, project)  # not started yet (a revise at the set-up's budget)
    why = _last_error(project) or "nothing is running and no step follows by itself"
    return fail(run, f"The pipeline stopped with the project {state}: {why}.")


def approve(run: AgentRun, project: Project, kind: str, *, agreed: bool = False) -> str:
    """The cast's or the storyboard's approval, through the tools (`agreed`: the person's, at
    its checkpoint). When the budget does not allow what it starts, the run stops at a `budget`
    checkpoint instead, nothing approved (approving then, once the budget is raised, goes on
    from there; still short, the same checkpoint again)."""
    if checkpoint := budget_checkpoint(project, kind):
        return stop_at(run, checkpoint)
    calls: list[tuple[str, dict]] = [("approve_storyboard", {})]
    if kind == "cast":
        pending = project.characters.filter(status=Character.Status.PENDING).order_by("pk")
        calls = [("approve_character", {"character_id": c.pk}) for c in pending]
    for name, args in calls:
        outcome, checkpoint = call_tool(run, name, args, approved=agreed)
        if checkpoint is not None:
            return stop_at(run, checkpoint)
        if error := refused(outcome):
            project.refresh_from_db()  # the budget moved since it was checked: asked as well
            if checkpoint := budget_checkpoint(project, kind):
                return stop_at(run, checkpoint)
            return fail(run, f"The {kind} could not be approved: {error}")
    return WAIT


def carry_out(run: AgentRun, project: Project) -> str:
    """The person's decision at the last checkpoint, through the tools."""
    decision = run.decision or {}
    kind, verdict = str(decision.get("kind", "")), decision.get("decision")
    if verdict == "revise":
        # Consumed first: what the notes ask is paid for once. A call held at a spend checkpoint
        # is dropped (the planner calls again if the notes want it).
        with transaction.atomic():
            _consume_decision(run)
        try:
            checkpoint = plan(run, revise_situation(kind, decision.get("notes", "")))
        except (ProviderError, LimitExceeded) as error:
            # The planner's model failed (a 429, a timeout, the daily cap): the notes are not
            # dropped silently, the person is asked again (the project's checkpoint).
            _say_once(
                run,
                f"The director could not act on your notes: {error.message.rstrip('.')}. "
                "Nothing more was done for them; decide again (revise with the same notes to "
                "try again).",
            )
            return WAIT
        return stop_at(run, checkpoint) if checkpoint else WAIT
    if kind == "budget":  # the step it stopped before, now that the budget may allow it
        kind = APPROVALS.get(project.status, ("", ""))[0]
        if not kind and not project.characters.exists():
            with transaction.atomic():
                _consume_decision(run)
            return start_cast(run, project)
    if kind in APPROVALS_BY_KIND:
        with transaction.atomic():
            _consume_decision(run)
        return approve(run, project, kind, agreed=True)
    if kind == "spend" and run.held_call:
        held = dict(run.held_call)
        agreed = Proposal(summary=held["summary"], estimate=held["estimate"])
        outcome, _ = call_tool(run, held["name"], held["args"], agreed=agreed, consumes_held=True)
        if refused(outcome):
            # Changed since it was quoted (or refused now): asked again, freshly quoted.
            with transaction.atomic():
                AgentRun.objects.filter(pk=run.pk).update(decision=None)
            return WAIT
        return _after_the_held_call(run, held)
    with transaction.atomic():
        _consume_decision(run)
    return WAIT


def _after_the_held_call(run: AgentRun, held: dict) -> str:
    """The held call was made (forgotten with it, `consumes_held`): the calls of its step
    behind it. A crash among them loses the ones not made yet rather than make any twice
    (each is a call that may spend)."""
    checkpoint = rest_of_step(run, held)
    return stop_at(run, checkpoint) if checkpoint else WAIT


def _consume_decision(run: AgentRun) -> None:
    """The person's decision and the call it was about are done with."""
    AgentRun.objects.filter(pk=run.pk).update(decision=None, held_call=None)
