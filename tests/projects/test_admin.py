import pytest
from django.contrib.auth import get_user_model

from projects.models import Project
from tests.factories import CharacterFactory, FrameFactory, ProjectFactory, SceneFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    admin = get_user_model().objects.create_superuser("boss", password="pw-for-tests-only")
    client.force_login(admin)
    return client


def test_the_approve_action_calls_the_service(admin_client):
    project = ProjectFactory(status=Project.Status.AWAITING_APPROVAL)
    hero = CharacterFactory(project=project)
    response = admin_client.post(
        "/admin/projects/character/",
        {"action": "approve", "_selected_action": [hero.pk]},
        follow=True,
    )
    assert response.status_code == 200
    hero.refresh_from_db()
    assert hero.status == "approved"


def test_the_reject_action_reports_conflicts_instead_of_failing(admin_client):
    project = ProjectFactory(status=Project.Status.GENERATING_CHARACTERS)
    hero = CharacterFactory(project=project)
    response = admin_client.post(
        "/admin/projects/character/",
        {"action": "reject", "_selected_action": [hero.pk]},
        follow=True,
    )
    assert "awaiting approval" in response.content.decode()
    hero.refresh_from_db()
    assert hero.status == "pending"


@pytest.mark.parametrize(
    "url",
    [
        "/admin/projects/project/",
        "/admin/projects/character/",
        "/admin/projects/scene/",
        "/admin/projects/frame/",
        "/admin/projects/video/",
        "/admin/generation/generationjob/",
    ],
)
def test_every_admin_page_renders(admin_client, url):
    FrameFactory(scene=SceneFactory(project=ProjectFactory()))
    assert admin_client.get(url).status_code == 200
    assert admin_client.get(url + "?q=film").status_code == 200


def test_the_project_page_shows_characters_and_scenes_inline(admin_client):
    project = ProjectFactory()
    CharacterFactory(project=project, name="Mara")
    SceneFactory(project=project, title="The storm")
    page = admin_client.get(f"/admin/projects/project/{project.pk}/change/").content.decode()
    assert "Mara" in page and "The storm" in page


def test_editing_a_project_in_the_admin_goes_through_the_service(admin_client):
    from tests.factories import JobFactory

    project = ProjectFactory(status=Project.Status.GENERATING_VIDEOS, clip_seconds=5)
    JobFactory(project=project, status="running")
    url = f"/admin/projects/project/{project.pk}/change/"
    form = {
        "owner": project.owner.pk,
        "title": "Renamed",
        "logline": project.logline,
        "synopsis": "",
        "genre": "",
        "style": "",
        "num_scenes": 3,
        "frames_per_scene": 3,
        "clip_seconds": 8,
        "aspect_ratio": "16:9",
        "characters-TOTAL_FORMS": 0,
        "characters-INITIAL_FORMS": 0,
        "scenes-TOTAL_FORMS": 0,
        "scenes-INITIAL_FORMS": 0,
    }
    response = admin_client.post(url, form, follow=True)
    assert "while a generation job" in response.content.decode()
    project.refresh_from_db()
    assert project.clip_seconds == 5  # the 409 rule held in the admin too


def test_adding_a_project_in_the_admin_uses_the_service(admin_client):
    from tests.factories import UserFactory

    owner = UserFactory(username="carol")
    form = {
        "owner": owner.pk,
        "title": "From admin",
        "logline": "",
        "synopsis": "",
        "genre": "",
        "style": "",
        "num_scenes": 2,
        "frames_per_scene": 2,
        "clip_seconds": 4,
        "aspect_ratio": "1:1",
        "characters-TOTAL_FORMS": 0,
        "characters-INITIAL_FORMS": 0,
        "scenes-TOTAL_FORMS": 0,
        "scenes-INITIAL_FORMS": 0,
    }
    response = admin_client.post("/admin/projects/project/add/", form, follow=True)
    assert response.status_code == 200
    project = Project.objects.get(title="From admin")
    assert (project.owner, project.num_scenes, project.aspect_ratio) == (owner, 2, "1:1")
