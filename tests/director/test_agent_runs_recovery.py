"""Agent runs when things go wrong, in this process: a wake lost while the run waited (the
watchdog queues it), a planner that crashes (the run fails with the message, as an `error`
event), a run going round in circles (AGENT_MAX_ADVANCES), the planner's model failing on the
person's notes (they are asked again), a failed run's work cancelled."""

from datetime import timedelta

import django_rq
import pytest
from django.utils import timezone

from director.agents.autopilot import REVISE, LocalPlanner
from director.models import AgentRun
from filmstudio.exceptions import LimitExceeded
from generation import watchdog
from generation.models import GenerationJob
from generation.providers.base import PermanentProviderError, TransientProviderError
from projects.models import Character, Take
from tests.director.agent_runs import decide, new_project, offline, run_of, start, work_one
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob
__all__ = ["offline"]  # a fixture


def test_a_run_waiting_on_a_project_that_stopped_is_woken_by_the_watchdog(api, settings):
    settings.JOB_HEARTBEAT_TIMEOUT = 1
    settings.VIDEO_POLL_INTERVAL = 0.05
    pid = new_project(api)
    run = start(api, pid)
    drain()
    # As if the cast had been drawn while the advance waited, and the wake were lost: the
    # advance waits, nothing else of the project moves, and Redis knows nothing.
    advance = Job.objects.filter(project_id=pid, type="agent-run").latest("pk")
    Job.objects.filter(pk=advance.pk).update(
        status="waiting", finished_at=None, heartbeat_at=timezone.now() - timedelta(seconds=5)
    )
    AgentRun.objects.filter(pk=run["id"]).update(status="running", checkpoint_kind="")
    django_rq.get_connection("default").flushdb()
    assert watchdog.sweep()["waiting"] == 1
    drain()
    advance.refresh_from_db()
    assert advance.status == "succeeded"
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "cast"
    assert [e["data"]["kind"] for e in run["events"] if e["type"] == "checkpoint"] == [
        "cast",
        "cast",
    ]


def test_a_planner_that_crashes_fails_the_run_with_its_message(api, monkeypatch):
    def crash(self, turn, on_delta):
        raise RuntimeError("the planner fell over")

    monkeypatch.setattr(LocalPlanner, "step", crash)
    pid = new_project(api)
    run = start(api, pid)
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "failed" and "the planner fell over" in run["error"]
    assert run["events"][-1]["type"] == "error"
    assert "the planner fell over" in run["events"][-1]["data"]["message"]
    advance = Job.objects.get(project_id=pid, type="agent-run")
    assert advance.status == "failed"
    assert not Job.objects.filter(project_id=pid, status__in=Job.ACTIVE).exists()


def test_a_run_that_advances_too_often_stops(api, settings):
    settings.AGENT_MAX_ADVANCES = 1
    pid = new_project(api)
    run = start(api, pid)
    drain()  # the first advance starts the cast; the second is one too many
    run = run_of(api, run["id"])
    assert run["status"] == "failed" and "AGENT_MAX_ADVANCES" in run["error"]
    assert run["advances"] == 2


@pytest.mark.parametrize(
    "error",
    [
        TransientProviderError("gemini: 429 RESOURCE_EXHAUSTED"),
        PermanentProviderError("gemini: 400 the request was refused"),
        LimitExceeded("The daily spend cap of $5.00 is reached."),
    ],
    ids=["transient", "permanent", "daily-cap"],
)
def test_a_planner_error_on_the_notes_asks_the_person_again(api, monkeypatch, error):
    """The notes are not dropped silently (a retry would find the decision consumed), nor does
    the run fail: the person hears why and decides again."""
    pid = new_project(api)
    run = start(api, pid)
    drain()
    step = LocalPlanner.step

    def failing(self, turn, on_delta):
        if turn.message.startswith(REVISE):
            raise error
        return step(self, turn, on_delta)

    monkeypatch.setattr(LocalPlanner, "step", failing)
    name = Character.objects.filter(project_id=pid).order_by("pk").first().name
    notes = f"redo {name}'s portrait: older"
    assert decide(api, run["id"], "revise", notes).status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "cast", run
    said = [e["data"]["text"] for e in run["events"] if e["type"] == "log"]
    assert any("could not act on your notes" in t and error.message[:20] in t for t in said)
    assert Take.objects.filter(character__project_id=pid).count() == 2  # nothing redrawn

    monkeypatch.setattr(LocalPlanner, "step", step)  # the model is back: the same notes
    assert decide(api, run["id"], "revise", notes).status_code == 200
    drain()
    assert run_of(api, run["id"])["status"] == "awaiting_decision"
    assert Take.objects.filter(character__project_id=pid).count() == 3


def test_a_failed_run_cancels_the_work_it_started(api, monkeypatch):
    """The planner crashes after its call started a portrait: the run fails, and the portrait
    is not drawn (nothing goes on spending for it)."""
    pid = new_project(api)
    run = start(api, pid)
    drain()
    step = LocalPlanner.step

    def crash_after_a_call(self, turn, on_delta):
        if any(o.name == "regenerate_portrait" for r in turn.rounds for o in r.outcomes):
            raise RuntimeError("the planner fell over")
        return step(self, turn, on_delta)

    monkeypatch.setattr(LocalPlanner, "step", crash_after_a_call)
    name = Character.objects.filter(project_id=pid).order_by("pk").first().name
    assert decide(api, run["id"], "revise", f"redo {name}'s portrait: older").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "failed" and "the planner fell over" in run["error"], run
    portrait = Job.objects.get(project_id=pid, type="portrait-generation")
    assert portrait.status == "cancelled" and "agent run failed" in portrait.error
    assert Take.objects.filter(character__project_id=pid).count() == 2  # not drawn
    assert not Job.objects.filter(project_id=pid, status__in=Job.ACTIVE).exists()


@pytest.mark.parametrize("then", ["goes on", "crashes"])
def test_an_advance_queued_again_while_it_worked_leaves_the_run_to_the_new_delivery(
    api, monkeypatch, settings, then
):
    """The watchdog takes a stalled advance for lost (no heartbeat) and queues its job again,
    and the new delivery sets the film up, while the first still plans: the first acts no
    more (no tool call; its job row, and its failure when it crashes after, are left to the
    second), and the run stops at the cast with one cast drawn."""
    settings.JOB_HEARTBEAT_TIMEOUT = 1
    real = LocalPlanner.step
    stalled = []

    def stall(self, turn, on_delta):
        if not stalled:  # the first advance's first round: its heartbeat goes stale
            stalled.append(1)
            Job.objects.filter(type="agent-run", status="running").update(
                heartbeat_at=timezone.now() - timedelta(seconds=5)
            )
            assert watchdog.sweep()["running"] == 1
            work_one()  # the new delivery (it sets the film up and waits) while this one works
            if then == "crashes":
                raise TransientProviderError("the planner's model timed out")
        return real(self, turn, on_delta)

    monkeypatch.setattr(LocalPlanner, "step", stall)
    pid = new_project(api)
    run = start(api, pid)
    drain()
    advances = Job.objects.filter(project_id=pid, type="agent-run").order_by("pk")
    first = advances.first()
    assert first.attempts == 2 and first.status == "succeeded", (first.attempts, first.error)
    assert Job.objects.filter(project_id=pid, type="character-generation").count() == 1
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "cast"
    started = [
        e
        for e in run["events"]
        if e["type"] == "action" and e["data"]["name"] == "start_generation"
    ]
    assert len(started) == 1
