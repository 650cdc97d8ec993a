"""The pages in a real browser: Chromium against uvicorn and an RQ worker running the pipeline."""

import math

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from generation import services as generation
from generation.models import GenerationJob
from projects.models import Character, Project
from tests.factories import JobFactory, ProjectFactory
from tests.pages.conftest import PASSWORD, ROOT, login, screenshot, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

Job = GenerationJob


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The server checks passwords with the default hashers, so users are hashed with one."""


def make_user(username: str, **flags):
    return get_user_model().objects.create_user(username=username, password=PASSWORD, **flags)


def film_duration(page) -> float | None:
    return page.evaluate(
        "() => { const v = document.querySelector('#final-film');"
        " return v && !v.hidden && v.readyState >= 1 ? v.duration : null; }"
    )


def test_a_user_makes_a_film_in_the_studio(page, stack):
    make_user("alice")
    page.goto("/test/test.html")  # the old page: redirects to the studio, which wants a login
    page.wait_for_url("**/accounts/login/?next=/studio/")
    screenshot(page, "01-login")
    login(page, "alice")
    page.wait_for_selector("#project-form")
    screenshot(page, "02-studio-empty")

    page.fill("#f-title", "The Keeper")
    page.fill("#f-logline", "A lighthouse keeper befriends a storm.")
    page.fill("#f-genre", "Drama")
    page.fill("#f-style", "Painterly")
    page.fill("#f-scenes", "1")
    page.fill("#f-frames", "2")
    page.fill("#f-seconds", "2")
    page.select_option("#f-aspect", "16:9")
    page.uncheck("#f-storyboard")  # straight to the film (the stop: tests/pages/test_storyboard.py)
    page.click("#create-project")
    page.wait_for_selector("#project-view:not([hidden]) #project-title:text('The Keeper')")
    project = Project.objects.get(title="The Keeper")
    assert (project.num_scenes, project.frames_per_scene, project.clip_seconds) == (1, 2, 2)
    assert project.checkpoints == ["cast"]

    page.fill("#character-count", "2")
    page.click("#generate-characters")
    page.click("#confirm-go")  # after its quote (tests/pages/test_studio_money.py)
    # Portraits arrive over the eventstream: no reload, no click.
    page.wait_for_selector(".character .approve >> nth=1")
    assert page.get_attribute("body", "data-live") == "on"
    assert page.locator(".character img.portrait").count() == 2
    screenshot(page, "03-studio-characters")

    page.locator(".character .approve").first.click()
    page.wait_for_selector(".character .badge.s-approved")
    page.click("#approve-all")
    page.wait_for_selector("#confirm[open] #confirm-title:text('start the scenes')")
    page.click("#confirm-go")  # the last approval starts the paid work: its quote first
    page.wait_for_function(
        "() => { const v = document.querySelector('#final-film');"
        " return v && !v.hidden && v.readyState >= 1 && isFinite(v.duration) && v.duration > 0; }",
        timeout=60_000,
    )
    duration = film_duration(page)
    assert duration and math.isfinite(duration) and duration > 0
    assert abs(duration - 2 * 2) < 1.0
    project.refresh_from_db()
    assert project.status == Project.Status.COMPLETE
    assert page.locator("#frame-list img").count() == 2
    assert page.locator("#clip-list video").count() == 2
    page.evaluate("() => { const v = document.querySelector('#final-film'); v.muted = true; }")
    page.evaluate("() => document.querySelector('#final-film').play()")
    page.wait_for_function("() => document.querySelector('#final-film').currentTime > 0")
    page.evaluate("() => document.querySelector('#final-film').pause()")
    page.click("#jobs-box summary")
    assert page.locator("#job-list .badge.s-succeeded").count() >= 5
    screenshot(page, "04-studio-complete")
    assert page.console_errors == []


def test_a_staff_user_retries_a_failed_job_from_the_dashboard(page, stack):
    staff = make_user("stella", is_staff=True)
    project = ProjectFactory(owner=staff, title="Storm Warning", status=Project.Status.FAILED)
    now = timezone.now()
    job = JobFactory(
        project=project,
        status=Job.Status.FAILED,
        params={"count": 2},
        attempts=1,
        error="ServerError: 503 the model is overloaded",
        traceback='Traceback (most recent call last):\n  File "steps/characters.py"\nServerError',
        started_at=now,
        finished_at=now,
    )
    login(page, "stella", next_url="/dashboard/")
    screenshot(page, "10-dashboard-overview")
    page.click("text=Jobs")
    page.wait_for_selector(f"tr[data-job='{job.pk}']")
    screenshot(page, "11-dashboard-jobs")

    page.goto(f"/dashboard/jobs/{job.pk}/")
    page.wait_for_selector("[data-live-state='live']")  # the eventstream is open
    assert "overloaded" in page.text_content("#job-error")
    screenshot(page, "12-dashboard-job-failed")
    page.click("#retry")
    page.wait_for_selector(f"text=Job #{job.pk} queued again.")
    # The worker runs it; the page follows through the eventstream, without a reload.
    page.wait_for_selector("#job-status .s-succeeded", timeout=30_000)
    assert page.text_content("#job-attempts") == "2"
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert page.locator("#retry").count() == 0
    screenshot(page, "13-dashboard-job-retried")

    page.goto(f"/dashboard/projects/{project.pk}/")
    page.wait_for_selector(".tree img.portrait >> nth=1")
    assert page.text_content("#project-status").strip() == "Awaiting Approval"
    screenshot(page, "14-dashboard-project")
    page.goto("/dashboard/projects/")
    screenshot(page, "15-dashboard-projects")
    assert page.console_errors == []
    response = page.goto("/dashboard/jobs/?status=exploded")
    assert response.status == 400
    screenshot(page, "16-dashboard-bad-filter")


def test_a_producer_approves_the_cast_in_the_admin(page, stack):
    make_user("paula", is_staff=True, is_superuser=True)
    owner = make_user("otto")
    project = ProjectFactory(
        owner=owner, title="Harbour Lights", num_scenes=1, frames_per_scene=1, clip_seconds=2
    )
    generation.start_character_generation(project=project, count=2)
    wait_until(
        lambda: Project.objects.get(pk=project.pk).status == Project.Status.AWAITING_APPROVAL,
        message="characters were not generated\n",
        stack=stack,
    )
    first, second = Character.objects.filter(project=project).order_by("id")

    login(page, "paula", next_url="/admin/")
    screenshot(page, "20-admin-index")
    page.click("#producer-tools >> text=Cast approval")
    page.wait_for_selector(f"#cast-character-{first.pk} img")
    screenshot(page, "21-admin-cast-approval")

    page.fill(f"textarea[name='description-{first.pk}']", "A harbour pilot with salt in her hair.")
    page.click(f"#cast-character-{first.pk} button[name='approve']")
    page.wait_for_selector("text=Approved: ")
    assert not Job.objects.filter(project=project, type=Job.Type.SCENES).exists()
    page.fill(f"input[name='reason-{second.pk}']", "Too similar to the pilot")
    page.click(f"#cast-character-{second.pk} button[name='reject']")
    page.wait_for_selector("text=Rejected: ")
    page.wait_for_selector("text=scene generation has started")
    screenshot(page, "22-admin-cast-decided")

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.description) == (
        "approved",
        "A harbour pilot with salt in her hair.",
    )
    assert (second.status, second.rejection_reason) == ("rejected", "Too similar to the pilot")
    # The last decision opened the gate: the pipeline moves on by itself.
    assert Job.objects.filter(project=project, type=Job.Type.SCENES).exists()
    page.goto("/admin/projects/character/")
    screenshot(page, "23-admin-character-changelist")

    # The staff dashboard shows the rest of the pipeline as it happens.
    page.goto(f"/dashboard/projects/{project.pk}/")
    page.wait_for_selector("#final-film", timeout=30_000)
    page.wait_for_function("() => document.querySelector('#final-film').duration > 0")
    assert page.locator(".tree video.clip").count() == 1
    screenshot(page, "24-dashboard-project-complete")


def test_a_non_staff_user_is_refused_the_dashboard(page, stack):
    make_user("nora")
    login(page, "nora")
    response = page.goto("/dashboard/")
    assert response.status == 403
    assert page.text_content("h1") == "Staff only"
    screenshot(page, "30-dashboard-refused")
    assert page.goto("/dashboard/jobs/").status == 403


@pytest.mark.skipif(
    not (ROOT / "director" / "urls.py").exists(), reason="the director API is not built yet"
)
def test_the_director_answers_in_the_studio_and_acts_on_the_page(page, stack):
    user = make_user("dora")
    project = ProjectFactory(owner=user, title="Night Ferry")
    login(page, "dora", next_url=f"/studio/?project={project.pk}")
    page.wait_for_selector("#project-title:text('Night Ferry')")

    page.fill("#director-input", "Take me to the storyboard")
    page.click("#director-send")
    page.wait_for_selector(".bubble.assistant[data-complete]")
    assert page.get_attribute("body", "data-navigated") == "storyboard"
    assert "storyboard" in page.text_content(".bubble.assistant .text").lower()
    assert page.locator(".tool-call[data-tool='navigate']").count() == 1

    page.fill("#director-input", "highlight generate-button")
    page.press("#director-input", "Enter")
    page.wait_for_selector(".bubble.assistant[data-complete] >> nth=1")
    page.wait_for_selector("#generate-characters.highlighted")
    screenshot(page, "05-studio-director")
    assert page.console_errors == []
