"""Director tools called directly: the same services as the API, always as the calling user."""

import pytest

from director.pages import PAGES
from director.tools import ToolContext, execute
from generation.models import GenerationJob
from projects.models import Character, Project
from tests.factories import (
    CharacterFactory,
    FrameFactory,
    JobFactory,
    ProjectFactory,
    SceneFactory,
    VideoFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(user):
    return ProjectFactory(owner=user, status="awaiting_approval", title="Mine")


@pytest.fixture
def theirs(other_user):
    return ProjectFactory(owner=other_user, status="awaiting_approval", title="Theirs")


def ctx(user, project=None, page="characters") -> ToolContext:
    return ToolContext(user=user, project_id=project.pk if project else None, page=PAGES[page])


def test_approve_and_reject_go_through_the_services(user, project):
    mara, elias = CharacterFactory(project=project), CharacterFactory(project=project)

    approved = execute(ctx(user, project), "approve_character", {"character_id": mara.pk})
    rejected = execute(
        ctx(user, project), "reject_character", {"character_id": elias.pk, "reason": "Too young"}
    )

    assert approved.result["character"]["status"] == "approved"
    assert rejected.result["character"]["status"] == "rejected"
    elias.refresh_from_db()
    assert elias.rejection_reason == "Too young"
    # The cast is settled: the service opened the gate to scene generation, as the API would.
    assert GenerationJob.objects.filter(project=project, type="scene-generation").exists()


@pytest.mark.parametrize(
    ("page", "name", "args"),
    [
        ("characters", "approve_character", {"character_id": "character"}),
        ("characters", "reject_character", {"character_id": "character"}),
        ("project", "get_project_status", {"project_id": "project"}),
        ("project", "update_project", {"project_id": "project", "title": "Mine now"}),
        ("project", "start_generation", {"kind": "characters", "project_id": "project"}),
        ("scenes", "retry_job", {"job_id": "job"}),
        ("videos", "cancel_job", {"job_id": "job"}),
        ("storyboard", "navigate", {"page": "scenes", "project_id": "project"}),
    ],
)
def test_no_tool_reaches_another_users_objects(user, project, theirs, page, name, args):
    objects = {
        "character": CharacterFactory(project=theirs).pk,
        "project": theirs.pk,
        "job": JobFactory(project=theirs, status="failed").pk,
    }
    args = {key: objects.get(value, value) for key, value in args.items()}
    before = (
        list(Project.objects.values()),
        list(Character.objects.values()),
        list(GenerationJob.objects.values()),
    )

    outcome = execute(ctx(user, project, page), name, args)

    assert outcome.result == {"error": "Not found."}
    after = (
        list(Project.objects.values()),
        list(Character.objects.values()),
        list(GenerationJob.objects.values()),
    )
    assert after == before


def test_status_describes_the_project(user, project):
    character = CharacterFactory(project=project, name="Mara")
    job = JobFactory(project=project, status="failed", error="boom")

    result = execute(ctx(user, project, "project"), "get_project_status", {}).result

    assert result["project"]["title"] == "Mine"
    assert result["characters"] == [
        {"id": character.pk, "name": "Mara", "role": "lead", "status": "pending"}
    ]
    assert result["recent_jobs"][0]["id"] == job.pk
    assert result["recent_jobs"][0]["error"] == "boom"
    assert "Approve or reject" in result["next_step"]


def test_status_counts_keyframes_and_clips(user, project):
    scene = SceneFactory(project=project, title="Storm")
    first = FrameFactory(scene=scene, image="frames/1.png")
    second = FrameFactory(scene=scene, image="frames/2.png")
    VideoFactory(frame=second, status="ready")
    third = FrameFactory(scene=scene)

    result = execute(ctx(user, project, "storyboard"), "get_project_status", {}).result

    assert result["scenes"] == [
        {
            "id": scene.pk,
            "order": scene.order,
            "title": "Storm",
            "status": "ready",
            "frames": 3,
            "frame_ids": [first.pk, second.pk, third.pk],
            "frames_ready": 2,
            "clips_ready": 1,
        }
    ]


def test_list_projects_lists_only_mine(user, project, theirs):
    result = execute(ctx(user, page="dashboard"), "list_projects", {}).result
    assert [p["title"] for p in result["projects"]] == ["Mine"]


def test_update_project_validates_like_the_api(user, project):
    bad = execute(ctx(user, project, "project"), "update_project", {"num_scenes": 99})
    assert bad.result == {"error": "num_scenes: Ensure this value is less than or equal to 30."}
    unknown = execute(ctx(user, project, "project"), "update_project", {"status": "complete"})
    assert unknown.result == {"error": "status: Unknown or read-only field."}
    good = execute(ctx(user, project, "project"), "update_project", {"logline": "A storm."})
    assert good.result == {"project": {"id": project.pk, "title": "Mine", "logline": "A storm."}}
    project.refresh_from_db()
    assert project.logline == "A storm."


def test_a_conflict_is_an_error_result(user, project):
    outcome = execute(ctx(user, project, "scenes"), "start_generation", {"kind": "frames"})
    assert outcome.result == {"error": "Cannot generate frames: the project has no scenes yet."}


def test_bad_arguments_are_error_results(user, project):
    c = ctx(user, project)
    assert execute(c, "approve_character", {}).result == {
        "error": "character_id must be a positive integer id."
    }
    assert execute(c, "approve_character", {"character_id": True}).result["error"]
    assert execute(c, "start_generation", {"kind": "music"}).result == {
        "error": "kind must be one of characters, scenes, frames, videos, stitch."
    }
    assert execute(c, "navigate", {"page": "settings"}).result["error"].startswith("page must")
    assert execute(c, "open_modal", {"modal": "x"}).result["error"].startswith("modal must")
    assert execute(c, "highlight", {"target": ""}).result["error"]
    assert execute(c, "approve_character", "not a dict").result["error"]


def test_integral_floats_count_as_ids(user, project):
    character = CharacterFactory(project=project)
    outcome = execute(
        ctx(user, project), "approve_character", {"character_id": float(character.pk)}
    )
    assert outcome.args == {"character_id": character.pk}
    assert outcome.result["character"]["status"] == "approved"


def test_tools_need_a_project(user):
    outcome = execute(ctx(user, page="project"), "get_project_status", {})
    assert outcome.result == {
        "error": "No project is open: open a project first or give project_id."
    }


def test_ui_tools_return_no_result(user, project):
    c = ctx(user, project)
    assert execute(c, "navigate", {"page": "videos"}).result is None
    assert execute(c, "highlight", {"target": "approve-button"}).result is None
    assert execute(c, "open_modal", {"modal": "new-project"}).result is None


def test_a_tool_not_on_the_page_is_refused(user, project):
    character = CharacterFactory(project=project)
    outcome = execute(
        ctx(user, project, "videos"), "approve_character", {"character_id": character.pk}
    )
    assert outcome.result == {"error": "No tool 'approve_character' on the videos page."}
    unknown = execute(ctx(user, project, "videos"), "drop_tables", {})
    assert unknown.result == {"error": "No tool 'drop_tables' on the videos page."}
    character.refresh_from_db()
    assert character.status == "pending"
