"""Producer control in a real browser (uvicorn and an RQ worker underneath): a shot edited in
place goes stale, one keyframe is redone with instructions, an older take is picked again, and
"Update stale" redoes exactly what is stale and re-cuts the film."""

import pytest

from generation.models import GenerationJob
from projects.models import Frame, Project, Scene, Take
from tests.pages.conftest import finished_film, login, screenshot, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The server checks passwords with the default hashers, so users are hashed with one."""


@pytest.fixture
def film(stack) -> Project:
    return finished_film(stack, username="petra", title="Low Tide")


def open_studio(page, project: Project) -> None:
    login(page, "petra", next_url=f"/studio/?project={project.pk}")
    page.wait_for_selector("#project-view:not([hidden]) #clip-list video >> nth=1")
    page.wait_for_selector("body[data-live='on']")


def frames_of(project: Project) -> list[Frame]:
    return list(Frame.objects.filter(scene__project=project).order_by("order"))


def test_a_shot_edited_in_place_goes_stale_and_update_stale_redoes_it(page, stack, film):
    first, second = frames_of(film)
    open_studio(page, film)
    assert page.is_hidden("#stale-box")
    card = page.locator(f"#frame-{first.pk}")

    card.locator("[data-field='prompt'] .value").click()
    box = card.locator("[data-field='prompt'] .edit-box")
    box.fill("The keeper climbs the stairs in a gale, lantern swinging")
    box.press("Enter")
    page.wait_for_selector(f"#frame-{first.pk}[data-stale] .badge.s-stale")
    assert "prompt" in page.get_attribute(f"#frame-{first.pk} .badge.s-stale", "title")
    assert "prompt" in card.locator(".stale-note").text_content()
    first.refresh_from_db()
    assert first.prompt == "The keeper climbs the stairs in a gale, lantern swinging"
    page.wait_for_selector(f"#clip-{first.pk}[data-stale]")  # the clip depends on the prompt
    assert page.locator(f"#frame-{second.pk}[data-stale]").count() == 0
    page.wait_for_selector("#stale-box:not([hidden]) #update-stale:text('Update stale (2)')")

    # The camera line too, saved by leaving the box; a refused save keeps the box and says why.
    card.locator("[data-field='camera'] .value").click()
    page.route(
        "**/api/frames/*",
        lambda route: (
            route.fulfill(status=409, json={"detail": "A job is drawing this frame; wait."})
            if route.request.method == "PATCH"
            else route.continue_()
        ),
    )
    card.locator("[data-field='camera'] .edit-box").fill("Low angle, wide")
    card.locator("[data-field='camera'] .btn.primary").click()
    page.wait_for_selector(f"#frame-{first.pk} [data-field='camera'] .field-error:text('wait')")
    page.unroute("**/api/frames/*")
    page.console_errors.clear()  # Chromium logs the refused PATCH we made up
    card.locator("[data-field='camera'] .edit-box").fill("Low angle, wide")
    page.locator(f"#frame-{second.pk} [data-field='dialogue'] .value").click()  # blur saves
    page.wait_for_selector(
        f"#frame-{first.pk} [data-field='camera'] .value:text('Low angle, wide')"
    )
    page.keyboard.press("Escape")
    first.refresh_from_db()
    assert first.camera == "Low angle, wide"
    screenshot(page, "30-studio-shot-stale")
    page.screenshot(path="/tmp/studio-stale.png", full_page=True)

    # The scene's text is edited the same way.
    page.locator(f"#scene-{first.scene_id} [data-field='title'] .value").click()
    page.locator(f"#scene-{first.scene_id} [data-field='title'] .edit-box").fill("Gale")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#scene-{first.scene_id} [data-field='title'] .value:text('Gale')")
    assert Scene.objects.get(pk=first.scene_id).title == "Gale"
    # The scene's text is an input of both keyframes (not of the clips): three units are stale.
    page.wait_for_selector(f"#frame-{second.pk}[data-stale]")
    assert page.locator(f"#clip-{second.pk}[data-stale]").count() == 0
    page.wait_for_selector("#update-stale:text('Update stale (3)'):not([disabled])")

    update_stale_and_wait(page, stack, film, first, second)


def update_stale_and_wait(page, stack, film, first, second) -> None:
    films_before = Take.objects.filter(project=film, kind=Take.Kind.FILM).count()
    page.click("#update-stale")
    page.wait_for_selector("#confirm[open] .stale-units li")
    # the dry run lists what will be redone (the 3 stale units, then what follows them: the
    # second clip, whose keyframe is redone, and the cut); nothing has started yet
    assert page.locator("#confirm .stale-units li").count() == 5
    assert page.locator(f"#confirm [data-unit='keyframe-{first.pk}']").count() == 1
    follows = page.locator("#confirm .stale-units li[data-follows]")
    assert [follows.nth(i).get_attribute("data-unit") for i in range(follows.count())] == [
        f"clip-{second.pk}",
        f"film-{film.pk}",
    ]
    assert not film.jobs.filter(type=GenerationJob.Type.REFRESH).exists()
    page.screenshot(path="/tmp/studio-refresh-dry-run.png")
    page.click("#confirm-go")
    page.wait_for_selector("text=Refresh #")
    page.screenshot(path="/tmp/studio-refresh-running.png")
    job = wait_until(lambda: film.jobs.filter(type=GenerationJob.Type.REFRESH).first())
    wait_until(
        lambda: GenerationJob.objects.get(pk=job.pk).status == GenerationJob.Status.SUCCEEDED,
        timeout=60,
        message="the refresh did not succeed",
        stack=stack,
    )
    page.wait_for_selector("body[data-stale-count='0']")
    # the stale report may come back empty before the page has the refresh job's last event:
    # the box goes once both say it is done
    page.wait_for_selector("#stale-box", state="hidden")
    assert page.locator(".badge.s-stale").count() == 0
    assert Take.objects.filter(project=film, kind=Take.Kind.FILM).count() == films_before + 1
    page.wait_for_selector(f"#film-takes .take >> nth={films_before}")
    assert page.locator("#film-takes .take.current").count() == 1
    page.screenshot(path="/tmp/studio-refreshed.png", full_page=True)
    assert page.console_errors == []


def test_a_producer_redoes_one_keyframe_and_picks_the_older_take(page, stack, film):
    first, second = frames_of(film)
    original = first.keyframe_take_id
    open_studio(page, film)
    card = page.locator(f"#frame-{first.pk}")
    assert card.locator(".take").count() == 0  # one take: nothing to compare yet

    card.locator(".regen-open").click()
    card.locator(".regen-form textarea").fill("warmer light, closer on the lantern")
    card.locator(".regen-go").click()
    page.wait_for_selector("#confirm[open] #confirm-title:text('Regenerate the keyframe')")
    assert "image model once" in page.text_content("#confirm-body")
    page.screenshot(path="/tmp/studio-regenerate-confirm.png")
    page.click("#confirm-cancel")  # a no spends nothing
    assert not film.jobs.filter(type=GenerationJob.Type.KEYFRAME).exists()
    card.locator(".regen-go").click()
    page.click("#confirm-go")
    page.wait_for_selector(f"#frame-{first.pk} .take >> nth=1", timeout=30_000)
    first.refresh_from_db()
    newest = Take.objects.filter(frame=first, kind=Take.Kind.KEYFRAME).first()
    assert newest.pk == first.keyframe_take_id != original
    assert "warmer light" in newest.instructions
    assert card.locator(".take").count() == 2
    assert card.locator(".take").first.get_attribute("data-take") == str(newest.pk)
    assert card.locator(".take.current").get_attribute("data-take") == str(newest.pk)
    page.wait_for_selector(f"#clip-{first.pk}[data-stale]")  # downstream is stale, not redone
    assert page.locator(f"#frame-{second.pk} .take").count() == 0
    page.screenshot(path="/tmp/studio-takes.png", full_page=True)
    screenshot(page, "31-studio-keyframe-takes")

    card.locator(f".take[data-take='{original}']").click()
    page.wait_for_selector("#confirm[open] #confirm-go:text('Use this take')")
    page.screenshot(path="/tmp/studio-take-preview.png")
    page.click("#confirm-go")
    page.wait_for_selector(f"#frame-{first.pk} .take.current[data-take='{original}']")
    first.refresh_from_db()
    assert first.keyframe_take_id == original
    assert page.locator(f"#frame-{first.pk} .take").count() == 2

    # A portrait the same way: both keyframes (the character is in the scene) go stale.
    character = film.characters.get()
    portrait = page.locator(f"#character-{character.pk}")
    portrait.locator(".regen-open").click()
    portrait.locator(".regen-go").click()
    page.wait_for_selector("#confirm[open] #confirm-title:text('portrait')")
    page.click("#confirm-go")
    page.wait_for_selector(f"#character-{character.pk} .take >> nth=1", timeout=30_000)
    page.wait_for_selector(f"#frame-{second.pk}[data-stale]")
    assert f"portrait of {character.name} changed" in page.text_content(
        f"#frame-{second.pk} .stale-note"
    )
    page.screenshot(path="/tmp/studio-portrait-takes.png")
    assert page.console_errors == []


def test_escape_puts_the_text_back_and_saves_nothing(page, stack, film):
    first, _ = frames_of(film)
    open_studio(page, film)
    card = page.locator(f"#frame-{first.pk}")
    card.locator("[data-field='prompt'] .value").click()
    card.locator("[data-field='prompt'] .edit-box").fill("Not what I meant")
    page.keyboard.press("Escape")
    page.wait_for_selector(f"#frame-{first.pk} [data-field='prompt'] .value")
    card.locator("[data-field='camera'] .value").click()
    card.locator("[data-field='camera'] .edit-box").fill("Not this either")
    card.locator("[data-field='camera'] .btn:text('Cancel')").click()
    page.wait_for_timeout(500)  # a stray save would have been sent by now
    before = Frame.objects.get(pk=first.pk)
    assert (before.prompt, before.camera) == (first.prompt, first.camera)
    assert page.locator(".badge.s-stale").count() == 0
