"""The storyboard checkpoint in a real browser: the studio stops before the clips by default,
and the producer's "Approve storyboard" makes the film (uvicorn and an RQ worker underneath)."""

import pytest
from django.contrib.auth import get_user_model

from generation.models import GenerationJob
from projects.models import Project, Video
from tests.pages.conftest import PASSWORD, login, screenshot, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The server checks passwords with the default hashers, so users are hashed with one."""


def test_a_producer_approves_the_storyboard_in_the_studio(page, stack):
    get_user_model().objects.create_user(username="sasha", password=PASSWORD)
    login(page, "sasha")
    page.wait_for_selector("#project-form")
    assert page.is_checked("#f-storyboard")  # on by default
    page.fill("#f-title", "Tidewater")
    page.fill("#f-scenes", "1")
    page.fill("#f-frames", "2")
    page.fill("#f-seconds", "2")
    page.click("#create-project")
    page.wait_for_selector("#project-view:not([hidden]) #project-title:text('Tidewater')")
    project = Project.objects.get(title="Tidewater")
    assert project.checkpoints == ["cast", "storyboard"]

    page.fill("#character-count", "2")
    page.click("#generate-characters")
    page.click("#confirm-go")  # each paid step after its quote (tests/pages/test_studio_money.py)
    page.wait_for_selector(".character .approve >> nth=1")
    page.click("#approve-all")
    page.click("#confirm-go")
    # The keyframes are drawn, then the pipeline stops: the button asks for the approval.
    page.wait_for_selector("#storyboard-approval:not([hidden]) #approve-storyboard", timeout=60_000)
    assert page.locator("#frame-list img").count() == 2
    assert page.get_attribute("body", "data-project-status") == "awaiting_storyboard_approval"
    assert page.locator("#stepper li.now").text_content() == "Storyboard"
    project.refresh_from_db()
    assert project.status == Project.Status.AWAITING_STORYBOARD_APPROVAL
    assert not Video.objects.filter(frame__scene__project=project).exists()
    assert not project.jobs.filter(type=GenerationJob.Type.VIDEOS).exists()
    screenshot(page, "20-studio-storyboard-approval")

    page.click("#approve-storyboard")
    page.wait_for_selector("#confirm[open] .quote-items tr[data-stage='clips']")
    assert not project.jobs.filter(type=GenerationJob.Type.VIDEOS).exists()  # only quoted
    page.click("#confirm-go")
    page.wait_for_selector("text=Storyboard approved")
    page.wait_for_function(
        "() => { const v = document.querySelector('#final-film');"
        " return v && !v.hidden && v.readyState >= 1 && isFinite(v.duration) && v.duration > 0; }",
        timeout=60_000,
    )
    assert page.is_hidden("#storyboard-approval")
    assert page.locator("#clip-list video").count() == 2
    wait_until(
        lambda: Project.objects.get(pk=project.pk).status == Project.Status.COMPLETE,
        message="the film did not complete",
        stack=stack,
    )
    screenshot(page, "21-studio-storyboard-approved")
    assert page.console_errors == []
