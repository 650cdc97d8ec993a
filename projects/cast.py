"""Who is in a shot, and so whose portraits its keyframe is drawn with; and which cast members
or objects a model's names mean."""

import re
from typing import TypeVar

from projects.models import Character, Frame, ProjectObject, Scene

# Anything matched by its name: cast members, and the project's objects (props, places).
Named = TypeVar("Named", Character, ProjectObject)


def scene_cast(scene: Scene) -> list[Character]:
    """The scene's approved characters (a rejected one never reaches a keyframe)."""
    return sorted(
        (c for c in scene.characters.all() if c.status == Character.Status.APPROVED),
        key=lambda c: c.pk,
    )


def shot_cast(frame: Frame) -> list[Character]:
    """The characters in the shot: those the shot list names (approved, of its scene), or when
    it names none, the scene's whole cast."""
    cast = scene_cast(frame.scene)
    named = {c.pk for c in frame.characters.all()}
    in_shot = [c for c in cast if c.pk in named]
    return in_shot or cast


def match_names(names: list[str], cast: list[Named]) -> list[Named]:
    """Cast members (or objects) named in `names`: by exact name, else by a name a model uses
    for them (their first name or surname alone, "the brass lamp" for "Brass lamp", case
    aside), word by word. Unknown and ambiguous names are dropped."""
    found: list[Named] = []
    for name in names:
        character = _match(name, cast)
        if character is not None and character not in found:
            found.append(character)
    return found


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


_WORD = re.compile(r"\w+(?:'\w+)*")  # "mapmaker's" is one word, not "map"
_ARTICLES = ("the", "a", "an")


def _words(text: str) -> tuple[str, ...]:
    """The words of a name, case aside, without a leading article ("the brass lamp")."""
    words = tuple(_WORD.findall(text.casefold()))
    while words and words[0] in _ARTICLES:
        words = words[1:]
    return words


def _within(part: tuple[str, ...], whole: tuple[str, ...]) -> bool:
    """`part`'s words appear in `whole` as a run, in order."""
    n = len(part)
    return any(whole[i : i + n] == part for i in range(len(whole) - n + 1))


def _match(name: str, cast: list[Named]) -> Named | None:
    wanted = _fold(name)
    if not wanted:
        return None
    exact = [c for c in cast if _fold(c.name) == wanted]
    if exact:
        return exact[0]
    # By words, never inside one ("the monkey cage" is not "Key"): the whole name within what
    # was asked ("the brass lamp" for "Brass lamp") or what was asked within the name ("Okafor"
    # for "Elias Okafor"). The one sharing the most words wins ("the brass lamp" is "Brass lamp",
    # not "Lamp"); a tie is ambiguous and matches nobody.
    asked = _words(name)
    if not asked:
        return None
    shared: dict[int, list[Named]] = {}
    for c in cast:
        own = _words(c.name)
        if own and _within(own, asked):
            shared.setdefault(len(own), []).append(c)
        elif own and _within(asked, own):
            shared.setdefault(len(asked), []).append(c)
    if not shared:
        return None
    best = shared[max(shared)]
    return best[0] if len(best) == 1 else None


def mentioned(text: str, cast: list[Character]) -> list[Character]:
    """Cast members whose name (or a part of it of 3+ letters) appears in `text`."""
    named = set(mentioned_names(text, [c.name for c in cast]))
    return [c for c in cast if c.name in named]


def mentioned_names(text: str, names: list[str]) -> list[str]:
    """The names of `names` that appear in `text`, whole or by a word of 3+ letters of them."""
    words = set(_fold(text).replace(":", " ").replace(",", " ").replace(".", " ").split())
    return [n for n in names if any(len(p) >= 3 and p in words for p in _fold(n).split())]
