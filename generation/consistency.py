"""Is the keyframe still the cast? Each keyframe is scored against the portraits of the
characters in its shot.

- With Gemini, a vision question to the text model: the keyframe and the portraits go in, a
  structured verdict per character comes back (score 0..1 and the issues: face, hair, wardrobe,
  age). It is a paid call like any other: it reports its usage into the step's meter.
- Offline, a stand-in, said plainly: the offline image model draws a swatch of each reference
  image's colour (`providers.local.draw_marks`); the judge reads each swatch back and compares
  it with the portrait's colour. It can tell a keyframe drawn without a character's portrait
  (or with another's) from one drawn with it, nothing more.

`threshold` says when a keyframe is drawn again (project `min_consistency`, else the
MIN_CONSISTENCY setting with the Gemini judge; off offline unless the project sets it)."""

import io
import logging
import math
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any

from django.conf import settings
from PIL import Image
from pydantic import BaseModel, Field, create_model

from generation import estimates
from generation.providers import text_choice, text_provider
from generation.providers.base import ProviderError
from generation.providers.local import mark_box, mean_colour
from generation.schemas import Name, cast_name
from projects.models import Character, Project

logger = logging.getLogger(__name__)

JUDGE_PROMPT = (
    "The first image is a keyframe of a film. The images after it are the reference portraits "
    "of these characters, in this order: {names}. For each character, score from 0 to 1 how "
    "faithfully the keyframe shows them as in their portrait (1: unmistakably the same person; "
    "0: absent or someone else), and list what differs (face, hair, wardrobe, age, build). "
    "Judge identity, not pose, framing or light."
)


class CharacterScore(BaseModel):
    name: Name = Field(description="The character's exact name, as listed")
    score: float = Field(ge=0, le=1, description="0 (someone else or absent) to 1 (the same)")
    issues: list[str] = Field(description="What differs from the portrait, briefly")


class Judgement(BaseModel):
    characters: list[CharacterScore]

    @classmethod
    def for_cast(cls, names: list[str]) -> type["Judgement"]:
        """A score per character, each named from the enum of those in the shot."""
        return _judgement(tuple(names))


@cache
def _judgement(names: tuple[str, ...]) -> Any:
    row = create_model(
        "CharacterScore",
        __base__=CharacterScore,
        __module__=__name__,
        name=(cast_name(names), Field(description="The character's exact name, as listed")),
    )
    return create_model(
        "Judgement", __base__=Judgement, __module__=__name__, characters=(list[row], ...)
    )


@dataclass
class Verdict:
    score: float  # the lowest of the characters' (one drifting face spoils the shot)
    per_character: list[dict] = field(default_factory=list)
    checked_by: str = ""

    @property
    def issues(self) -> list[str]:
        return [f"{c['name']}: {issue}" for c in self.per_character for issue in c["issues"]]

    def as_dict(self) -> dict:
        return asdict(self)


def judge(keyframe: bytes, cast: list[Character], portraits: list[bytes]) -> Verdict | None:
    """The keyframe's verdict against `cast` (their `portraits` in the same order); None for a
    shot without characters."""
    if not cast:
        return None
    if text_choice()[0] == "local":
        return local_verdict(keyframe, cast, portraits)
    return _model_verdict(keyframe, cast, portraits)


def judge_or_none(keyframe: bytes, cast: list[Character], portraits: list[bytes]) -> Verdict | None:
    """`judge`, but a judge that fails (a rate limit, a refusal) leaves the keyframe unscored
    rather than losing a paid image."""
    try:
        return judge(keyframe, cast, portraits)
    except ProviderError as error:
        logger.warning("consistency judge failed, keyframe left unscored: %s", error.message)
        return None


def redraw_price() -> Decimal:
    """What one more try of a keyframe costs (the image and its judging), as quoted."""
    items = estimates.keyframes(["x" * estimates.UNWRITTEN_PROMPT_CHARS], references=2, in_shot=1)
    return estimates.total(items)


def _model_verdict(keyframe: bytes, cast: list[Character], portraits: list[bytes]) -> Verdict:
    provider = text_provider()
    answer = provider.generate_json(
        prompt=JUDGE_PROMPT.format(names=", ".join(c.name for c in cast)),
        schema=Judgement.for_cast([c.name for c in cast]),
        images=[keyframe, *portraits],
    )
    by_name = {a.name.casefold(): a for a in answer.characters}
    rows = []
    for character in cast:
        found = by_name.get(character.name.casefold())
        # A character the judge left out is not vouched for: it counts as absent.
        score = round(found.score, 3) if found else 0.0
        issues = list(found.issues) if found else ["not assessed by the judge"]
        rows.append(_row(character, score, issues))
    return Verdict(min(r["score"] for r in rows), rows, f"{provider.name}:{provider.model}")


def local_verdict(keyframe: bytes, cast: list[Character], portraits: list[bytes]) -> Verdict:
    with Image.open(io.BytesIO(keyframe)) as image:
        picture = image.convert("RGB")
    rows = []
    for slot, (character, portrait) in enumerate(zip(cast, portraits, strict=True)):
        region = picture.crop(mark_box(slot, *picture.size)).resize((1, 1), Image.Resampling.BOX)
        seen, wanted = region.getpixel((0, 0)), mean_colour(portrait)
        distance = math.dist(seen, wanted)  # type: ignore[arg-type]
        score = round(max(0.0, 1 - distance / 120), 3)
        issues = (
            [] if score >= 0.9 else [f"its mark is {distance:.0f} colour steps from the portrait's"]
        )
        rows.append(_row(character, score, issues))
    return Verdict(min(r["score"] for r in rows), rows, "local:swatch-colour (a stand-in)")


def _row(character: Character, score: float, issues: list[str]) -> dict:
    return {"character_id": character.pk, "name": character.name, "score": score, "issues": issues}


def threshold(project: Project) -> float | None:
    if project.min_consistency is not None:
        return project.min_consistency
    return None if text_choice()[0] == "local" else settings.MIN_CONSISTENCY


def issues_instructions(verdict: Verdict) -> str:
    """The judge's issues as instructions for the next try."""
    return "Keep the characters exactly as in their portraits; fix: " + "; ".join(verdict.issues)
