"""Bench 9: the quote against the bill. A 3x3 and a 6x4 film through the fake Gemini and fal
servers (real SDKs, 2 real workers): the estimate before anything ran, the ledger after, and
what the fakes billed (they record the usage they reported and the seconds they rendered)."""

# The tables are for people: × (ratios), − and ÷ are meant.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

from decimal import Decimal

from django.test import override_settings

from bench.harness import (
    BenchError,
    Context,
    Result,
    Row,
    StoryGemini,
    bench_user,
    failed_jobs_text,
    warm_fakes,
    workers,
)
from filmstudio.support import wait_for
from generation.models import SpendEntry
from generation.rates import cost
from generation.selectors import project_estimate
from generation.services import character_approve, start_character_generation
from projects.models import Character, Project
from projects.services import project_create
from tests.fakes.fal_server import FakeFal

SHAPES = ((3, 3), (6, 4))
FAL_MODEL = "fal-ai/kling-video/v2.1/standard/image-to-video"
TARGET = 0.10  # |estimate ÷ ledger - 1|


def billed(gemini: StoryGemini, fal: FakeFal) -> Decimal:
    total = Decimal(0)
    for call in gemini.billed_usage():
        output = call.get("candidatesTokenCount", 0) + call.get("thoughtsTokenCount", 0)
        kind = "audio_tokens" if "tts" in call["model"] else "output_tokens"
        total += cost(
            "gemini", call["model"], {"input_tokens": call.get("promptTokenCount", 0), kind: output}
        )
    for seconds in fal.billed_seconds().values():
        total += cost("fal", FAL_MODEL, {"video_second": seconds})
    return total


def _film(ctx: Context, scenes: int, frames: int) -> tuple[Decimal, Decimal, Decimal]:
    gemini = StoryGemini().start()
    fal = FakeFal(latency={"run": 0.0}, concurrency=64).start()
    env = ctx.provider_env(gemini, fal) | {"FAL_MODEL": FAL_MODEL, "SPEECH_PROVIDER": "local"}
    try:
        project = project_create(
            owner=bench_user(),
            title=f"Cost {scenes}x{frames}",
            logline="A lighthouse keeper befriends a storm.",
            num_scenes=scenes,
            frames_per_scene=frames,
            clip_seconds=5,
        )
        # The quote, priced as the workers will be (the fakes' models, not the offline ones).
        with override_settings(
            GEMINI_API_KEYS=["bench-key-1"],
            TEXT_PROVIDER="gemini",
            IMAGE_PROVIDER="gemini",
            FAL_KEY="bench-fal-key",
            VIDEO_PROVIDER="fal",
            FAL_MODEL=FAL_MODEL,
            SPEECH_PROVIDER="local",
        ):
            estimate = Decimal(str(project_estimate(project)["total_usd"]))
        with workers(ctx, env):
            start_character_generation(project=project)

            def done() -> bool:
                status = Project.objects.values_list("status", flat=True).get(pk=project.pk)
                if status == Project.Status.AWAITING_APPROVAL:
                    for character in project.characters.filter(status=Character.Status.PENDING):
                        character_approve(character=character)
                if status in (Project.Status.FAILED, Project.Status.CANCELLED):
                    raise BenchError(f"the film {status}: {failed_jobs_text(project.pk)}")
                return status == Project.Status.COMPLETE

            wait_for(done, timeout=300, interval=0.1, message=f"the {scenes}x{frames} film")
        ledger = sum((e.usd for e in SpendEntry.objects.filter(project=project)), Decimal(0))
        return estimate, ledger, billed(gemini, fal)
    finally:
        gemini.stop()
        fal.stop()


def run(ctx: Context) -> Result:
    warm_fakes()
    rows, notes, data = [], [], {}
    for (scenes, frames), suffix in zip(SHAPES, "ab", strict=True):
        ctx.log(f"cost: a {scenes}x{frames} film through the fakes")
        estimate, ledger, bill = _film(ctx, scenes, frames)
        ratio = float(estimate / ledger) if ledger else None
        rows.append(
            Row(
                f"9{suffix}",
                f"Cost {scenes}×{frames}: estimate ÷ ledger",
                f"${estimate:.4f}",
                f"ledger ${ledger:.4f}",
                ratio,
                target="0.90–1.10",
                holds=ratio is not None and abs(ratio - 1) <= TARGET,
            )
        )
        data[f"{scenes}x{frames}"] = {
            "estimate_usd": float(estimate),
            "ledger_usd": float(ledger),
            "billed_usd": float(bill),
        }
        notes.append(
            f"Bench 9{suffix}: {scenes}×{frames}, 4 characters, 5 s clips on "
            f"{FAL_MODEL}: estimate ${estimate:.4f}, ledger ${ledger:.4f}, the fakes billed "
            f"${bill:.4f} (ledger {'=' if ledger == bill else '≠'} bill)."
        )
    return Result(rows, notes, data)
