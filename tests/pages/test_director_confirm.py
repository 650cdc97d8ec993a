"""The director asks before it spends: its confirm prompt shows as buttons in the studio; "No"
starts nothing, "Yes" carries out exactly the asked-for call (real uvicorn, worker, Chromium)."""

import pytest

from generation.models import GenerationJob
from projects.models import Frame, Project
from tests.pages.conftest import finished_film, login, screenshot, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
Job = GenerationJob


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The server checks passwords with the default hashers, so users are hashed with one."""


@pytest.fixture
def film(stack) -> Project:
    return finished_film(stack, username="vera", title="Salt Road")


def ask(page, message: str, nth: int) -> None:
    page.fill("#director-input", message)
    page.click("#director-send")
    page.wait_for_selector(f".bubble.assistant[data-complete] >> nth={nth}")


def test_a_director_action_waits_for_the_producers_yes(page, stack, film):
    login(page, "vera", next_url=f"/studio/?project={film.pk}")
    page.wait_for_selector("#project-title:text('Salt Road')")
    page.evaluate("document.getElementById('storyboard').scrollIntoView({block: 'start'})")
    frame = Frame.objects.filter(scene__project=film).order_by("order").first()
    redos = Job.objects.filter(type=Job.Type.KEYFRAME)

    ask(page, "redo the keyframe of frame 1 of scene 1, darker", 0)
    page.wait_for_selector(".director-confirm [data-confirm-yes]")
    screenshot(page, "director-confirm")
    assert redos.count() == 0  # asked, not done
    page.click(".director-confirm [data-confirm-no]")
    page.wait_for_selector(".director-confirm >> text=nothing was spent")
    assert redos.count() == 0

    ask(page, "redo the keyframe of frame 1 of scene 1, darker", 1)
    page.click(".director-confirm >> nth=1 >> [data-confirm-yes]")
    page.wait_for_selector(".bubble.assistant[data-complete] >> nth=2")
    wait_until(lambda: redos.filter(status=Job.Status.SUCCEEDED).count() == 1, stack=stack)
    job = redos.get()
    assert (job.target_id, job.params.get("instructions")) == (frame.pk, "darker")
    assert page.locator(".tool-call[data-tool='regenerate_keyframe']").count() >= 1
    assert page.console_errors == []
