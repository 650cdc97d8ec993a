import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.messages.storage.fallback import FallbackStorage

from generation.models import GenerationJob
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    admin = get_user_model().objects.create_superuser("boss", password="pw-for-tests-only")
    client.force_login(admin)
    return client


@pytest.mark.parametrize("status", ["queued", "running", "waiting"])
def test_an_active_job_cannot_be_deleted_from_its_page(admin_client, status):
    job = JobFactory(status=status)
    url = f"/admin/generation/generationjob/{job.pk}/delete/"
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert GenerationJob.objects.filter(pk=job.pk).exists()


def test_a_finished_job_can_be_deleted_from_its_page(admin_client):
    job = JobFactory(status="failed")
    url = f"/admin/generation/generationjob/{job.pk}/delete/"
    assert admin_client.post(url, {"post": "yes"}, follow=True).status_code == 200
    assert not GenerationJob.objects.filter(pk=job.pk).exists()


def test_delete_selected_refuses_active_jobs(admin_client):
    active, done = JobFactory(status="running"), JobFactory(status="succeeded")
    form = {"action": "delete_selected", "_selected_action": [active.pk, done.pk], "post": "yes"}
    admin_client.post("/admin/generation/generationjob/", form)
    assert set(GenerationJob.objects.values_list("pk", flat=True)) == {active.pk, done.pk}


def test_a_finished_parent_with_an_active_child_cannot_be_deleted(admin_client):
    parent = JobFactory(status="succeeded")
    JobFactory(project=parent.project, parent=parent, status="waiting")
    form = {"action": "delete_selected", "_selected_action": [parent.pk], "post": "yes"}
    admin_client.post("/admin/generation/generationjob/", form)
    assert GenerationJob.objects.filter(pk=parent.pk).exists()


def test_delete_selected_deletes_finished_jobs(admin_client):
    done = JobFactory(status="cancelled")
    form = {"action": "delete_selected", "_selected_action": [done.pk], "post": "yes"}
    admin_client.post("/admin/generation/generationjob/", form, follow=True)
    assert not GenerationJob.objects.filter(pk=done.pk).exists()


def test_a_job_that_became_active_after_the_confirmation_is_kept(rf):
    job = JobFactory(status="queued")  # say, retried while the confirmation page was open
    request = rf.post("/admin/generation/generationjob/")
    request.session = {}
    request._messages = FallbackStorage(request)
    admin.site._registry[GenerationJob].delete_queryset(request, GenerationJob.objects.all())
    assert GenerationJob.objects.filter(pk=job.pk).exists()
