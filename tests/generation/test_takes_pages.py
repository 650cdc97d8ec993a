"""Takes in the admin (visible on character and frame pages, made current by an action through
the service) and stale counts on the staff dashboards."""

import pytest
from django.test import Client

from generation.models import GenerationJob
from projects.models import Frame, Take
from tests.factories import (
    CharacterFactory,
    FrameFactory,
    JobFactory,
    ProjectFactory,
    SceneFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(db) -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def frame_with_two_takes():
    project = ProjectFactory()
    frame = FrameFactory(scene=SceneFactory(project=project), prompt="Waves at dusk")
    old = Take.objects.create(project=project, kind="keyframe", frame=frame, file="old.png")
    new = Take.objects.create(
        project=project, kind="keyframe", frame=frame, file="new.png", instructions="darker"
    )
    Frame.objects.filter(pk=frame.pk).update(keyframe_take=new, image="new.png")
    return frame, old, new


def test_a_frames_admin_page_lists_its_takes(staff_client, frame_with_two_takes):
    frame, old, new = frame_with_two_takes
    page = staff_client.get(f"/admin/projects/frame/{frame.pk}/change/").content.decode()
    assert f"/admin/projects/take/{old.pk}/change/" in page
    assert f"/admin/projects/take/{new.pk}/change/" in page
    assert "darker" in page


def test_a_characters_admin_page_lists_its_portraits(staff_client):
    character = CharacterFactory()
    take = Take.objects.create(
        project=character.project, kind="portrait", character=character, file="p.png"
    )
    page = staff_client.get(f"/admin/projects/character/{character.pk}/change/").content.decode()
    assert f"/admin/projects/take/{take.pk}/change/" in page


def test_the_make_current_action_goes_through_the_service(staff_client, frame_with_two_takes):
    frame, old, _ = frame_with_two_takes
    response = staff_client.post(
        "/admin/projects/take/",
        {"action": "make_current", "_selected_action": [old.pk]},
        follow=True,
    )
    assert response.status_code == 200
    frame.refresh_from_db()
    assert (frame.keyframe_take_id, frame.image) == (old.pk, "old.png")


def test_the_make_current_action_refuses_while_a_job_works_on_the_unit(
    staff_client, frame_with_two_takes
):
    frame, old, new = frame_with_two_takes
    JobFactory(
        project=frame.scene.project,
        type=GenerationJob.Type.KEYFRAME,
        target_type="frame",
        target_id=frame.pk,
        status="running",
    )
    response = staff_client.post(
        "/admin/projects/take/",
        {"action": "make_current", "_selected_action": [old.pk]},
        follow=True,
    )
    assert "keyframe-generation" in response.content.decode()
    frame.refresh_from_db()
    assert frame.keyframe_take_id == new.pk


def test_a_take_cannot_be_edited_or_deleted_in_the_admin(staff_client, frame_with_two_takes):
    _, old, _ = frame_with_two_takes
    page = staff_client.get(f"/admin/projects/take/{old.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert staff_client.post(f"/admin/projects/take/{old.pk}/delete/").status_code == 403


def test_the_dashboard_shows_what_is_stale(staff_client, frame_with_two_takes):
    frame, _, new = frame_with_two_takes
    Take.objects.filter(pk=new.pk).update(inputs={"frame": {"prompt": "Waves"}}, inputs_hash="x")
    project = frame.scene.project
    listing = staff_client.get("/dashboard/projects/").content.decode()
    assert 'data-stale="1"' in listing and "1 stale" in listing
    detail = staff_client.get(f"/dashboard/projects/{project.pk}/").content.decode()
    assert f'data-stale-unit="keyframe-{frame.pk}"' in detail
    assert "frame prompt edited" in detail
