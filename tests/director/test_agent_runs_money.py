"""Agent runs and money, offline with a priced rate card: a paid step over
AGENT_CONFIRM_ABOVE_USD waits at a `spend` checkpoint, the run's budget is the project's and an
approval past it stops at a `budget` checkpoint until the budget is raised; a run without the
storyboard checkpoint approves the storyboard itself; a revise at a spend checkpoint drops the
held call; the calls of a step behind a held one wait with it and are made once it is approved."""

from decimal import ROUND_DOWN, Decimal

import pytest

from director.agents.autopilot import LocalPlanner
from director.agents.base import Call, Step
from director.models import AgentRun
from generation import watchdog
from generation.models import GenerationJob, SpendEntry
from projects.models import Character, Project, Take
from tests.director.agent_runs import decide, new_project, offline, run_of, start, work_one
from tests.generation.test_costs import priced
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob
__all__ = ["offline", "priced"]  # a fixture


def test_a_paid_step_over_the_threshold_waits_for_the_person(api, priced, settings):
    settings.AGENT_CONFIRM_ABOVE_USD = 0.0
    pid = new_project(api)
    run = start(api, pid)
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision", run
    checkpoint = run["checkpoint"]
    assert checkpoint["kind"] == "spend" and checkpoint["estimate"]["total_usd"] > 0
    assert "characters" in checkpoint["summary"]
    held = [e["data"] for e in run["events"] if e["type"] == "action" and e["data"].get("held")]
    assert [h["name"] for h in held] == ["start_generation"]
    assert held[0]["result"]["confirmation_required"] is True
    assert not Job.objects.filter(project_id=pid, type="character-generation").exists()
    assert not SpendEntry.objects.filter(project_id=pid).exists()

    assert decide(api, run["id"], "approve").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "cast"
    assert Job.objects.filter(project_id=pid, type="character-generation").count() == 1
    assert run["spent_usd"] > 0
    assert Decimal(str(run["spent_usd"])) == Project.objects.get(pk=pid).spent_usd


def test_a_budget_short_at_an_approval_stops_and_asks_and_goes_on_once_raised(api, priced):
    pid = new_project(api)
    run = start(api, pid, budget_usd=0.2)  # the cast fits, its scenes and keyframes do not
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "cast", run
    quote = run["checkpoint"]["estimate"]["total_usd"]
    assert quote > 0.2 - run["spent_usd"]
    assert decide(api, run["id"], "approve").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision", run["error"]  # stops and asks, not failed
    checkpoint = run["checkpoint"]
    assert checkpoint["kind"] == "budget" and checkpoint["estimate"]["total_usd"] == quote
    project = Project.objects.get(pk=pid)
    left = project.budget_usd - project.spent_usd
    summary = checkpoint["summary"]
    assert f"${Decimal(str(quote)).quantize(Decimal('0.01'))}" in summary  # what it needs
    assert f"${left.quantize(Decimal('0.01'))} is left" in summary
    assert "raise budget_usd then approve" in summary
    assert [e["data"]["kind"] for e in run["events"] if e["type"] == "checkpoint"] == [
        "cast",
        "budget",
    ]
    assert project.characters.filter(status="approved").count() == 0  # nothing half-approved
    assert not Job.objects.filter(project_id=pid, type="scene-generation").exists()

    # approved while still short: the same checkpoint again, not a failure
    assert decide(api, run["id"], "approve").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "budget"
    assert not Job.objects.filter(project_id=pid, type="scene-generation").exists()

    # the budget raised, approve: it carries on from there (no second cast)
    assert api.patch(f"/api/projects/{pid}", {"budget_usd": 50}, format="json").status_code == 200
    assert decide(api, run["id"], "approve").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "storyboard"
    assert Project.objects.get(pk=pid).characters.count() == 2
    assert Job.objects.filter(project_id=pid, type="scene-generation").count() == 1


def test_a_budget_short_at_the_storyboard_the_run_approves_itself_stops_too(api, priced):
    pid = new_project(api, checkpoints=["cast", "storyboard"])
    run = start(api, pid, checkpoints=[])  # the run approves the storyboard by itself
    drain()
    run = run_of(api, run["id"])
    room = Decimal(str(run["checkpoint"]["estimate"]["total_usd"])) + Decimal("0.01")
    budget = Project.objects.get(pk=pid).spent_usd + room  # the scenes and keyframes, no clips
    body = {"budget_usd": float(budget.quantize(Decimal("0.01"), rounding=ROUND_DOWN))}
    assert api.patch(f"/api/projects/{pid}", body, format="json").status_code == 200
    assert decide(api, run["id"], "approve").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision", run["error"]
    assert run["checkpoint"]["kind"] == "budget" and "storyboard" in run["checkpoint"]["summary"]
    assert Project.objects.get(pk=pid).status == "awaiting_storyboard_approval"
    assert not Job.objects.filter(project_id=pid, type="video-generation").exists()

    assert api.patch(f"/api/projects/{pid}", {"budget_usd": 50}, format="json").status_code == 200
    assert decide(api, run["id"], "approve").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "complete", run["error"]


def test_without_the_storyboard_checkpoint_the_run_approves_it_itself(api):
    pid = new_project(api, checkpoints=["cast", "storyboard"])
    run = start(api, pid, checkpoints=[])
    assert run["checkpoints"] == ["cast"]
    drain()
    assert decide(api, run["id"], "approve").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "complete", run["error"]
    kinds = [e["data"]["kind"] for e in run["events"] if e["type"] == "checkpoint"]
    assert kinds == ["cast"]
    approvals = [
        e["data"]
        for e in run["events"]
        if e["type"] == "action" and e["data"]["name"] == "approve_storyboard"
    ]
    assert len(approvals) == 1 and "job" in approvals[0]["result"]


def test_work_paused_for_the_budget_parks_the_run_until_the_budget_is_raised(api, priced):
    pid = new_project(api)
    run = start(api, pid)
    drain()
    assert decide(api, run["id"], "approve").status_code == 200
    work_one()  # the advance approves the cast: scene generation is queued
    spent = Project.objects.get(pk=pid).spent_usd
    below = spent.quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    assert below < spent
    body = {"budget_usd": float(below)}  # below what is spent: the queued work pauses
    assert api.patch(f"/api/projects/{pid}", body, format="json").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "running"
    said = [e["data"]["text"] for e in run["events"] if e["type"] == "log"]
    assert said[-1].startswith("Waiting: job #") and "paused" in said[-1]
    advances = run["advances"]
    assert Job.objects.get(project_id=pid, type="agent-run", status="waiting")
    assert watchdog.sweep()["waiting"] == 0  # it waits for the person, not for the watchdog
    drain()
    assert run_of(api, run["id"])["advances"] == advances  # parked: no advance in a loop

    assert api.patch(f"/api/projects/{pid}", {"budget_usd": 50}, format="json").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "storyboard"


def test_a_revise_at_a_spend_checkpoint_drops_the_held_call(api, priced, settings):
    """“Don't do that”: the held call is not made later by itself (here its quote is under
    the threshold by then); the planner would call again if the notes wanted it."""
    pid = new_project(api)
    run = start(api, pid)
    drain()
    assert run_of(api, run["id"])["checkpoint"]["kind"] == "cast"
    settings.AGENT_CONFIRM_ABOVE_USD = 0.0  # every paid call waits for the person
    name = Project.objects.get(pk=pid).characters.order_by("pk").first().name
    assert decide(api, run["id"], "revise", f"redo {name}'s portrait: older").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "spend", run
    assert AgentRun.objects.get(pk=run["id"]).held_call["name"] == "regenerate_portrait"

    settings.AGENT_CONFIRM_ABOVE_USD = 100.0  # it would run by itself now
    assert decide(api, run["id"], "revise", "never mind").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "cast", run
    assert AgentRun.objects.get(pk=run["id"]).held_call is None
    assert not Job.objects.filter(project_id=pid, type="portrait-generation").exists()
    assert Take.objects.filter(character__project_id=pid).count() == 2


def _every_portrait_in_one_step(api, settings, monkeypatch, cast: list) -> float:
    """The planner redraws every portrait of `cast` in one step (as Gemini may), and the run
    may agree by itself to one and a half portraits' quote: returns the quote of one."""
    quote = api.post(
        "/api/jobs/portrait-generation",
        {"character_id": cast[0].pk, "dry_run": True},
        format="json",
    ).json()["estimate"]["total_usd"]
    settings.AGENT_CONFIRM_ABOVE_USD = quote * 1.5

    def step(self, turn, on_delta):
        if turn.rounds:
            return Step("All redrawn.", [])
        calls = [Call("regenerate_portrait", {"character_id": c.pk}) for c in cast]
        return Step("Redrawing the portraits.", calls)

    monkeypatch.setattr(LocalPlanner, "step", step)
    return quote


def test_what_the_run_agrees_to_by_itself_counts_for_the_whole_plan(
    api, priced, settings, monkeypatch
):
    """The planner redraws both portraits in one step (as Gemini may): each quote is under
    AGENT_CONFIRM_ABOVE_USD, both together are over it: the first is drawn, the second waits at
    a `spend` checkpoint that says what the run agreed to already; approved, it is drawn."""
    pid = new_project(api)
    run = start(api, pid)
    drain()
    assert run_of(api, run["id"])["checkpoint"]["kind"] == "cast"
    cast = list(Project.objects.get(pk=pid).characters.order_by("pk"))
    quote = _every_portrait_in_one_step(api, settings, monkeypatch, cast)  # one fits, two do not
    assert decide(api, run["id"], "revise", "redo both portraits").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "spend", run
    assert f"agreed to ${quote:.2f} by itself" in run["checkpoint"]["summary"]
    held = AgentRun.objects.get(pk=run["id"]).held_call
    assert held["name"] == "regenerate_portrait" and held["args"]["character_id"] == cast[1].pk
    portraits = Job.objects.filter(project_id=pid, type="portrait-generation")
    assert [j.target_id for j in portraits] == [cast[0].pk]

    assert decide(api, run["id"], "approve").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["checkpoint"]["kind"] == "cast", run
    assert sorted(j.target_id for j in portraits.all()) == [cast[0].pk, cast[1].pk]


NEW_LOGLINE = "A keeper against the storm."


def _held_with_two_behind(api, settings, monkeypatch) -> tuple[int, int, list, str]:
    """A run at its cast, every paid call waiting for the person, whose planner answers the
    notes with one step of three calls: redraw the first portrait, change the logline, redraw
    the second (as Gemini may); it stops at the first. (project id, run id, cast, logline)."""
    pid = new_project(api)
    run = start(api, pid)
    drain()
    assert run_of(api, run["id"])["checkpoint"]["kind"] == "cast"
    cast = list(Project.objects.get(pk=pid).characters.order_by("pk"))
    logline = Project.objects.get(pk=pid).logline
    settings.AGENT_CONFIRM_ABOVE_USD = 0.0

    def step(self, turn, on_delta):
        if turn.rounds:
            return Step("Done.", [])
        calls = [
            Call("regenerate_portrait", {"character_id": cast[0].pk}),
            Call("update_project", {"project_id": pid, "logline": NEW_LOGLINE}),
            Call("regenerate_portrait", {"character_id": cast[1].pk}),
        ]
        return Step("Redrawing both portraits and sharpening the logline.", calls)

    monkeypatch.setattr(LocalPlanner, "step", step)
    assert decide(api, run["id"], "revise", "redo both, and the logline").status_code == 200
    drain()
    assert run_of(api, run["id"])["checkpoint"]["kind"] == "spend"
    return pid, run["id"], cast, logline


def test_the_calls_of_a_step_behind_a_held_one_wait_with_it_and_are_made_once_approved(
    api, priced, settings, monkeypatch
):
    """A step's calls after one held at a `spend` checkpoint are not dropped: the checkpoint
    names them, and approving it makes them in order, each asked again if it spends."""
    pid, run_id, cast, logline = _held_with_two_behind(api, settings, monkeypatch)
    portraits = Job.objects.filter(project_id=pid, type="portrait-generation")
    run = run_of(api, run_id)
    assert run["status"] == "awaiting_decision", run
    summary = run["checkpoint"]["summary"]
    assert "Then 2 more call(s) of the same step: update_project, regenerate_portrait" in summary
    held = AgentRun.objects.get(pk=run_id).held_call
    assert held["args"]["character_id"] == cast[0].pk
    assert Project.objects.get(pk=pid).logline == logline  # waits with the held call
    assert not portraits.exists()

    assert decide(api, run_id, "approve").status_code == 200
    drain()
    run = run_of(api, run_id)
    # The first portrait is drawn, the logline changed; the second portrait spends: asked.
    assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "spend", run
    assert "more call(s)" not in run["checkpoint"]["summary"]  # the last of its step
    assert AgentRun.objects.get(pk=run_id).held_call["args"]["character_id"] == cast[1].pk
    assert [j.target_id for j in portraits.all()] == [cast[0].pk]
    assert Project.objects.get(pk=pid).logline == NEW_LOGLINE

    assert decide(api, run_id, "approve").status_code == 200
    drain()
    run = run_of(api, run_id)
    assert run["checkpoint"]["kind"] == "cast", run
    assert sorted(j.target_id for j in portraits.all()) == [cast[0].pk, cast[1].pk]
    assert AgentRun.objects.get(pk=run_id).held_call is None


def test_a_held_call_asked_again_afresh_keeps_the_calls_behind_it(
    api, priced, settings, monkeypatch
):
    """Approved, the held call's quote no longer matches (here: tampered with): it is asked
    again, freshly quoted, and the calls of its step still wait behind it."""
    pid, run_id, cast, _ = _held_with_two_behind(api, settings, monkeypatch)
    agent_run = AgentRun.objects.get(pk=run_id)
    held = agent_run.held_call
    agent_run.held_call = {**held, "estimate": {**held["estimate"], "total_usd": 0.0001}}
    agent_run.save(update_fields=["held_call"])

    assert decide(api, run_id, "approve").status_code == 200
    drain()
    run = run_of(api, run_id)
    assert run["checkpoint"]["kind"] == "spend", run
    assert "Then 2 more call(s) of the same step" in run["checkpoint"]["summary"]
    assert AgentRun.objects.get(pk=run_id).held_call["estimate"] == held["estimate"]
    assert not Job.objects.filter(project_id=pid, type="portrait-generation").exists()

    assert decide(api, run_id, "approve").status_code == 200
    drain()
    assert Project.objects.get(pk=pid).logline == NEW_LOGLINE
    portraits = Job.objects.filter(project_id=pid, type="portrait-generation")
    assert [j.target_id for j in portraits] == [cast[0].pk]


def test_a_revise_drops_the_calls_held_behind_a_spend_checkpoint_too(
    api, priced, settings, monkeypatch
):
    pid, run_id, _, logline = _held_with_two_behind(api, settings, monkeypatch)
    monkeypatch.setattr(LocalPlanner, "step", lambda self, turn, on_delta: Step("Fine.", []))
    assert decide(api, run_id, "revise", "never mind").status_code == 200
    drain()
    run = run_of(api, run_id)
    assert run["checkpoint"]["kind"] == "cast", run
    assert Project.objects.get(pk=pid).logline == logline
    assert not Job.objects.filter(project_id=pid, type="portrait-generation").exists()
    assert AgentRun.objects.get(pk=run_id).held_call is None


def test_a_held_call_refused_when_asked_again_takes_the_calls_behind_it_along(
    api, priced, settings, monkeypatch
):
    """The character of the held portrait is gone by the approval: the call is refused, and
    the calls of its step behind it are not made without it (the run's log says so)."""
    pid, run_id, cast, logline = _held_with_two_behind(api, settings, monkeypatch)
    Character.objects.filter(pk=cast[0].pk).delete()

    assert decide(api, run_id, "approve").status_code == 200
    drain()
    run = run_of(api, run_id)
    said = [e["data"]["text"] for e in run["events"] if e["type"] == "log"]
    assert any(t.startswith("Not made, with it") and "update_project" in t for t in said), said
    assert AgentRun.objects.get(pk=run_id).held_call is None
    assert Project.objects.get(pk=pid).logline == logline
    assert not Job.objects.filter(project_id=pid, type="portrait-generation").exists()


def test_the_calls_behind_a_held_one_keep_what_their_plan_may_agree_to_by_itself(
    api, priced, settings, monkeypatch
):
    """Three portraits in one step, AGENT_CONFIRM_ABOVE_USD at one and a half quotes: the first
    is drawn by itself, the second waits; approved, the third is not drawn by itself on a fresh
    allowance (the plan agreed to one already): it waits too."""
    pid = new_project(api)
    run = start(api, pid, goal="A lighthouse keeper befriends a storm, with three characters.")
    drain()
    assert run_of(api, run["id"])["checkpoint"]["kind"] == "cast"
    cast = list(Project.objects.get(pk=pid).characters.order_by("pk"))
    assert len(cast) == 3
    quote = _every_portrait_in_one_step(api, settings, monkeypatch, cast)
    portraits = Job.objects.filter(project_id=pid, type="portrait-generation")
    assert decide(api, run["id"], "revise", "redo all three portraits").status_code == 200
    drain()
    held = AgentRun.objects.get(pk=run["id"]).held_call
    assert held["args"]["character_id"] == cast[1].pk
    assert Decimal(held["allowance"]["agreed"]) == Decimal(str(quote))
    assert [j.target_id for j in portraits] == [cast[0].pk]

    assert decide(api, run["id"], "approve").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "spend", run
    assert f"agreed to ${quote:.2f} by itself" in run["checkpoint"]["summary"]
    assert AgentRun.objects.get(pk=run["id"]).held_call["args"]["character_id"] == cast[2].pk
    assert sorted(j.target_id for j in portraits.all()) == [cast[0].pk, cast[1].pk]


def test_the_runs_spend_is_its_own_work_not_what_the_person_did_meanwhile(api, priced):
    pid = new_project(api)
    run = start(api, pid)
    drain()
    assert run_of(api, run["id"])["checkpoint"]["kind"] == "cast"
    character = Project.objects.get(pk=pid).characters.order_by("pk").first()
    response = api.post(
        "/api/jobs/portrait-generation", {"character_id": character.pk}, format="json"
    )
    assert response.status_code in (201, 202), response.content
    drain()
    by_hand = SpendEntry.objects.filter(job_id=response.json()["id"])
    assert by_hand.exists()
    project = Project.objects.get(pk=pid)
    run = run_of(api, run["id"])
    mine = sum(e.usd for e in by_hand)
    assert Decimal(str(run["spent_usd"])) == (project.spent_usd - mine).quantize(
        Decimal("0.000001")
    )
    assert 0 < run["spent_usd"] < float(project.spent_usd)
    listed = api.get(f"/api/projects/{pid}/agent-runs").json()  # counted for the list at once
    assert [r["spent_usd"] for r in listed] == [run["spent_usd"]]


def test_a_budget_too_small_for_the_cast_stops_and_asks_before_anything_starts(api, priced):
    pid = new_project(api)
    run = start(api, pid, budget_usd=0.01)  # the cast's portraits alone need more
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision", run["error"]  # asked, not failed
    checkpoint = run["checkpoint"]
    assert (
        checkpoint["kind"] == "budget" and "raise budget_usd then approve" in checkpoint["summary"]
    )
    assert checkpoint["summary"].startswith("Starting the film draws the cast")
    body = {"project_id": pid, "count": 2, "dry_run": True}  # the goal's "two characters"
    quote = api.post("/api/jobs/character-generation", body, format="json").json()["estimate"]
    assert checkpoint["estimate"]["total_usd"] == pytest.approx(quote["total_usd"], rel=0.01)
    assert not Job.objects.filter(project_id=pid, type="character-generation").exists()
    assert not SpendEntry.objects.filter(project_id=pid).exists()

    # revised ("keep it cheap"): nothing the notes can do about the cast's price; asked again
    assert decide(api, run["id"], "revise", "keep it cheap").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision", run["error"]
    assert run["checkpoint"]["kind"] == "budget"

    assert api.patch(f"/api/projects/{pid}", {"budget_usd": 50}, format="json").status_code == 200
    assert decide(api, run["id"], "approve").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "cast", run
    # the count the goal names ("with two characters"), once
    assert Job.objects.filter(project_id=pid, type="character-generation").count() == 1
    assert Project.objects.get(pk=pid).characters.count() == 2


def test_the_planner_does_not_settle_the_cast_by_rejecting_its_last_undecided_character(
    api, priced, monkeypatch
):
    """One character approved by hand, then “drop the other”: the reject would settle the cast
    and start the scenes (paid) with no checkpoint; it is refused, and the cast asked again."""
    pid = new_project(api)
    run = start(api, pid)
    drain()
    assert run_of(api, run["id"])["checkpoint"]["kind"] == "cast"
    first, second = Project.objects.get(pk=pid).characters.order_by("pk")
    assert api.post(f"/api/characters/{first.pk}/approve").status_code == 200

    def drop(self, turn, on_delta):
        if turn.rounds:
            return Step("Done.", [])
        return Step("Dropping them.", [Call("reject_character", {"character_id": second.pk})])

    monkeypatch.setattr(LocalPlanner, "step", drop)
    assert decide(api, run["id"], "revise", f"drop {second.name}").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "cast", run
    action = [e["data"] for e in run["events"] if e["type"] == "action"][-1]
    assert action["name"] == "reject_character" and "cast checkpoint" in action["result"]["error"]
    second.refresh_from_db()
    assert second.status == "pending"
    assert not Job.objects.filter(project_id=pid, type="scene-generation").exists()
