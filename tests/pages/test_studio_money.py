"""Money in the studio, in a real browser (uvicorn and an RQ worker underneath, the offline
provider priced by a rate card file so it costs something): every paid step shows the server's
quote (the same request with `dry_run: true`) with Confirm and Cancel, Cancel spends nothing, the
project shows spent / budget, and a project paused for its budget says so and is resumed by
raising the budget from the page."""

import json
import os
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction

from generation import services as generation
from generation.models import GenerationJob, SpendEntry
from generation.selectors import job_quote
from projects.models import Character, Project, Take
from projects.services import project_create
from tests.generation.test_costs import PRICED
from tests.pages.conftest import PASSWORD, login, screenshot, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
Job = GenerationJob


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The server checks passwords with the default hashers, so users are hashed with one."""


@pytest.fixture(scope="module")
def rate_card(tmp_path_factory):
    """The offline provider priced like the real ones, for the web server and the worker."""
    rows = [
        {"provider": "local", "model": "*", "unit": unit, "usd": usd, "as_of": "2026-12-01"}
        for unit, usd in PRICED
    ]
    # an image priced by its tokens, as Gemini's (tests/generation/test_costs.py `priced`)
    rows += [
        {
            "provider": "local",
            "model": "local-image",
            "unit": unit,
            "usd": usd,
            "as_of": "2026-12-01",
        }
        for unit, usd in (("1M_output_tokens", "30"), ("1M_input_tokens", "0.30"))
    ]
    card = tmp_path_factory.mktemp("card") / "rates.json"
    card.write_text(json.dumps({"rates": rows}))
    before = os.environ.get("RATE_CARD_FILE")
    os.environ["RATE_CARD_FILE"] = str(card)  # subprocess_env passes the environment on
    yield card
    if before is None:
        os.environ.pop("RATE_CARD_FILE")
    else:
        os.environ["RATE_CARD_FILE"] = before


@pytest.fixture(scope="module")
def stack(rate_card, stack):
    """The pages' stack, started with the priced rate card."""
    return stack


@pytest.fixture
def priced_here(settings, rate_card):
    """The same card in this process, to compare the page's quote with the server's."""
    settings.RATE_CARD_FILE = str(rate_card)
    settings.TEXT_PROVIDER = settings.IMAGE_PROVIDER = settings.VIDEO_PROVIDER = "local"


def job_posts(page) -> list[dict]:
    """Every job request the page sends, with its body."""
    posts: list[dict] = []
    page.on(
        "request",
        lambda r: (
            posts.append({"url": r.url, **json.loads(r.post_data or "{}")})
            if r.method == "POST" and "/api/jobs/" in r.url
            else None
        ),
    )
    return posts


def test_the_studio_quotes_each_paid_step_and_shows_spent_against_the_budget(
    page, stack, priced_here
):
    owner = get_user_model().objects.create_user(username="petra", password=PASSWORD)
    project = project_create(
        owner=owner,
        title="Salt Flats",
        num_scenes=1,
        frames_per_scene=1,
        clip_seconds=2,
        budget_usd=Decimal("1.00"),
        checkpoints=["cast", "storyboard"],
    )
    posts = job_posts(page)
    login(page, "petra", next_url=f"/studio/?project={project.pk}")
    page.wait_for_selector("#project-view:not([hidden]) #money:not([hidden])")
    assert page.text_content("#money-spent") == "Spent $0.00 of $1.00"
    assert page.get_attribute("#money-bar > span", "style") == "width:0%"

    # Generate characters: the quote first, Cancel spends nothing
    page.fill("#character-count", "1")
    page.click("#generate-characters")
    page.wait_for_selector("#confirm[open] .quote-box")
    quote = job_quote(project, "character-generation", "project", project.pk, {"count": 1})
    assert quote["total_usd"] > 0
    shown = float(page.get_attribute("#confirm .quote-box", "data-quote-total"))
    assert shown == pytest.approx(quote["total_usd"])
    stages = page.locator("#confirm .quote-items tr")
    assert [stages.nth(i).get_attribute("data-stage") for i in range(stages.count())] == [
        "characters",
        "portraits",
    ]
    assert f"${quote['total_usd']:.2f}" in page.text_content("#confirm .quote-total")
    assert "of the $1.00 budget" in page.text_content("#confirm .quote-budget")
    assert page.text_content("#confirm-go") == "Confirm"
    screenshot(page, "40-studio-quote")
    page.click("#confirm-cancel")
    page.wait_for_selector("#confirm:not([open])", state="hidden")
    assert not Job.objects.filter(project=project).exists()
    assert not SpendEntry.objects.filter(project=project).exists()
    assert posts == [
        {"url": f"{stack.url}/api/jobs/character-generation", "project_id": project.pk,
         "count": 1, "dry_run": True},
    ]  # fmt: skip
    assert page.is_enabled("#generate-characters")

    # Confirm: the job runs and the project shows what it spent
    page.click("#generate-characters")
    page.click("#confirm-go")
    character = wait_until(
        lambda: project.characters.filter(status=Character.Status.PENDING).first(),
        message="no character was drawn",
        stack=stack,
    )
    page.wait_for_selector(f"#character-{character.pk} img.portrait")
    # (Playwright reports the page's requests while the test talks to it)
    assert posts[-1] == {
        "url": f"{stack.url}/api/jobs/character-generation", "project_id": project.pk, "count": 1,
    }  # fmt: skip
    spent = Project.objects.get(pk=project.pk).spent_usd
    assert spent > 0
    assert spent == sum(e.usd for e in SpendEntry.objects.filter(project=project))
    page.wait_for_selector("#money-spent:not([data-spent='0'])")
    assert float(page.get_attribute("#money-spent", "data-spent")) == pytest.approx(float(spent))
    assert page.text_content("#money-spent") == f"Spent ${spent:.2f} of $1.00"
    width = page.get_attribute("#money-bar > span", "style")
    assert float(width.removeprefix("width:").removesuffix("%")) == pytest.approx(
        float(spent) * 100
    )

    # A redo of the portrait: its quote (one image) in the same dialog; Cancel, nothing starts
    card = page.locator(f"#character-{character.pk}")
    card.locator(".regen-open").click()
    card.locator(".regen-go").click()
    page.wait_for_selector("#confirm[open] #confirm-title:text('Regenerate the portrait')")
    assert page.get_attribute("#confirm .quote-items tr", "data-stage") == "portraits"
    assert "1 image" in page.text_content("#confirm .quote-items")
    page.click("#confirm-cancel")
    assert posts[-1]["dry_run"] is True and posts[-1]["character_id"] == character.pk
    assert Job.objects.filter(project=project).count() == 1
    card.locator(".regen-form .btn:text('Cancel')").click()

    paused_then_raised(page, stack, project, character, spent)


def paused_then_raised(page, stack, project, character, spent) -> None:
    # A portrait redo queued, then the budget lowered below what is spent (say, by the API in
    # another tab): the queued job pauses, and so does the project
    with transaction.atomic():
        generation.start_portrait_generation(character=character)
        generation.project_update(project=project, budget_usd=Decimal("0.01"))
    assert Project.objects.get(pk=project.pk).status == Project.Status.PAUSED_BUDGET
    page.wait_for_selector("#budget-paused")
    note = page.text_content("#budget-paused")
    assert "Paused to stay within the budget" in note
    assert f"The budget of $0.01 is below what is already spent (${spent:.2f})" in note
    assert page.text_content("#money-spent") == f"Spent ${spent:.2f} of $0.01"
    assert "full" in page.get_attribute("#money-bar", "class")
    assert page.locator("#stepper li.bad:text('Paused: budget')").count() == 1
    page.wait_for_selector("#budget-raise")
    screenshot(page, "41-studio-paused-budget")

    # Raising it from the page (PATCH budget_usd) resumes the paused redo
    offered = page.text_content("#budget-raise")
    page.click("#budget-raise")
    wait_until(
        lambda: Project.objects.get(pk=project.pk).status == Project.Status.AWAITING_APPROVAL,
        message="the project did not resume",
        stack=stack,
    )
    raised = Project.objects.get(pk=project.pk).budget_usd
    assert raised > spent and f"${raised:.2f}" in offered
    wait_until(
        lambda: Take.objects.filter(character=character, kind=Take.Kind.PORTRAIT).count() == 2,
        message="the paused portrait was not redrawn",
        stack=stack,
    )
    page.wait_for_selector("#budget-paused", state="detached")
    now = Project.objects.get(pk=project.pk).spent_usd
    assert now > spent
    page.wait_for_selector(f"#money-spent:text('Spent ${now:.2f} of ${raised:.2f}')")

    # The budget edited in place: a refused value says why and changes nothing
    page.click("#budget-open")
    page.fill("#budget-input", "1000000")
    page.click("#budget-save")
    page.wait_for_selector("#money .field-error:not([hidden])")
    assert "budget_usd" in page.text_content("#money .field-error")
    assert Project.objects.get(pk=project.pk).budget_usd == raised
    page.console_errors.clear()  # Chromium logs the refused PATCH (400)
    page.fill("#budget-input", "3")
    page.click("#budget-save")
    page.wait_for_selector(f"#money-spent:text('Spent ${now:.2f} of $3.00')")
    assert Project.objects.get(pk=project.pk).budget_usd == Decimal("3.00")
    too_little_left(page, project, now)


def too_little_left(page, project, spent) -> None:
    """A quote that does not fit what is left says so; confirmed anyway, the server refuses
    (409, the page shows why) and nothing changes."""
    tight = (spent + Decimal("0.01")).quantize(Decimal("0.01"))
    page.click("#budget-open")
    page.fill("#budget-input", str(tight))
    page.click("#budget-save")
    page.wait_for_selector(f"#money-spent:text('of ${tight}')")
    character = project.characters.get()
    page.locator(f"#character-{character.pk} .approve").click()  # settles the cast: scenes next
    page.wait_for_selector("#confirm[open] #confirm-title:text('start the scenes')")
    page.wait_for_selector("#confirm .quote-box.over .quote-over")
    assert "it would be refused" in page.text_content("#confirm .quote-over")
    assert float(page.get_attribute("#confirm .quote-box", "data-quote-total")) > 0.01
    page.click("#confirm-go")
    page.wait_for_selector("#notice.error:text('Cannot')")
    assert "budget" in page.text_content("#notice")
    page.console_errors.clear()  # Chromium logs the refused POST (409)
    character.refresh_from_db()
    assert character.status == Character.Status.PENDING
    assert not Job.objects.filter(project=project, type=Job.Type.SCENES).exists()
    assert Project.objects.get(pk=project.pk).spent_usd == spent
    assert not page.console_errors, page.console_errors
