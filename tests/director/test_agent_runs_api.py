"""Agent runs through the API: bad input refused with nothing changed, other users' runs and
projects private, decisions only at a checkpoint, the budget applied, cancelling, the events
stream (auth, 404, Last-Event-ID replay), and a goal naming another project."""

from decimal import Decimal

import pytest
from django.conf import settings as django_settings

from director.models import AgentRun
from director.runs import call_tool
from generation.models import GenerationJob
from projects.models import Character, Project
from tests.director.agent_runs import calls, decide, new_project, offline, run_of, start, work_one
from tests.director.helpers import aread_events, async_client_for
from tests.factories import CharacterFactory, ProjectFactory
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob
__all__ = ["calls", "offline"]  # fixtures


def post_run(api, project_id: int, body):
    return api.post(f"/api/projects/{project_id}/agent-runs", body, format="json")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"goal": ""},
        {"goal": "   "},
        {"goal": "x" * 2001},
        {"goal": 42},
        {"goal": "A film", "budget_usd": -1},
        {"goal": "A film", "budget_usd": django_settings.MAX_BUDGET_USD + 1},
        {"goal": "A film", "budget_usd": "lots"},
        {"goal": "A film", "budget_usd": True},
        {"goal": "A film", "checkpoints": ["premiere"]},
        {"goal": "A film", "checkpoints": "storyboard"},
        {"goal": "A film", "planner": "gemini"},
    ],
)
def test_bad_input_is_a_400_and_changes_nothing(api, body):
    pid = new_project(api)
    before = Project.objects.values().get(pk=pid)
    response = post_run(api, pid, body)
    assert response.status_code == 400, response.content
    assert AgentRun.objects.count() == 0 and not Job.objects.exists()
    assert Project.objects.values().get(pk=pid) == before


def test_a_goal_of_2000_characters_is_accepted(api):
    pid = new_project(api)
    assert post_run(api, pid, {"goal": "x" * 2000}).status_code == 201


def test_another_users_project_and_runs_are_404(api, other_api):
    pid = new_project(api)
    assert post_run(other_api, pid, {"goal": "Mine now"}).status_code == 404
    assert other_api.get(f"/api/projects/{pid}/agent-runs").status_code == 404
    run = start(api, pid)
    for response in (
        other_api.get(f"/api/agent-runs/{run['id']}"),
        other_api.post(f"/api/agent-runs/{run['id']}/decide", {"decision": "approve"}),
        other_api.delete(f"/api/agent-runs/{run['id']}"),
        other_api.get(f"/api/agent-runs/{run['id']}/events"),
    ):
        assert response.status_code == 404, response.content
    assert AgentRun.objects.get(pk=run["id"]).status == "running"
    assert api.get(f"/api/projects/{pid}/agent-runs").json()[0]["id"] == run["id"]


def test_a_decision_only_at_a_checkpoint(api):
    pid = new_project(api)
    run = start(api, pid)
    response = decide(api, run["id"], "approve")  # still running: nothing to decide
    assert response.status_code == 409, response.content
    drain()
    assert run_of(api, run["id"])["checkpoint"]["kind"] == "cast"
    assert decide(api, run["id"], "maybe").status_code == 400
    assert decide(api, run["id"], "revise").status_code == 400  # revise needs notes
    assert decide(api, run["id"], "revise", "x" * 2001).status_code == 400
    assert run_of(api, run["id"])["status"] == "awaiting_decision"
    assert decide(api, run["id"], "approve").status_code == 200
    assert decide(api, run["id"], "approve").status_code == 409  # answered already


def test_one_active_run_per_project(api):
    pid = new_project(api)
    start(api, pid)
    response = post_run(api, pid, {"goal": "Another one"})
    assert response.status_code == 409 and "Agent run #" in response.json()["detail"]
    assert AgentRun.objects.count() == 1


def test_the_budget_applies_to_what_the_run_may_spend(api):
    pid = new_project(api)
    Project.objects.filter(pk=pid).update(spent_usd=Decimal("2.50"))
    run = start(api, pid, budget_usd=4)
    assert run["budget_usd"] == 4
    assert Project.objects.get(pk=pid).budget_usd == Decimal("6.50")  # spent + the run's
    api.delete(f"/api/agent-runs/{run['id']}")
    Project.objects.filter(pk=pid).update(budget_usd=Decimal("3.00"))
    start(api, pid, budget_usd=10)
    assert Project.objects.get(pk=pid).budget_usd == Decimal("3.00")  # a run never raises it


def test_delete_cancels_the_run_and_its_jobs(api, calls):
    pid = new_project(api)
    run = start(api, pid)
    drain()
    assert decide(api, run["id"], "approve").status_code == 200
    response = api.delete(f"/api/agent-runs/{run['id']}")  # before any worker took the approval
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    asked = dict(calls)
    drain()
    assert dict(calls) == asked  # nothing further asked of the providers
    assert not Job.objects.filter(project_id=pid, status__in=Job.ACTIVE).exists()
    run = run_of(api, run["id"])
    assert run["status"] == "cancelled" and run["finished_at"]
    assert [e["type"] for e in run["events"]][-2:] == ["status", "log"]
    assert api.delete(f"/api/agent-runs/{run['id']}").status_code == 409
    assert decide(api, run["id"], "approve").status_code == 409


def test_delete_while_the_pipeline_runs_cancels_its_jobs(api, calls):
    pid = new_project(api)
    run = start(api, pid)
    drain()
    decide(api, run["id"], "approve")
    work_one()  # the advance: the cast approved, scene generation queued; then cancel
    scenes = Job.objects.get(project_id=pid, type=Job.Type.SCENES)
    assert scenes.status == "queued"
    assert api.delete(f"/api/agent-runs/{run['id']}").status_code == 200
    asked = dict(calls)
    drain()
    assert dict(calls) == asked
    assert not Job.objects.filter(project_id=pid, status__in=Job.ACTIVE).exists()
    scenes.refresh_from_db()
    assert scenes.status == "cancelled" and scenes.error == "The agent run was cancelled."
    assert Project.objects.get(pk=pid).status == "cancelled"
    assert not Project.objects.get(pk=pid).scenes.exists()


def test_delete_leaves_the_jobs_the_person_started_meanwhile(api, calls):
    """Only what the run set going is cancelled: a portrait redrawn by hand during the run is
    paid work of the person's and is kept."""
    pid = new_project(api)
    run = start(api, pid)
    drain()
    decide(api, run["id"], "approve")
    work_one()  # the advance: the cast approved, scene generation queued (the run's)
    character = Project.objects.get(pk=pid).characters.order_by("pk").first()
    response = api.post(
        "/api/jobs/portrait-generation", {"character_id": character.pk}, format="json"
    )
    assert response.status_code == 202, response.content
    by_hand = Job.objects.get(pk=response.json()["id"])
    scenes = Job.objects.get(project_id=pid, type=Job.Type.SCENES)
    assert api.delete(f"/api/agent-runs/{run['id']}").status_code == 200
    scenes.refresh_from_db()
    by_hand.refresh_from_db()
    assert scenes.status == "cancelled" and by_hand.status == "queued"
    asked = dict(calls)
    drain()
    by_hand.refresh_from_db()
    assert by_hand.status == "succeeded"
    assert dict(calls) == {**asked, "image": asked["image"] + 1}  # the portrait, no scenes


def test_delete_leaves_the_project_at_the_stage_the_persons_job_still_runs(api, calls):
    """The person's own character generation, which the run waits for, goes on and the project
    stays at its stage: not cancelled with its cast on the way."""
    pid = new_project(api)
    body = {"project_id": pid, "count": 2}
    assert api.post("/api/jobs/character-generation", body, format="json").status_code == 202
    run = start(api, pid)
    assert Project.objects.get(pk=pid).status == "generating_characters"
    assert api.delete(f"/api/agent-runs/{run['id']}").status_code == 200
    assert Project.objects.get(pk=pid).status == "generating_characters"
    drain()
    project = Project.objects.get(pk=pid)
    assert project.status == "awaiting_approval" and project.characters.count() == 2


def test_delete_cancels_what_the_runs_jobs_started_in_turn(api, calls):
    """The keyframe jobs that the run's scene generation started when it succeeded are the
    run's too (and nothing of the run is left to ask the providers for)."""
    pid = new_project(api)
    run = start(api, pid)
    drain()
    decide(api, run["id"], "approve")
    work_one()  # the advance: scene generation queued
    work_one()  # the scenes: written, the keyframes of each scene queued
    frames = Job.objects.filter(project_id=pid, type=Job.Type.FRAMES)
    assert frames.count() == 2 and all(j.status == "queued" for j in frames)
    assert api.delete(f"/api/agent-runs/{run['id']}").status_code == 200
    assert {j.status for j in frames.all()} == {"cancelled"}
    asked = dict(calls)
    drain()
    assert dict(calls) == asked
    assert not Job.objects.filter(project_id=pid, status__in=Job.ACTIVE).exists()


def test_a_goal_naming_another_users_project_is_refused_by_the_selectors(api, other_user):
    theirs = ProjectFactory(owner=other_user, title="Theirs", logline="Keep out")
    before = Project.objects.values().get(pk=theirs.pk)
    pid = new_project(api)
    mine_too = new_project(api, title="My other film")
    goal = f"Work on project #{theirs.pk} and project {mine_too}: a storm film, two characters."
    run = start(api, pid, goal=goal)
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision"
    looked = [
        e["data"]
        for e in run["events"]
        if e["type"] == "action" and e["data"]["name"] == "get_project_status"
    ]
    by_id = {call["args"].get("project_id"): call["result"] for call in looked}
    assert by_id[theirs.pk] == {"error": "Not found."}  # the owner-scoped selector
    assert "acts on project" in by_id[mine_too]["error"]  # the user's own other project
    assert Project.objects.values().get(pk=theirs.pk) == before
    assert not Job.objects.filter(project_id__in=[theirs.pk, mine_too]).exists()
    assert Project.objects.get(pk=pid).characters.count() == 2


@pytest.mark.parametrize("as_float", [False, True], ids=["int", "float"])
def test_ids_of_the_users_other_project_are_refused_also_as_floats(api, user, as_float):
    """7.0 is id 7 to the tools (JSON from a model): the run's check sees it so too."""
    pid = new_project(api)
    other = ProjectFactory(owner=user, title="My other film", budget_usd=Decimal("0.01"))
    character = CharacterFactory(project=other, status=Character.Status.APPROVED)
    run = AgentRun.objects.get(pk=start(api, pid)["id"])

    def asked(value: int) -> float | int:
        return float(value) if as_float else value

    for name, args in [
        ("update_project", {"project_id": asked(other.pk), "title": "Taken"}),
        ("regenerate_portrait", {"character_id": asked(character.pk)}),
    ]:
        outcome, checkpoint = call_tool(run, name, args, planner=True)
        assert checkpoint is None, name
        assert "acts on project" in outcome.result["error"], (name, outcome.result)
    assert Project.objects.get(pk=other.pk).title == "My other film"
    assert not Job.objects.filter(project_id=other.pk).exists()


def test_the_events_stream_is_private_and_replayable(api, user, other_user, run):
    pid = new_project(api)
    agent_run = start(api, pid)
    drain()
    url = f"/api/agent-runs/{agent_run['id']}/events"
    assert run(async_client_for(other_user).get(url)).status_code == 404
    from django.test import AsyncClient  # noqa: PLC0415 (an anonymous client)

    assert run(AsyncClient().get(url)).status_code == 401
    stored = run_of(api, agent_run["id"])["events"]
    client = async_client_for(user)

    async def replay(last_event_id: str, count: int):
        response = await client.get(url, headers={"Last-Event-ID": last_event_id})
        assert response.status_code == 200
        return await aread_events(response.streaming_content, until=(), count=count)

    channel = f"agentrun-{agent_run['id']}"
    everything = run(replay(f"{channel}:0", len(stored)))
    assert [(e.type, e.data["seq"]) for e in everything] == [(e["type"], e["id"]) for e in stored]
    assert everything[-1].type == "status" and everything[-1].data["status"] == "awaiting_decision"
    rest = run(replay(everything[2].id, len(stored) - 3))
    assert [e.id for e in rest] == [e.id for e in everything[3:]]


def test_cancelling_the_runs_waiting_job_cancels_what_the_run_started(api):
    pid = new_project(api)
    run = start(api, pid)
    work_one()  # the advance: it starts the cast and waits for it
    advance = Job.objects.get(project_id=pid, type="agent-run")
    cast = Job.objects.get(project_id=pid, type="character-generation")
    assert advance.status == "waiting" and cast.status == "queued"
    assert api.delete(f"/api/jobs/{advance.pk}").status_code == 200
    assert run_of(api, run["id"])["status"] == "cancelled"
    cast.refresh_from_db()
    assert cast.status == "cancelled" and f"job #{advance.pk}" in cast.error
    drain()
    assert not Project.objects.get(pk=pid).characters.exists()


def test_cancelling_the_runs_own_job_cancels_the_run(api):
    pid = new_project(api)
    run = start(api, pid)
    advance = Job.objects.get(project_id=pid, type="agent-run")
    assert api.delete(f"/api/jobs/{advance.pk}").status_code == 200
    run = run_of(api, run["id"])
    assert run["status"] == "cancelled" and f"job #{advance.pk}" in run["error"]
    drain()
    assert not Job.objects.filter(project_id=pid, type="character-generation").exists()
    assert start(api, pid, goal="Once more.")["status"] == "running"  # not stuck at 409
