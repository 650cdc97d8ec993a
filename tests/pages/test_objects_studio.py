"""Objects in the studio (issue 15), in a real browser over uvicorn and an RQ worker: an object
added from the page gets its reference image; scene generation proposes it for the scene whose
story mentions it; its image is edited by an instruction and redrawn (the take strip grows, the
keyframes of its scene go stale and no other); a scene's objects are changed on its card; an
object is deleted."""

import pytest
from django.contrib.auth import get_user_model

from generation import services as generation
from generation.models import GenerationJob
from generation.pipeline import start_character_generation
from projects.models import Character, Frame, Project, ProjectObject, Take
from projects.services import project_create
from tests.pages.conftest import PASSWORD, login, screenshot, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The server checks passwords with the default hashers, so users are hashed with one."""


@pytest.fixture
def project(stack) -> Project:
    owner = get_user_model().objects.create_user(username="odile", password=PASSWORD)
    return project_create(
        owner=owner,
        title="The Lamp",
        synopsis="She polishes the brass lamp. The storm breaks.",
        num_scenes=2,
        frames_per_scene=1,
        clip_seconds=2,
        checkpoints=["cast", "storyboard"],
    )


def storyboard(stack, project: Project) -> None:
    start_character_generation(project=project, count=1)
    wait_until(
        lambda: project.characters.filter(status=Character.Status.PENDING).exists(),
        message="no character was drawn",
        stack=stack,
    )
    generation.character_approve(character=project.characters.get())
    wait_until(
        lambda: (
            Project.objects.get(pk=project.pk).status == Project.Status.AWAITING_STORYBOARD_APPROVAL
        ),
        timeout=60,
        message="the storyboard was not drawn",
        stack=stack,
    )


def add_lamp(page, project: Project) -> ProjectObject:
    page.fill("#object-name", "Brass lamp")
    page.fill("#object-description", "a dented ship's lamp")
    page.click("#add-object")
    page.wait_for_selector("#object-list .card.object img.portrait", timeout=30_000)
    lamp = ProjectObject.objects.get(project=project)
    assert lamp.name == "Brass lamp" and lamp.take.kind == Take.Kind.REFERENCE
    card = page.locator(f"#object-{lamp.pk}")
    assert card.locator("img.portrait").get_attribute("alt") == "Reference image of Brass lamp"
    assert card.locator(".in-scenes").text_content() == "In no scene yet"
    assert page.is_hidden("#objects-empty")
    return lamp


def edit_then_redraw(page, lamp: ProjectObject, stale: Frame, fresh: Frame) -> None:
    """Edited by an instruction, then redrawn with instructions, each after its quote."""
    original = lamp.take_id
    card = page.locator(f"#object-{lamp.pk}")
    card.locator(".edit-image-open").click()
    card.locator(".edit-image-form textarea").fill("paint it green")
    card.locator(".edit-image-go").click()
    page.wait_for_selector("#confirm[open] #confirm-title:text('Edit the reference image')")
    assert "current image and your instruction" in page.text_content("#confirm-body")
    page.click("#confirm-go")
    page.wait_for_selector(f"#object-{lamp.pk} .take >> nth=1", timeout=30_000)
    lamp.refresh_from_db()
    assert lamp.take_id != original
    assert lamp.take.prompt == "Edit this image: paint it green; keep everything else."
    page.wait_for_selector(f"#frame-{stale.pk}[data-stale]")
    assert "the scene's objects changed" in page.text_content(f"#frame-{stale.pk} .stale-note")
    assert page.locator(f"#frame-{fresh.pk}[data-stale]").count() == 0
    shown = page.locator(f"#object-{lamp.pk} .take.current").get_attribute("data-take")
    assert shown == str(lamp.take_id)
    screenshot(page, "40-studio-object-edited")

    card = page.locator(f"#object-{lamp.pk}")
    card.locator(".regen-open").click()
    card.locator(".regen-form textarea").fill("brighter brass")
    card.locator(".regen-go").click()
    page.wait_for_selector("#confirm[open] #confirm-title:text('Regenerate the reference image')")
    page.click("#confirm-go")
    page.wait_for_selector(f"#object-{lamp.pk} .take >> nth=2", timeout=30_000)
    lamp.refresh_from_db()
    assert lamp.take.instructions == "brighter brass" and lamp.takes.count() == 3
    page.wait_for_selector(f"#object-{lamp.pk} .take.current[data-take='{lamp.take_id}']")


def test_objects_are_added_proposed_edited_redrawn_and_deleted_in_the_studio(page, stack, project):
    login(page, "odile", next_url=f"/studio/?project={project.pk}")
    page.wait_for_selector("#project-view:not([hidden])")
    page.wait_for_selector("body[data-live='on']")
    assert page.is_visible("#objects-empty")
    lamp = add_lamp(page, project)

    # the scenes are written: the first one's story mentions the lamp
    storyboard(stack, project)
    first, second = project.scenes.order_by("order")
    page.wait_for_selector(f"#scene-{first.pk} .scene-objects:has-text('Objects: Brass lamp')")
    assert page.text_content(f"#scene-{second.pk} .scene-objects").startswith("No objects")
    page.wait_for_selector(f"#object-{lamp.pk} .in-scenes:text('In scene 1')")
    frame_one, frame_two = (Frame.objects.get(scene=s) for s in (first, second))
    assert page.locator("#frame-list [data-stale]").count() == 0
    edit_then_redraw(page, lamp, frame_one, frame_two)

    # the second scene given the lamp on its card: its keyframe goes stale too
    scene_card = page.locator(f"#scene-{second.pk}")
    scene_card.locator(".edit-objects").click()
    scene_card.locator(".scene-objects input[type=checkbox]").check()
    scene_card.locator(".save-objects").click()
    page.wait_for_selector(f"#scene-{second.pk} .scene-objects:has-text('Objects: Brass lamp')")
    assert list(second.project_objects.values_list("pk", flat=True)) == [lamp.pk]
    page.wait_for_selector(f"#frame-{frame_two.pk}[data-stale]")
    page.wait_for_selector(f"#object-{lamp.pk} .in-scenes:text('In scenes 1, 2')")

    # deleted (after a confirmation): the scenes no longer list it
    page.locator(f"#object-{lamp.pk} .delete-object").click()
    page.wait_for_selector("#confirm[open] #confirm-title:text('Delete Brass lamp?')")
    page.click("#confirm-go")
    page.wait_for_selector(f"#object-{lamp.pk}", state="detached")
    assert not ProjectObject.objects.filter(pk=lamp.pk).exists()
    page.wait_for_selector(f"#scene-{first.pk} .scene-objects:has-text('No objects')")
    assert page.is_visible("#objects-empty")
    assert page.console_errors == []


def test_a_failed_drawing_is_shown_and_the_jobs_are_not_asked_for_on_every_render(
    page, stack, project
):
    """An object whose drawing failed keeps no image: the page says so, from one look at the
    jobs, and does not ask again each time the project is drawn again (it did, forever)."""
    oar = ProjectObject.objects.create(project=project, name="Oar")
    failed = {"status": "failed", "error": "no image came back"}
    GenerationJob.objects.create(
        project=project, type="reference-generation", target_type="object", target_id=oar.pk,
        **failed,
    )  # fmt: skip
    asked = []
    page.on(
        "request", lambda r: asked.append(r.url) if "type=reference-generation" in r.url else None
    )
    login(page, "odile", next_url=f"/studio/?project={project.pk}")
    page.wait_for_selector("body[data-live='on']")
    page.wait_for_selector(
        f"#object-{oar.pk} [data-drawing]:has-text('Drawing failed: no image came back')"
    )
    for n in range(3):  # three renders (live events of the project)
        generation.project_update(project=project, title=f"The Lamp {n}")
        page.wait_for_selector(f"#project-view:has-text('The Lamp {n}')")
    assert page.is_visible(f"#object-{oar.pk} [data-drawing]:has-text('Drawing failed')")
    assert len(asked) == 1, asked
    assert page.console_errors == []
