import django_rq
import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from rq import Queue

from media.storage import media_name
from projects.models import Project
from tests.factories import (
    CharacterFactory,
    FrameFactory,
    JobFactory,
    ProjectFactory,
    SceneFactory,
    UserFactory,
    VideoFactory,
)

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
        "music": "none",
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
        "music": "none",
        "characters-TOTAL_FORMS": 0,
        "characters-INITIAL_FORMS": 0,
        "scenes-TOTAL_FORMS": 0,
        "scenes-INITIAL_FORMS": 0,
    }
    response = admin_client.post("/admin/projects/project/add/", form, follow=True)
    assert response.status_code == 200
    project = Project.objects.get(title="From admin")
    assert (project.owner, project.num_scenes, project.aspect_ratio) == (owner, 2, "1:1")


def _stored_file(project_id: int) -> str:

    return default_storage.save(media_name(project_id, "frames", "x", ".png"), ContentFile(b"x"))


def _queued_rq_job():
    """A delivery already in Redis (django-rq's queue would wait for this test's commit)."""
    default = django_rq.get_queue("default")
    return Queue(
        default.name, connection=default.connection, serializer=default.serializer
    ).enqueue("os.getcwd")


def test_deleting_a_project_in_the_admin_cancels_its_jobs_and_deletes_its_files(
    admin_client, media_root, django_capture_on_commit_callbacks
):
    project = ProjectFactory()
    delivery = _queued_rq_job()
    JobFactory(project=project, status="queued", rq_job_id=delivery.id)
    name = _stored_file(project.pk)
    url = f"/admin/projects/project/{project.pk}/delete/"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not default_storage.exists(name)
    assert delivery.get_status(refresh=True) == "canceled"


def test_the_delete_selected_action_on_projects_goes_through_the_service(
    admin_client, media_root, django_capture_on_commit_callbacks
):
    doomed, kept = ProjectFactory(), ProjectFactory()
    delivery = _queued_rq_job()
    JobFactory(project=doomed, status="running", rq_job_id=delivery.id)
    names = [_stored_file(doomed.pk), _stored_file(kept.pk)]
    form = {"action": "delete_selected", "_selected_action": [doomed.pk], "post": "yes"}
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/projects/project/", form, follow=True)
    assert response.status_code == 200
    assert list(Project.objects.all()) == [kept]
    assert [default_storage.exists(name) for name in names] == [False, True]
    assert delivery.get_status(refresh=True) == "canceled"


def _project_form(project, **changes) -> dict:
    form = {
        "owner": project.owner.pk,
        "title": project.title,
        "logline": project.logline,
        "synopsis": project.synopsis,
        "genre": project.genre,
        "style": project.style,
        "num_scenes": project.num_scenes,
        "frames_per_scene": project.frames_per_scene,
        "clip_seconds": project.clip_seconds,
        "aspect_ratio": project.aspect_ratio,
        "music": project.music,
        "characters-TOTAL_FORMS": 0,
        "characters-INITIAL_FORMS": 0,
        "scenes-TOTAL_FORMS": 0,
        "scenes-INITIAL_FORMS": 0,
    }
    return {**form, **changes}


def test_a_refused_project_edit_does_not_change_the_owner_either(admin_client):
    project = ProjectFactory(status=Project.Status.GENERATING_VIDEOS, clip_seconds=5)
    owner, title = project.owner, project.title
    JobFactory(project=project, status="running")
    newcomer = UserFactory(username="dave")
    url = f"/admin/projects/project/{project.pk}/change/"
    form = _project_form(project, owner=newcomer.pk, title="Renamed", clip_seconds=8)
    page = admin_client.post(url, form, follow=True).content.decode()
    assert "while a generation job" in page
    assert "was changed successfully" not in page
    assert 'value="Renamed"' in page  # the form comes back with the producer's edits
    project.refresh_from_db()
    assert (project.owner, project.title, project.clip_seconds) == (owner, title, 5)


def test_the_owner_of_a_project_can_still_be_changed_in_the_admin(admin_client):
    project = ProjectFactory()
    newcomer = UserFactory(username="dave")
    url = f"/admin/projects/project/{project.pk}/change/"
    response = admin_client.post(url, _project_form(project, owner=newcomer.pk), follow=True)
    assert "was changed successfully" in response.content.decode()
    project.refresh_from_db()
    assert project.owner == newcomer


def test_scenes_cannot_be_edited_through_the_project_page(admin_client):
    project = ProjectFactory()
    scene = SceneFactory(project=project, title="The storm", order=1)
    url = f"/admin/projects/project/{project.pk}/change/"
    form = _project_form(
        project,
        **{
            "scenes-TOTAL_FORMS": 1,
            "scenes-INITIAL_FORMS": 1,
            "scenes-0-id": scene.pk,
            "scenes-0-project": project.pk,
            "scenes-0-order": 7,
            "scenes-0-title": "Edited around the service",
            "scenes-0-location": "",
            "scenes-0-mood": "",
            "scenes-0-DELETE": "on",
        },
    )
    admin_client.post(url, form, follow=True)
    scene.refresh_from_db()
    assert (scene.title, scene.order) == ("The storm", 1)


def test_videos_are_read_only_in_the_admin(admin_client):
    # Scenes and frames are edited through their services: tests/projects/test_edit_admin.py.
    obj = VideoFactory(frame=FrameFactory(scene=SceneFactory(project=ProjectFactory())))
    base = "/admin/projects/video/"
    assert admin_client.get(f"{base}{obj.pk}/change/").status_code == 200
    assert admin_client.get(f"{base}add/").status_code == 403
    assert admin_client.post(f"{base}{obj.pk}/change/", {"title": "x"}).status_code == 403
    assert admin_client.post(f"{base}{obj.pk}/delete/", {"post": "yes"}).status_code == 403
    form = {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"}
    admin_client.post(base, form)
    assert type(obj).objects.filter(pk=obj.pk).exists()


def test_the_scene_page_lists_only_that_projects_characters(admin_client):
    project = ProjectFactory()
    scene = SceneFactory(project=project)
    scene.characters.add(CharacterFactory(project=project, name="Mara"))
    CharacterFactory(project=project, name="Ines")  # same project, not in this scene
    CharacterFactory(project=ProjectFactory(), name="Stranger")
    page = admin_client.get(f"/admin/projects/scene/{scene.pk}/change/").content.decode()
    assert "Mara" in page
    assert "Stranger" not in page
