"""An agent run planned by Gemini through the real google-genai SDK against FakeGemini: the
planner gets the tools as native function declarations (without the approvals, which are the
run's at checkpoints), its calls go through the tool layer with their arguments checked, and a
refusal (a 409 of the services, an argument out of range) goes back to it as a function
response. The pipeline's own providers stay offline."""

import pytest

from director.models import AgentRun
from generation import estimates
from generation.models import GenerationJob, SpendEntry
from projects.models import Project
from tests.director.agent_runs import decide, new_project, offline, run_of, start
from tests.director.helpers import KEY, call, stream_bodies
from tests.generation.test_costs import priced
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob
__all__ = ["offline", "priced"]  # fixtures


def responses_in(body: dict) -> dict[str, dict]:
    """The function responses of the last user content of a request, by tool name."""
    parts = body["contents"][-1]["parts"]
    return {p["functionResponse"]["name"]: p["functionResponse"]["response"] for p in parts}


def actions(run: dict) -> list[dict]:
    return [e["data"] for e in run["events"] if e["type"] == "action"]


def set_up_by_gemini(api, fake) -> tuple[dict, Project]:
    """The set-up turn: a status read, an edit, a start refused for its count, a valid start."""
    assert KEY  # the fake's key is the configured one
    pid = new_project(api, num_scenes=1, frames_per_scene=1)
    fake.script_turn(["Let me look.", call("get_project_status")])
    fake.script_turn(
        [
            call("update_project", logline="A keeper befriends a storm.", num_scenes=2),
            call("start_generation", kind="characters", count=50),  # out of range: refused
        ]
    )
    fake.script_turn([call("start_generation", kind="characters", count=2)])
    fake.script_turn(["The cast is being drawn."])
    run = start(api, pid, goal="A keeper befriends a storm.")
    assert run["planner"] == "gemini"
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "cast", run

    bodies = stream_bodies(fake)
    assert len(bodies) == 4
    declared = {d["name"]: d for d in bodies[0]["tools"][0]["functionDeclarations"]}
    assert {"get_project_status", "update_project", "start_generation"} <= declared.keys()
    assert "approve_character" not in declared and "approve_storyboard" not in declared
    kinds = declared["start_generation"]
    schema = kinds.get("parametersJsonSchema") or kinds["parameters_json_schema"]
    assert schema["properties"]["kind"]["enum"] == [
        "characters",
        "scenes",
        "frames",
        "videos",
        "stitch",
    ]
    assert bodies[0]["contents"][0]["parts"][0]["text"].endswith("A keeper befriends a storm.")
    assert f"project #{pid}" in bodies[0]["systemInstruction"]["parts"][0]["text"]
    # the calls' results went back as function responses; the refusal as {error}
    second = responses_in(bodies[2])
    assert second["update_project"]["output"]["project"]["logline"] == "A keeper befriends a storm."
    assert "count" in second["start_generation"]["error"]
    assert "job" in responses_in(bodies[3])["start_generation"]["output"]
    project = Project.objects.get(pk=pid)
    assert project.num_scenes == 2 and project.characters.count() == 2
    assert Job.objects.filter(project=project, type="character-generation").count() == 1
    # what the planner's calls cost is in the ledger, as the run's
    assert SpendEntry.objects.filter(project=project, stage="agent-run").count() == 4
    return run, project


def test_gemini_plans_the_run_with_native_tool_calls(api, fake):
    run, project = set_up_by_gemini(api, fake)
    # revise: a 409 of the services and a portrait redrawn
    cast = list(project.characters.order_by("pk"))
    characters_job = Job.objects.get(project=project, type="character-generation")
    fake.script_turn(
        [
            call("retry_job", job_id=characters_job.pk),  # it succeeded: 409, not retried
            call("regenerate_portrait", character_id=cast[0].pk, instructions="older"),
            call("approve_character", character_id=cast[1].pk),  # the run's, not the planner's
        ]
    )
    fake.script_turn([f"{cast[0].name} is redrawn."])
    before = cast[1].take_id
    assert decide(api, run["id"], "revise", f"Make {cast[0].name} older.").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "cast"
    bodies = stream_bodies(fake)
    assert len(bodies) == 6
    assert bodies[4]["contents"][0]["parts"][0]["text"].endswith(f"Make {cast[0].name} older.")
    answered = responses_in(bodies[5])
    assert answered["retry_job"] == {
        "error": "Only a failed or cancelled job can be retried; this one is succeeded."
    }
    assert "job" in answered["regenerate_portrait"]["output"]
    assert "checkpoints" in answered["approve_character"]["error"]
    cast[0].refresh_from_db()
    cast[1].refresh_from_db()
    assert cast[1].take_id == before and cast[1].status == "pending"
    assert cast[0].take.instructions == "older"
    assert Job.objects.filter(project=project, type="character-generation").count() == 1

    # the approvals are the run's: no model call for them
    assert decide(api, run["id"], "approve").status_code == 200
    drain()
    assert decide(api, run["id"], "approve").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "complete", run["error"]
    assert len(stream_bodies(fake)) == 6
    refused = [a for a in actions(run) if "error" in (a["result"] or {})]
    assert [a["name"] for a in refused] == ["start_generation", "retry_job", "approve_character"]
    assert AgentRun.objects.get(pk=run["id"]).planner == "gemini"


def test_a_gemini_planner_reserves_its_rounds_and_asks_nothing_past_the_budget(api, fake):
    """An advance that plans reserves its planner's rounds (the director's model on the rate
    card) like any job: with nothing left of the budget a revise's planner call is not made,
    the advance waits paused, and a raised budget has the planner act on the notes."""
    run, project = set_up_by_gemini(api, fake)
    spent = SpendEntry.objects.filter(project=project, stage="agent-run")
    assert project.spent_usd > 0 and spent.count() == 4
    response = api.patch(f"/api/projects/{project.pk}", {"budget_usd": "0"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "awaiting_approval"
    fake.script_turn(["Nothing to change."])
    assert decide(api, run["id"], "revise", "Make it darker.").status_code == 200
    drain()
    assert len(stream_bodies(fake)) == 4 and spent.count() == 4  # the planner was not asked
    advance = Job.objects.filter(project=project, type="agent-run").latest("pk")
    assert advance.status == "paused" and "raise budget_usd" in advance.error
    assert run_of(api, run["id"])["status"] == "running"

    response = api.patch(f"/api/projects/{project.pk}", {"budget_usd": "5"}, format="json")
    assert response.status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "cast", run
    bodies = stream_bodies(fake)
    assert len(bodies) == 5 and bodies[4]["contents"][0]["parts"][0]["text"].endswith("darker.")
    advance.refresh_from_db()
    assert advance.status == "succeeded" and advance.reserved_usd == 0


def test_an_advance_that_plans_reserves_its_planners_rounds_offline_nothing(api, priced, settings):
    pid = new_project(api)
    start(api, pid)
    advance = Job.objects.get(project_id=pid, type="agent-run")  # the set-up: it plans
    assert estimates.job_items(advance) == []  # the offline planner is rules, even priced
    settings.DIRECTOR_PROVIDER = "gemini"
    items = estimates.job_items(advance)
    assert {(i.provider, i.model) for i in items} == {("gemini", settings.GEMINI_DIRECTOR_MODEL)}
    assert estimates.total(items) > 0
