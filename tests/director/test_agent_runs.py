"""Agent runs, offline and in this process (`drain` runs the RQ jobs here): a one-line goal to a
finished film through the API, stopping at the cast and the storyboard; a `revise` that redraws
one named character's portrait and nothing else (the offline provider's calls counted)."""

import pytest

from director.models import AgentRun
from generation.models import GenerationJob
from projects.models import Character, Frame, Project, Take
from tests.director.agent_runs import (
    calls,
    decide,
    drawn,
    new_project,
    offline,
    portraits,
    run_of,
    stages,
    start,
)
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob
__all__ = ["calls", "offline"]  # fixtures


def awaiting(api, run_id: int, kind: str) -> dict:
    drain()
    run = run_of(api, run_id)
    assert run["status"] == "awaiting_decision", run
    assert run["checkpoint"]["kind"] == kind
    return run


def to_the_cast(api, calls) -> tuple[int, dict, list[dict]]:
    pid = new_project(api)
    run = start(api, pid)
    assert run["status"] == "running" and run["planner"] == "local"
    assert run["checkpoints"] == ["cast", "storyboard"]
    run = awaiting(api, run["id"], "cast")
    cast = api.get(f"/api/projects/{pid}/characters").json()
    assert len(cast) == 2 and all(c["status"] == "pending" and c["image_url"] for c in cast)
    assert all(c["name"] in run["checkpoint"]["summary"] for c in cast)
    assert "total_usd" in run["checkpoint"]["estimate"]
    project = Project.objects.get(pk=pid)
    assert project.logline.startswith("A lighthouse keeper")
    assert "storyboard" in project.checkpoints
    assert stages(calls) == {"text": 1, "image": 2}  # the cast, two portraits
    return pid, run, cast


def test_a_run_makes_the_film_from_a_one_line_goal(api, calls):
    pid, run, cast = to_the_cast(api, calls)

    # revise: one named character's portrait, and only it
    first, second = cast[0]["name"], cast[1]["name"]
    before = portraits(pid)
    response = decide(api, run["id"], "revise", f"redo {first}'s portrait: older, in a raincoat")
    assert response.status_code == 200 and response.json()["status"] == "running"
    run = awaiting(api, run["id"], "cast")
    after = portraits(pid)
    assert after[first] != before[first] and after[second] == before[second]
    assert stages(calls) == {"text": 1, "image": 3}
    assert (drawn(calls, first), drawn(calls, second)) == (2, 1)
    take = Take.objects.get(pk=after[first][0])
    assert "raincoat" in take.instructions and take.kind == "portrait"
    assert Take.objects.filter(character__project_id=pid).count() == 3
    checkpoints = [e for e in run["events"] if e["type"] == "checkpoint"]
    assert [e["data"]["kind"] for e in checkpoints] == ["cast", "cast"]  # asked again, afresh

    # approve the cast: the scenes, shots and keyframes; then the storyboard checkpoint
    assert decide(api, run["id"], "approve").status_code == 200
    run = awaiting(api, run["id"], "storyboard")
    assert Project.objects.get(pk=pid).status == "awaiting_storyboard_approval"
    assert Character.objects.filter(project_id=pid, status="approved").count() == 2
    at_storyboard = stages(calls)
    assert at_storyboard == {"text": 4, "image": 7}  # + scenes, 2 shot lists, 4 keyframes

    assert decide(api, run["id"], "approve").status_code == 200
    drain()
    run = run_of(api, run["id"])
    assert run["status"] == "complete", run
    project = Project.objects.get(pk=pid)
    assert project.status == "complete" and project.final_video
    assert stages(calls) == {**at_storyboard, "clip": 4, "speech": 4}  # nothing redrawn
    types = [e["type"] for e in run["events"]]
    assert types.count("checkpoint") == 3 and types.count("decision") == 3
    assert types[-1] == "complete" and "error" not in types
    complete = run["events"][-1]["data"]
    assert complete["final_video_url"] and complete["spent_usd"] == 0
    assert [n["decision"] for n in run["notes"]] == ["revise", "approve", "approve"]
    # every advance ended (no worker waits): the run's jobs all succeeded
    advances = Job.objects.filter(project_id=pid, type=Job.Type.AGENT_RUN)
    assert advances.count() >= 4
    assert set(advances.values_list("status", flat=True)) == {"succeeded"}
    assert AgentRun.objects.get(pk=run["id"]).advances == run["advances"]


def keyframes(project_id: int) -> dict[tuple[int, int], int | None]:
    frames = Frame.objects.filter(scene__project_id=project_id).select_related("scene")
    return {(f.scene.order, f.order): f.keyframe_take_id for f in frames}


def test_a_revise_at_the_storyboard_redraws_the_one_frame_it_names(api, calls):
    pid, run, _ = to_the_cast(api, calls)
    assert decide(api, run["id"], "approve").status_code == 200
    run = awaiting(api, run["id"], "storyboard")
    before, drawn_before = keyframes(pid), calls["image"]
    notes = "make frame 2 of scene 1 darker"
    assert decide(api, run["id"], "revise", notes).status_code == 200
    run = awaiting(api, run["id"], "storyboard")
    after = keyframes(pid)
    changed = [unit for unit in before if after[unit] != before[unit]]
    assert changed == [(1, 2)]
    assert calls["image"] == drawn_before + 1 and calls["clip"] == 0
    assert Take.objects.get(pk=after[(1, 2)]).instructions == "darker"
    redo = [
        a
        for a in run["events"]
        if a["type"] == "action" and a["data"]["name"] == "regenerate_keyframe"
    ]
    assert len(redo) == 1 and "job" in redo[0]["data"]["result"]


@pytest.mark.parametrize("notes", ["make the videos", "make the clip of frame 1 of scene 1 again"])
def test_a_revise_at_the_storyboard_makes_no_clip_before_the_approval(api, calls, notes):
    """Clips (all of them, or one) would go past the person's storyboard approval."""
    pid, run, _ = to_the_cast(api, calls)
    assert decide(api, run["id"], "approve").status_code == 200
    run = awaiting(api, run["id"], "storyboard")
    assert decide(api, run["id"], "revise", notes).status_code == 200
    run = awaiting(api, run["id"], "storyboard")
    assert Project.objects.get(pk=pid).status == "awaiting_storyboard_approval"
    assert calls["clip"] == 0
    assert not Job.objects.filter(project_id=pid, type=Job.Type.VIDEOS).exists()
    tried = [
        e["data"]
        for e in run["events"]
        if e["type"] == "action"
        and e["data"]["name"] in ("start_generation", "regenerate_clip", "regenerate_scene")
        and e["data"]["args"].get("kind") != "characters"
    ]
    assert tried and all("storyboard" in a["result"]["error"] for a in tried), tried
