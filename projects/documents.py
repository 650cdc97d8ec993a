"""The project document (`GET /api/projects/{id}`) built in one pass from plain rows.

The same JSON as `ProjectDetailSerializer` (a test compares them byte for byte on a rich
project), without model instances or nested serializers: eight queries of plain rows compiled once
per process and prepared by PostgreSQL once per connection (`filmstudio.queries`), each unit's
current take joined to its row, the takes' staleness from `projects.takes.unit_states` (the
units' inputs documents built from light rows, and only for units whose take recorded inputs),
and dicts written out in the serializers' field order (bench 4e).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.http import Http404

from filmstudio.queries import CompiledQuery, bound_cursor
from media.signing import blob_url
from projects import services
from projects.models import Character, Frame, Project, ProjectObject, Scene, Take
from projects.selectors import projects_for_user
from projects.serializers import ProjectObjectSerializer
from projects.takes import (
    NO_TAKES,
    RECORDED_FIELDS,
    InputsNow,
    Recorded,
    UnitTakes,
    unit_states,
)

Row = dict[str, Any]
_CENTS, _MICROS = Decimal("0.01"), Decimal("0.000001")


class _Many:
    """A to-many relation already fetched: `.all()` as a prefetched manager answers it."""

    def __init__(self, items: list):
        self._items = items

    def all(self) -> list:
        return self._items


class _Unit:
    """A row as the attributes `take_states` reads of a unit (every column of its model, its
    relations set by the builder)."""

    def __init__(self, row: Row, **relations: Any):
        self.__dict__.update(row)
        self.__dict__.update(relations)
        self.pk = row["id"]


def _when(value: datetime | None) -> str | None:
    """DRF's DateTimeField: ISO 8601 in the current time zone (UTC), `Z` for +00:00."""
    if not value:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _decimal(value: Decimal | None, step: Decimal) -> Decimal | None:
    return None if value is None else value.quantize(step)


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _takes(state: UnitTakes) -> Row:
    return {
        "take_id": state.take_id,
        "takes_count": state.takes_count,
        "stale": state.stale,
        "stale_reasons": state.reasons,
    }


def _columns(model) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


@dataclass(frozen=True)
class _Owner:
    """Who `projects_for_user` scopes the compiled project query to (its id a stand-in)."""

    pk: int
    is_authenticated: bool = True


# Ids that stand for the project's and its owner's in a query compiled once (beyond any id).
_PROJECT, _OWNER = 2**62 + 17, 2**62 + 29


def _compiled(build: Callable[[int, int], QuerySet], *takes: str) -> CompiledQuery:
    """A document query compiled once: `rows(project id, owner id)`; the inputs of the current
    takes joined through `takes` stay JSON text (`Recorded` parses them if a take is stale)."""
    return CompiledQuery(build, _PROJECT, _OWNER, raw=tuple(f"{t}__inputs" for t in takes))


def _take_columns(pointer: str) -> list[str]:
    """The columns `staleness` reads of the current take a unit points at (`pointer`), joined."""
    return [f"{pointer}__{name}" for name in RECORDED_FIELDS]


def _recorded(rows: list[Row], pointer: str, into: dict[int, Recorded]) -> None:
    """The current takes in `rows` (joined by `_take_columns(pointer)`), by take id."""
    names = _take_columns(pointer)
    for row in rows:
        pk = row[f"{pointer}_id"]
        if pk is not None:
            into[pk] = Recorded(*(row[name] for name in names))


def _pairs_query(through, owner: str, other: str, path: str) -> CompiledQuery:
    return _compiled(
        lambda pid, _: (
            through.objects.filter(**{path: pid}).order_by(other).values_list(owner, other)
        )
    )


def _pairs(query: CompiledQuery, pid: int, cursor) -> dict[int, list[int]]:
    """A many-to-many table's rows as {owner id: [other ids ascending]}."""
    found: dict[int, list[int]] = {}
    for left, right in query.rows(pid, 0, cursor=cursor):
        found.setdefault(left, []).append(right)
    return found


_PROJECT_ROW = _compiled(
    lambda pid, owner: (
        projects_for_user(cast(AbstractBaseUser, _Owner(owner)))
        .filter(pk=pid)
        .values(*_columns(Project), *_take_columns("film_take"))
    ),
    "film_take",
)


def _units_of(model: type[Character] | type[ProjectObject]) -> CompiledQuery:
    """A project's characters or objects with their current takes, in id order."""
    return _compiled(
        lambda pid, _: (
            model.objects.filter(project_id=pid)
            .order_by("id")
            .values(*_columns(model), *_take_columns("take"))
        ),
        "take",
    )


_CHARACTERS = _units_of(Character)
_OBJECTS = _units_of(ProjectObject)
# What the document and the frames' and scenes' inputs read of them (not their timestamps).
_SCENE_COLUMNS = (
    "id",
    "order",
    *services.SCENE_FIELDS,
    "status",
    "cast_fallback",
)
_FRAME_COLUMNS = (
    "id",
    "scene_id",
    "order",
    *services.FRAME_FIELDS,
    "duration",
    "speaker_id",
    "status",
    "image",
    "keyframe_take_id",
    "line_take_id",
)
_SCENES = _compiled(
    lambda pid, _: Scene.objects.filter(project_id=pid).order_by("order").values(*_SCENE_COLUMNS)
)
_FRAMES = _compiled(
    lambda pid, _: (
        Frame.objects.filter(scene__project_id=pid)
        .order_by("scene__order", "order")
        .values(
            *_FRAME_COLUMNS,
            "speaker__voice",
            "video__id",
            "video__status",
            "video__file",
            "video__duration",
            "video__take_id",
            "keyframe_take__consistency",
            "line_take__file",
            "line_take__duration",
            *_take_columns("keyframe_take"),
            *_take_columns("line_take"),
            *_take_columns("video__take"),
        )
    ),
    "keyframe_take",
    "line_take",
    "video__take",
)
_SCENE_CAST = _pairs_query(
    Scene.characters.through, "scene_id", "character_id", "scene__project_id"
)
_SCENE_OBJECTS = _pairs_query(
    Scene.project_objects.through, "scene_id", "projectobject_id", "scene__project_id"
)
_SHOT_CAST = _pairs_query(
    Frame.characters.through, "frame_id", "character_id", "frame__scene__project_id"
)


def project_document(user, project_id: int) -> Row:
    """The project with its whole hierarchy, as `ProjectDetailSerializer` writes it; 404 when
    `user` does not own it."""
    if not user.is_authenticated:  # as projects_for_user: nobody's project
        raise Http404
    with bound_cursor() as cursor:
        found = _PROJECT_ROW.rows(project_id, user.pk, cursor=cursor)
        if not found:
            raise Http404
        project = found[0]
        pid = project["id"]
        characters = _CHARACTERS.rows(pid, 0, cursor=cursor)
        objects = _OBJECTS.rows(pid, 0, cursor=cursor)
        scenes = _SCENES.rows(pid, 0, cursor=cursor)
        frames = _FRAMES.rows(pid, 0, cursor=cursor)
        scene_cast = _pairs(_SCENE_CAST, pid, cursor)
        scene_objects = _pairs(_SCENE_OBJECTS, pid, cursor)
        shot_cast = _pairs(_SHOT_CAST, pid, cursor)
        units = (characters, objects, scenes, frames, scene_cast, scene_objects, shot_cast)
        states = _states(project, *units, cursor=cursor)

    def state(kind: str, pk: int) -> UnitTakes:
        return states.get((kind, pk), NO_TAKES)

    frames_of: dict[int, list[Row]] = {}
    for frame in frames:
        frames_of.setdefault(frame["scene_id"], []).append(_frame(frame, shot_cast, states))
    return {
        "id": pid,
        **{name: project[name] for name in services.PROJECT_FIELDS},
        "budget_usd": _decimal(project["budget_usd"], _CENTS),
        "min_consistency": _float(project["min_consistency"]),
        "spent_usd": _decimal(project["spent_usd"], _MICROS),
        "status": project["status"],
        "progress": project["progress"],
        "final_video_url": blob_url(project["final_video"]),
        "final_duration": _float(project["final_duration"]),
        "created_at": _when(project["created_at"]),
        "updated_at": _when(project["updated_at"]),
        **_takes(state(Take.Kind.FILM, pid)),
        "characters": [_character(c, state) for c in characters],
        "objects": [_object(o, state) for o in objects],
        "scenes": [
            {
                "id": s["id"],
                "order": s["order"],
                "title": s["title"],
                "concise_plot": s["concise_plot"],
                "detailed_plot": s["detailed_plot"],
                "dialogue": s["dialogue"],
                "location": s["location"],
                "mood": s["mood"],
                "status": s["status"],
                "character_ids": scene_cast.get(s["id"], []),
                "object_ids": scene_objects.get(s["id"], []),
                "cast_fallback": s["cast_fallback"],
                "frames": frames_of.get(s["id"], []),
            }
            for s in scenes
        ],
    }


def _character(c: Row, state) -> Row:
    return {
        "id": c["id"],
        "project_id": c["project_id"],
        **{name: c[name] for name in services.CHARACTER_FIELDS},
        "voice": c["voice"],
        "status": c["status"],
        "rejection_reason": c["rejection_reason"],
        "image_url": blob_url(c["image"]),
        **_takes(state(Take.Kind.PORTRAIT, c["id"])),
        "created_at": _when(c["created_at"]),
        "updated_at": _when(c["updated_at"]),
    }


def _object(o: Row, state) -> Row:
    values = {
        **o,
        "image_url": blob_url(o["image"]),
        **_takes(state(Take.Kind.REFERENCE, o["id"])),
        "created_at": _when(o["created_at"]),
        "updated_at": _when(o["updated_at"]),
    }
    return {name: values[name] for name in ProjectObjectSerializer.Meta.fields}


def _frame(f: Row, shot_cast: dict[int, list[int]], states: dict) -> Row:
    pk = f["id"]
    line = None
    if f["line_take_id"] is not None:
        spoken = states.get(("line", pk), NO_TAKES)
        line = {
            "take_id": f["line_take_id"],
            "url": blob_url(f["line_take__file"]),
            "duration": f["line_take__duration"],
            "takes_count": spoken.takes_count,
            "stale": spoken.stale,
            "stale_reasons": spoken.reasons,
        }
    video = None
    if f["video__id"] is not None:
        clip = states.get(("clip", pk), NO_TAKES)
        duration = f["video__duration"]
        video = {
            "id": f["video__id"],
            "status": f["video__status"],
            "video_url": blob_url(f["video__file"]),
            "duration": None if duration is None else float(duration),
            "take_id": clip.take_id,
            "takes_count": clip.takes_count,
            "stale": clip.stale,
            "stale_reasons": clip.reasons,
        }
    keyframe = states.get(("keyframe", pk), NO_TAKES)
    duration = f["duration"]
    return {
        "id": pk,
        "order": f["order"],
        "prompt": f["prompt"],
        "camera": f["camera"],
        "dialogue": f["dialogue"],
        "speaker_id": f["speaker_id"],
        "character_ids": shot_cast.get(pk, []),
        "consistency": f["keyframe_take__consistency"] if f["keyframe_take_id"] else None,
        "duration": None if duration is None else float(duration),
        "status": f["status"],
        "image_url": blob_url(f["image"]),
        "take_id": keyframe.take_id,
        "takes_count": keyframe.takes_count,
        "stale": keyframe.stale,
        "stale_reasons": keyframe.reasons,
        "line": line,
        "video": video,
    }


def _plain(row: Row) -> Row:
    """A row's own columns (not those of the rows it is joined to)."""
    return {k: v for k, v in row.items() if "__" not in k}


def _states(
    project, characters, objects, scenes, frames, scene_cast, scene_objects, shot_cast, cursor
):
    """`take_states` from the rows: the current take of each unit and what it recorded were
    joined to them; the units' inputs now come from light units made from the rows (no model
    instances), built only if a take recorded inputs to compare with."""
    pid = project["id"]
    current: dict[tuple[str, int], int | None] = {
        ("portrait", c["id"]): c["take_id"] for c in characters
    }
    current.update((("keyframe", f["id"]), f["keyframe_take_id"]) for f in frames)
    current.update((("reference", o["id"]), o["take_id"]) for o in objects)
    current.update((("clip", f["id"]), f["video__take_id"]) for f in frames)
    current.update(
        (("line", f["id"]), f["line_take_id"]) for f in frames if f["line_take_id"] or f["dialogue"]
    )
    current[("film", pid)] = project["film_take_id"]
    recorded: dict[int, Recorded] = {}
    _recorded([project], "film_take", recorded)
    _recorded(characters, "take", recorded)
    _recorded(objects, "take", recorded)
    for pointer in ("keyframe_take", "line_take", "video__take"):
        _recorded(frames, pointer, recorded)
    built: list[InputsNow] = []

    def inputs_now(key: tuple[str, int]) -> dict[str, Any]:
        if not built:
            units = (characters, objects, scenes, frames, scene_cast, scene_objects, shot_cast)
            built.append(_inputs_now(project, *units))
        return built[0](key)

    return unit_states(pid, current, recorded, inputs_now, cursor)


def _inputs_now(
    project, characters, objects, scenes, frames, scene_cast, scene_objects, shot_cast
) -> InputsNow:
    """The units' inputs documents, from light units made from the rows."""
    owner = _Unit(_plain(project))
    cast_by_id = {c["id"]: _Unit(_plain(c), project=owner) for c in characters}
    objects_by_id = {o["id"]: _Unit(_plain(o), project=owner) for o in objects}
    scene_units = {
        s["id"]: _Unit(
            s,
            project=owner,
            characters=_Many([cast_by_id[pk] for pk in scene_cast.get(s["id"], [])]),
            project_objects=_Many([objects_by_id[pk] for pk in scene_objects.get(s["id"], [])]),
        )
        for s in scenes
    }
    frame_units = []
    for f in frames:
        video = None
        if f["video__id"] is not None:
            video = _Unit({"id": f["video__id"], "take_id": f["video__take_id"]})
        speaker = None
        if f["speaker_id"] is not None:
            speaker = cast_by_id.get(f["speaker_id"]) or _Unit(
                {"id": f["speaker_id"], "voice": f["speaker__voice"]}
            )
        frame_units.append(
            _Unit(
                _plain(f),
                scene=scene_units[f["scene_id"]],
                characters=_Many([cast_by_id[pk] for pk in shot_cast.get(f["id"], [])]),
                speaker=speaker,
                video=video,
            )
        )
    return InputsNow(
        cast(Project, owner),
        cast(list[Character], list(cast_by_id.values())),
        cast(list[Frame], frame_units),
        cast(list[ProjectObject], list(objects_by_id.values())),
    )
