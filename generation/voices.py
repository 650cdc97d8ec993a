"""Voices: what the configured speech provider offers (`GET /api/voices`), which voice each
character speaks in, and who narrates.

Character generation gives every new character a voice that fits what its text says (a woman,
an old man, a warm manner) and that no one else in the cast has while the provider has voices
left. A character whose voice the provider does not offer (the provider was changed) speaks in
one chosen the same way, without storing it."""

import hashlib
import re
from collections import Counter
from collections.abc import Iterable

from django.core.exceptions import ValidationError

from generation.providers import speech_voices
from generation.providers.base import Voice
from projects.models import Character

# Who speaks a line without a speaker: the first of these that the provider offers.
NARRATORS = ("Charon", "espeak-ivo")

_CUE_WORDS = {
    "feminine": r"\b(she|her|hers|woman|women|girl|mother|daughter|sister|wife|queen|lady|"
    r"female|grandmother|aunt|widow|actress|mrs|ms|niece)\b",
    "masculine": r"\b(he|him|his|man|men|boy|father|son|brother|husband|king|lord|male|"
    r"grandfather|uncle|widower|actor|mr|sir|nephew)\b",
    "mature": r"\b(old|older|elder|elderly|aged|veteran|grey|gray|grizzled|wise|retired|"
    r"grand(?:mother|father)|widow(?:er)?)\b",
    "young": r"\b(young|teen|teenage|child|kid|youth|student|apprentice|girl|boy)\b",
    "warm": r"\b(warm|gentle|kind|soft|tender|calm)\b",
    "bright": r"\b(bright|sharp|quick|restless|curious|lively|cheerful|excitable)\b",
    "low": r"\b(deep|gravelly|gruff|booming|rough)\b",
}
# Compiled at import, which the worker does before it forks: not again in every job process.
_CUES = {trait: re.compile(pattern) for trait, pattern in _CUE_WORDS.items()}
_AGE = re.compile(r"\b(?:around|aged?|about)\s+(\d{1,2})\b|\b(\d{1,2})[- ]year[- ]old\b", re.I)


def offered() -> list[Voice]:
    return speech_voices()


def voice_ids() -> list[str]:
    return [v.id for v in offered()]


def check_voice(voice: str) -> str:
    """A voice id the configured provider offers, else a ValidationError (400) naming some."""
    ids = voice_ids()
    if voice not in ids:
        raise ValidationError(
            {
                "voice": [
                    f"Unknown voice {voice!r}: one of {', '.join(ids[:12])}"
                    + (", ..." if len(ids) > 12 else "")
                    + " (GET /api/voices)."
                ]
            }
        )
    return voice


def traits_of(character: Character) -> Counter[str]:
    """What the character's text says about how they sound."""
    text = " ".join(
        [character.role, character.description, character.appearance, character.personality]
    ).lower()
    found: Counter[str] = Counter()
    for trait, pattern in _CUES.items():
        found[trait] = len(pattern.findall(text))
    for match in _AGE.finditer(text):
        age = int(match.group(1) or match.group(2))
        found["mature" if age >= 50 else "young" if age <= 30 else "neutral"] += 2
    # A character both "she" and "he" is read by whichever the text says more often.
    if found["feminine"] and found["masculine"]:
        weaker = "feminine" if found["feminine"] < found["masculine"] else "masculine"
        found[weaker] = 0
    return found


def _tie_break(character: Character, voice: Voice) -> int:
    digest = hashlib.sha256(f"{character.name}|{voice.id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _score(character: Character, voice: Voice, traits: Counter[str]) -> tuple[int, int]:
    gender = 3 * sum(traits[t] for t in ("feminine", "masculine") if t in voice.traits)
    rest = sum(traits[t] for t in voice.traits if t not in ("feminine", "masculine"))
    return (gender + rest, _tie_break(character, voice))


def pick_voice(character: Character, taken: Iterable[str]) -> str:
    """The best-fitting voice that nobody in `taken` speaks in (once every voice is taken,
    the least used); deterministic for the same character and cast."""
    voices = offered()
    if not voices:
        return ""
    used = Counter(taken)
    fewest = min(used.get(v.id, 0) for v in voices)
    free = [v for v in voices if used.get(v.id, 0) == fewest]
    traits = traits_of(character)
    return max(free, key=lambda v: _score(character, v, traits)).id


def assign_voices(characters: list[Character], *, taken: Iterable[str] = ()) -> None:
    """Give each of `characters` without an offered voice one (unsaved: the caller saves)."""
    known = set(voice_ids())
    used = [v for v in taken if v in known]
    for character in characters:
        if character.voice not in known:
            character.voice = pick_voice(character, used)
        used.append(character.voice)


def cast_voices(project_id: int, exclude: Iterable[int] = ()) -> list[str]:
    """The voices already spoken by a project's cast (rejected characters give theirs back)."""
    return list(
        Character.objects.filter(project_id=project_id)
        .exclude(status=Character.Status.REJECTED)
        .exclude(pk__in=list(exclude))
        .values_list("voice", flat=True)
    )


def narrator_voice() -> str:
    ids = voice_ids()
    return next((v for v in NARRATORS if v in ids), ids[0] if ids else "")


def voice_for(character: Character | None, cast: list[Character] | None = None) -> str:
    """The voice a line is spoken in: its speaker's, or the narrator's. A voice the provider
    does not offer is picked against the rest of the cast: `cast` (all of the project's
    characters) or, without it, the cast read from the database."""
    if character is None:
        return narrator_voice()
    if character.voice in set(voice_ids()):
        return character.voice
    if cast is None:
        others = cast_voices(character.project_id, exclude=[character.pk])
    else:
        others = [
            c.voice for c in cast if c.pk != character.pk and c.status != Character.Status.REJECTED
        ]
    return pick_voice(character, others)
