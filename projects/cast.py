"""Who is in a shot, and so whose portraits its keyframe is drawn with; and which cast members
or objects a model's names mean."""

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
    aside). Unknown names are dropped."""
    found: list[Named] = []
    for name in names:
        character = _match(name, cast)
        if character is not None and character not in found:
            found.append(character)
    return found


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


def _match(name: str, cast: list[Named]) -> Named | None:
    wanted = _fold(name)
    if not wanted:
        return None
    exact = [c for c in cast if _fold(c.name) == wanted]
    if exact:
        return exact[0]
    partial = [c for c in cast if wanted in _fold(c.name).split() or _fold(c.name) in wanted]
    return partial[0] if len(partial) == 1 else None


def mentioned(text: str, cast: list[Character]) -> list[Character]:
    """Cast members whose name (or a part of it of 3+ letters) appears in `text`."""
    named = set(mentioned_names(text, [c.name for c in cast]))
    return [c for c in cast if c.name in named]


def mentioned_names(text: str, names: list[str]) -> list[str]:
    """The names of `names` that appear in `text`, whole or by a word of 3+ letters of them."""
    words = set(_fold(text).replace(":", " ").replace(",", " ").replace(".", " ").split())
    return [n for n in names if any(len(p) >= 3 and p in words for p in _fold(n).split())]
