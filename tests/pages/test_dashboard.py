"""The staff dashboards through Django's test client: permissions, filters, Retry and Cancel."""

import pytest
from django.test import Client
from django.utils import timezone

from generation.models import GenerationJob
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

Job = GenerationJob


@pytest.fixture
def staff(db):
    return UserFactory(username="stella", is_staff=True)


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def test_it_sends_anonymous_users_to_login(client):
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/dashboard/"


def test_it_refuses_signed_in_non_staff(client, user):
    client.force_login(user)
    for url in ("/dashboard/", "/dashboard/jobs/", "/dashboard/projects/"):
        response = client.get(url)
        assert response.status_code == 403
        assert b"Staff only" in response.content


def test_it_refuses_retry_to_non_staff(client, user):
    job = JobFactory(status=Job.Status.FAILED, project__owner=user)
    client.force_login(user)
    assert client.post(f"/dashboard/jobs/{job.pk}/retry").status_code == 403
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED


def test_it_shows_the_overview(staff_client):
    JobFactory(status=Job.Status.FAILED, error="Boom")
    response = staff_client.get("/dashboard/")
    assert response.status_code == 200
    assert response.context["failure_count"] == 0  # no finished_at: not in the last hour
    assert dict(response.context["job_counts"])["failed"] == 1
    assert [q["name"] for q in response.context["queues"]] == ["default"]
    assert b'href="/django-rq/"' in response.content


def test_it_counts_failures_of_the_last_hour(staff_client):
    JobFactory(status=Job.Status.FAILED, error="Boom", finished_at=timezone.now())
    response = staff_client.get("/dashboard/")
    assert response.context["failure_count"] == 1
    assert b"Boom" in response.content


def test_it_filters_jobs(staff_client):
    project = ProjectFactory()
    failed = JobFactory(project=project, status=Job.Status.FAILED)
    JobFactory(project=project, status=Job.Status.SUCCEEDED, type=Job.Type.SCENES)
    other = JobFactory(status=Job.Status.FAILED, type=Job.Type.SCENES)

    def ids(query: str) -> list[int]:
        response = staff_client.get(f"/dashboard/jobs/?{query}")
        assert response.status_code == 200
        return [job.pk for job in response.context["page"]]

    assert ids("status=failed") == [other.pk, failed.pk]
    assert ids(f"status=failed&project={project.pk}") == [failed.pk]
    assert ids("type=scene-generation&status=failed") == [other.pk]
    assert ids("") == sorted(ids(""), reverse=True)


def test_it_searches_jobs_by_error_title_and_id(staff_client):
    job = JobFactory(error="ffmpeg exploded", project__title="Lighthouse")
    JobFactory(error="something else")
    for query in ("exploded", "lighthouse", f"%23{job.pk}"):
        page = staff_client.get(f"/dashboard/jobs/?q={query}").context["page"]
        assert [j.pk for j in page] == [job.pk], query
    assert staff_client.get(f"/dashboard/jobs/?q={'9' * 40}").status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "status=exploded",
        "type=nope",
        "project=abc",
        "project=-1",
        f"project={'9' * 40}",
        "page=two",
        "status=failed&type=x",
    ],
)
def test_it_answers_400_to_a_bad_filter(staff_client, query):
    response = staff_client.get(f"/dashboard/jobs/?{query}")
    assert response.status_code == 400
    assert response.context["page"] is None
    assert response.context["errors"]
    assert b'class="error"' in response.content


def test_it_answers_400_to_a_bad_project_filter(staff_client):
    response = staff_client.get("/dashboard/projects/?status=nope")
    assert response.status_code == 400
    assert "Unknown status “nope”." in response.context["errors"]


def test_it_paginates_jobs(staff_client):
    project = ProjectFactory()
    JobFactory.create_batch(55, project=project)
    first = staff_client.get("/dashboard/jobs/")
    assert len(first.context["page"]) == 50
    second = staff_client.get("/dashboard/jobs/?page=2")
    assert len(second.context["page"]) == 5
    beyond = staff_client.get("/dashboard/jobs/?page=9")  # out of range: the last page
    assert beyond.status_code == 200 and beyond.context["page"].number == 2


def test_it_lists_projects_with_progress(staff_client):
    ProjectFactory(title="Storm", status=Project.Status.GENERATING_FRAMES, progress=40)
    response = staff_client.get("/dashboard/projects/?status=generating_frames")
    assert [p.title for p in response.context["page"]] == ["Storm"]
    assert b'style="width: 40%"' in response.content


def test_it_shows_the_project_tree_with_signed_media(staff_client):
    project = ProjectFactory(final_video="1/final/film.mp4")
    CharacterFactory(project=project, image=f"{project.pk}/characters/a.png")
    scene = SceneFactory(project=project)
    frame = FrameFactory(scene=scene, image=f"{project.pk}/frames/f.png")
    VideoFactory(frame=frame, file=f"{project.pk}/videos/v.mp4")
    FrameFactory(scene=scene)  # no keyframe, no clip yet
    response = staff_client.get(f"/dashboard/projects/{project.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f"/blob/{project.pk}/characters/a.png?sig=" in html
    assert f"/blob/{project.pk}/frames/f.png?sig=" in html
    assert f"/blob/{project.pk}/videos/v.mp4?sig=" in html
    assert 'id="final-film"' in html
    assert "not started" in html


def test_it_shows_a_job_with_its_family(staff_client):
    parent = JobFactory(type=Job.Type.VIDEOS, status=Job.Status.FAILED)
    child = JobFactory(
        project=parent.project,
        type=Job.Type.VIDEOS,
        parent=parent,
        status=Job.Status.FAILED,
        error="provider said no",
        traceback="Traceback (most recent call last): ...",
        provider_request_ids=["req-123"],
    )
    html = staff_client.get(f"/dashboard/jobs/{child.pk}/").content.decode()
    for text in ("provider said no", "Traceback (most recent call last)", "req-123"):
        assert text in html
    assert f'href="/dashboard/jobs/{parent.pk}/"' in html
    parent_html = staff_client.get(f"/dashboard/jobs/{parent.pk}/").content.decode()
    assert f'href="/dashboard/jobs/{child.pk}/"' in parent_html


def test_retry_calls_the_service(staff_client):
    job = JobFactory(status=Job.Status.FAILED, error="Boom", attempts=1)
    response = staff_client.post(f"/dashboard/jobs/{job.pk}/retry", follow=True)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.error) == (Job.Status.QUEUED, 2, "")
    assert f"Job #{job.pk} queued again." in response.content.decode()


def test_retry_shows_the_conflict_as_a_message(staff_client):
    job = JobFactory(status=Job.Status.SUCCEEDED)
    response = staff_client.post(f"/dashboard/jobs/{job.pk}/retry", follow=True)
    assert response.redirect_chain == [(f"/dashboard/jobs/{job.pk}/", 302)]
    messages = [str(m) for m in response.context["messages"]]
    assert messages == ["Only a failed or cancelled job can be retried; this one is succeeded."]
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED


def test_cancel_calls_the_service(staff_client):
    job = JobFactory(status=Job.Status.RUNNING)
    staff_client.post(f"/dashboard/jobs/{job.pk}/cancel")
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    job.project.refresh_from_db()
    assert job.project.status == Project.Status.CANCELLED


def test_cancel_shows_the_conflict_as_a_message(staff_client):
    job = JobFactory(status=Job.Status.FAILED)
    response = staff_client.post(f"/dashboard/jobs/{job.pk}/cancel", follow=True)
    assert "Only a queued, running or waiting job can be cancelled" in response.content.decode()


@pytest.mark.parametrize("action", ["retry", "cancel"])
def test_actions_refuse_a_post_without_the_csrf_token(staff, action):
    job = JobFactory(status=Job.Status.FAILED if action == "retry" else Job.Status.RUNNING)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.post(f"/dashboard/jobs/{job.pk}/{action}").status_code == 403
    before = job.status
    job.refresh_from_db()
    assert job.status == before


def test_actions_accept_a_post_with_the_csrf_token(staff):
    job = JobFactory(status=Job.Status.FAILED)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    page = client.get(f"/dashboard/jobs/{job.pk}/")
    token = page.context["csrf_token"]
    response = client.post(f"/dashboard/jobs/{job.pk}/retry", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED


@pytest.mark.parametrize("action", ["retry", "cancel"])
def test_actions_refuse_get(staff_client, action):
    job = JobFactory(status=Job.Status.FAILED)
    assert staff_client.get(f"/dashboard/jobs/{job.pk}/{action}").status_code == 405


def test_the_staff_event_stream_refuses_non_staff(client, user):
    project = ProjectFactory(owner=user)
    client.force_login(user)
    assert client.get(f"/dashboard/projects/{project.pk}/events").status_code == 403


def test_a_missing_job_or_project_is_404(staff_client):
    assert staff_client.get("/dashboard/jobs/999999/").status_code == 404
    assert staff_client.get("/dashboard/projects/999999/").status_code == 404
    assert staff_client.post("/dashboard/jobs/999999/retry").status_code == 404
