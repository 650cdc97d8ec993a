"""The admin's cast approval view through Django's test client."""

import pytest
from django.test import Client

from generation.models import GenerationJob
from projects.models import Character, Project
from tests.factories import CharacterFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/admin/projects/character/cast-approval/"


@pytest.fixture
def producer(db):
    return UserFactory(username="paula", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(producer) -> Client:
    client = Client()
    client.force_login(producer)
    return client


@pytest.fixture
def project(db):
    return ProjectFactory(title="Storm", status=Project.Status.AWAITING_APPROVAL)


def test_it_needs_a_staff_login(client, user):
    assert client.get(URL).status_code == 302
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_it_needs_the_change_permission(client):
    client.force_login(UserFactory(username="intern", is_staff=True))
    assert client.get(URL).status_code == 403


def test_it_groups_pending_characters_by_project(admin_client, project):
    keeper = CharacterFactory(
        project=project, name="Keeper", image=f"{project.pk}/characters/k.png"
    )
    CharacterFactory(project=project, name="Gull", status=Character.Status.APPROVED)
    other = CharacterFactory(name="Sailor", project__status=Project.Status.AWAITING_APPROVAL)
    response = admin_client.get(URL)
    assert response.status_code == 200
    groups = response.context["groups"]
    assert [(g["project"].pk, [c.name for c in g["characters"]]) for g in groups] == [
        (project.pk, ["Keeper"]),
        (other.project_id, ["Sailor"]),
    ]
    assert groups[0]["counts"] == {"pending": 1, "approved": 1}
    assert f"/blob/{project.pk}/characters/k.png?sig=" in response.content.decode()
    assert keeper.pk


def test_it_approves_with_an_edited_description(admin_client, project):
    keeper = CharacterFactory(project=project, name="Keeper", description="old")
    gull = CharacterFactory(project=project, name="Gull")
    admin_client.post(URL, {"approve": keeper.pk, f"description-{keeper.pk}": "A weathered keeper"})
    keeper.refresh_from_db()
    assert (keeper.status, keeper.description) == (Character.Status.APPROVED, "A weathered keeper")
    assert not GenerationJob.objects.filter(type=GenerationJob.Type.SCENES).exists()
    gull.refresh_from_db()
    assert gull.status == Character.Status.PENDING


def test_approving_the_last_pending_character_starts_scene_generation(admin_client, project):
    keeper = CharacterFactory(project=project)
    gull = CharacterFactory(project=project)
    response = admin_client.post(
        URL, {"bulk": "approve", "selected": [keeper.pk, gull.pk]}, follow=True
    )
    html = response.content.decode()
    assert "Approved:" in html
    assert "The cast of “Storm” is settled: scene generation has started." in html
    project.refresh_from_db()
    assert project.status == Project.Status.GENERATING_SCENES
    assert project.jobs.filter(type=GenerationJob.Type.SCENES).count() == 1


def test_it_rejects_many_with_a_reason(admin_client, project):
    keeper, gull = CharacterFactory(project=project), CharacterFactory(project=project)
    admin_client.post(
        URL, {"bulk": "reject", "selected": [keeper.pk, gull.pk], "reason": "Off tone"}
    )
    for character in (keeper, gull):
        character.refresh_from_db()
        assert (character.status, character.rejection_reason) == ("rejected", "Off tone")


def test_it_rejects_one_with_its_own_reason(admin_client, project):
    keeper = CharacterFactory(project=project)
    admin_client.post(URL, {"reject": keeper.pk, f"reason-{keeper.pk}": "Too young"})
    keeper.refresh_from_db()
    assert (keeper.status, keeper.rejection_reason) == ("rejected", "Too young")


def test_it_shows_a_conflict_as_a_message(admin_client):
    character = CharacterFactory(project__status=Project.Status.GENERATING_CHARACTERS)
    response = admin_client.post(URL, {"approve": character.pk}, follow=True)
    messages = [str(m) for m in response.context["messages"]]
    assert len(messages) == 1 and "only while the project is awaiting approval" in messages[0]
    character.refresh_from_db()
    assert character.status == Character.Status.PENDING


def test_it_says_so_when_nothing_is_selected(admin_client):
    response = admin_client.post(URL, {"bulk": "approve"}, follow=True)
    assert "Select at least one character" in response.content.decode()


def test_it_ignores_ids_that_are_not_ids(admin_client):
    response = admin_client.post(URL, {"approve": "9" * 40}, follow=True)
    assert response.status_code == 200
    assert "Select at least one character" in response.content.decode()


def test_it_refuses_a_post_without_the_csrf_token(producer, project):
    character = CharacterFactory(project=project)
    client = Client(enforce_csrf_checks=True)
    client.force_login(producer)
    assert client.post(URL, {"approve": character.pk}).status_code == 403
    character.refresh_from_db()
    assert character.status == Character.Status.PENDING


def test_it_is_linked_from_the_index_and_the_changelist(admin_client):
    assert URL in admin_client.get("/admin/").content.decode()
    assert URL in admin_client.get("/admin/projects/character/").content.decode()
