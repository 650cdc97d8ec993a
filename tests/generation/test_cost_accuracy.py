"""The quote against the bill, through the real SDKs: a 3x3 and a 6x4 film made against the fake
Gemini and fal servers, which report usage the way the real ones do and record what they billed.
The quote before anything ran is within 10 % of the ledger; the ledger is exactly the bill."""

from decimal import Decimal

import pytest

from generation.models import SpendEntry
from generation.rates import cost
from projects.models import Project
from tests.factories import ProjectFactory
from tests.pipeline import drain

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def billed_usd(gemini, fal, fal_model: str) -> Decimal:
    """What the fake servers say they billed, priced on the same rate card."""
    total = Decimal(0)
    for call in gemini.billed_usage():
        output = call.get("candidatesTokenCount", 0) + call.get("thoughtsTokenCount", 0)
        kind = "audio_tokens" if "tts" in call["model"] else "output_tokens"
        parts = {"input_tokens": call.get("promptTokenCount", 0), kind: output}
        total += cost("gemini", call["model"], parts)
    for seconds in fal.billed_seconds().values():
        total += cost("fal", fal_model, {"video_second": seconds})
    return total


def make_film(api, project: Project) -> None:
    body = {"project_id": project.pk}  # the default cast of 4, as the quote assumes
    assert api.post("/api/jobs/character-generation", body, format="json").status_code == 202
    drain()
    for character in project.characters.all():
        assert api.post(f"/api/characters/{character.pk}/approve").status_code == 200
    drain()
    project.refresh_from_db()
    assert project.status == Project.Status.COMPLETE, project.status


@pytest.mark.parametrize("scenes,frames", [(3, 3), (6, 4)])
def test_the_quote_is_within_ten_percent_and_the_ledger_is_the_bill(
    api, user, gemini, fal, settings, scenes, frames
):
    settings.SPEECH_PROVIDER = "local"  # text, images and clips here; speech is free offline
    project = ProjectFactory(
        owner=user, num_scenes=scenes, frames_per_scene=frames, clip_seconds=5, budget_usd=None
    )
    quote = api.get(f"/api/projects/{project.pk}/estimate").json()
    make_film(api, project)
    ledger = sum((e.usd for e in SpendEntry.objects.filter(project=project)), Decimal(0))
    bill = billed_usd(gemini, fal, settings.FAL_MODEL)
    estimate = Decimal(str(quote["total_usd"]))
    print(
        f"\n{scenes}x{frames}: estimate ${estimate:.4f}, ledger ${ledger:.4f}, billed ${bill:.4f}"
    )
    assert ledger == bill
    assert project.spent_usd == ledger
    assert abs(estimate - ledger) / ledger <= Decimal("0.10")
    clips = SpendEntry.objects.filter(project=project, quantity_unit="video_second")
    assert clips.count() == scenes * frames
