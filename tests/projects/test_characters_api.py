import pytest

from generation.models import GenerationJob
from projects.models import Character, Project
from tests.factories import CharacterFactory, JobFactory, ProjectFactory, SceneFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(user):
    return ProjectFactory(owner=user, status=Project.Status.AWAITING_APPROVAL)


def test_it_lists_a_projects_characters_as_a_plain_array(api, project):
    a = CharacterFactory(project=project)
    b = CharacterFactory(project=project)
    body = api.get(f"/api/projects/{project.pk}/characters").json()
    assert [c["id"] for c in body] == [a.pk, b.pk]
    assert set(body[0]) >= {
        "id",
        "name",
        "role",
        "description",
        "appearance",
        "personality",
        "status",
        "image_url",
    }


def test_it_edits_a_character(api, project):
    character = CharacterFactory(project=project)
    response = api.patch(
        f"/api/characters/{character.pk}", {"description": "Older, wiser"}, format="json"
    )
    assert response.status_code == 200
    character.refresh_from_db()
    assert character.description == "Older, wiser"


def test_editing_the_status_directly_is_refused(api, project):
    character = CharacterFactory(project=project)
    response = api.patch(f"/api/characters/{character.pk}", {"status": "approved"}, format="json")
    assert response.status_code == 400
    character.refresh_from_db()
    assert character.status == "pending"


def test_it_approves_and_rejects_with_a_reason(api, project):
    hero = CharacterFactory(project=project)
    villain = CharacterFactory(project=project)
    assert api.post(f"/api/characters/{hero.pk}/approve").json()["status"] == "approved"
    response = api.post(
        f"/api/characters/{villain.pk}/reject", {"reason": "Too cartoonish"}, format="json"
    )
    assert response.status_code == 200
    villain.refresh_from_db()
    assert (villain.status, villain.rejection_reason) == ("rejected", "Too cartoonish")


def test_a_decision_can_change_while_awaiting_approval(api, project):
    hero = CharacterFactory(project=project)
    CharacterFactory(project=project)  # still pending: the gate stays closed
    api.post(f"/api/characters/{hero.pk}/reject")
    assert api.post(f"/api/characters/{hero.pk}/approve").json()["status"] == "approved"


@pytest.mark.parametrize("status", ["generating", "failed"])
def test_deciding_an_ungenerated_character_is_409(api, project, status):
    character = CharacterFactory(project=project, status=status)
    response = api.post(f"/api/characters/{character.pk}/approve")
    assert response.status_code == 409
    assert status in response.json()["detail"]
    character.refresh_from_db()
    assert character.status == status


def test_deciding_outside_awaiting_approval_is_409(api, user):
    project = ProjectFactory(owner=user, status=Project.Status.GENERATING_CHARACTERS)
    character = CharacterFactory(project=project)
    response = api.post(f"/api/characters/{character.pk}/approve")
    assert response.status_code == 409
    assert "awaiting approval" in response.json()["detail"]


def test_deciding_after_scene_generation_started_is_409(api, project):
    character = CharacterFactory(project=project, status="approved")
    JobFactory(project=project, type=GenerationJob.Type.SCENES, status="running")
    response = api.post(f"/api/characters/{character.pk}/reject")
    assert response.status_code == 409
    assert "Scene generation has started" in response.json()["detail"]
    SceneFactory(project=project)
    assert api.post(f"/api/characters/{character.pk}/reject").status_code == 409
    character.refresh_from_db()
    assert character.status == Character.Status.APPROVED


def test_reject_validates_its_body(api, project):
    character = CharacterFactory(project=project)
    response = api.post(f"/api/characters/{character.pk}/reject", {"reason": 5}, format="json")
    assert response.status_code == 400
    character.refresh_from_db()
    assert character.status == "pending"
