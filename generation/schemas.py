"""Structured outputs asked of the text model (Pydantic: sent as the response schema).

Text saved into a character column carries that column's length as `maxLength`, and what comes
back longer is cut to it (a logline asking for 300-character titles made every run fail with a
DataError). How many items a plan holds comes from the project, by `Plan.sized(n)`, never from
the prompt's text."""

from functools import cache
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema, create_model

from projects.models import Character, Frame, ProjectObject, Scene


def _cut(limit: int):
    def cut(value: Any) -> Any:
        return value.strip()[:limit] if isinstance(value, str) else value

    return BeforeValidator(cut)


def _column(model, field: str) -> int:
    return model._meta.get_field(field).max_length


NAME_LENGTH = _column(Character, "name")
ROLE_LENGTH = _column(Character, "role")
TITLE_LENGTH = _column(Scene, "title")
LOCATION_LENGTH = _column(Scene, "location")
MOOD_LENGTH = _column(Scene, "mood")
CAMERA_LENGTH = _column(Frame, "camera")
OBJECT_NAME_LENGTH = _column(ProjectObject, "name")
Name = Annotated[str, _cut(NAME_LENGTH), Field(max_length=NAME_LENGTH)]
Role = Annotated[str, _cut(ROLE_LENGTH), Field(max_length=ROLE_LENGTH)]
Title = Annotated[str, _cut(TITLE_LENGTH), Field(max_length=TITLE_LENGTH)]
Location = Annotated[str, _cut(LOCATION_LENGTH), Field(max_length=LOCATION_LENGTH)]
Mood = Annotated[str, _cut(MOOD_LENGTH), Field(max_length=MOOD_LENGTH)]
Camera = Annotated[str, _cut(CAMERA_LENGTH), Field(max_length=CAMERA_LENGTH)]


class Plan(BaseModel):
    """A list the text model writes. `size`, how many items the project asks for, is read by
    the offline provider; it is no part of the schema a model is sent."""

    size: ClassVar[int | None] = None

    @classmethod
    def sized(cls, size: int) -> type[Self]:
        return _sized(cls, size)


@cache
def _sized(plan: type[Plan], size: int) -> type[Plan]:
    # The same name: the same JSON schema as `plan`.
    return type(plan.__name__, (plan,), {"size": size, "__module__": plan.__module__})


class CharacterDraft(BaseModel):
    name: Name = Field(description="Full name, unique in the cast")
    role: Role = Field(description="Role in the story, e.g. protagonist, mentor")
    description: str = Field(description="Who they are and what they want, 1-3 sentences")
    appearance: str = Field(description="Visual description for a portrait: face, age, clothes")
    personality: str = Field(description="Temperament and manner of speaking")


class CastPlan(Plan):
    characters: list[CharacterDraft]


class SceneDraft(BaseModel):
    title: Title
    concise_plot: str = Field(description="One sentence")
    detailed_plot: str = Field(description="A paragraph: what happens, beat by beat")
    dialogue: str = Field(description="Key lines, 'Name: line' per line")
    location: Location
    mood: Mood
    characters: list[Name] = Field(description="Names of the cast members present")


class ScenePlan(Plan):
    scenes: list[SceneDraft]
    # The project's objects (props, places) its scenes name theirs from, read by the offline
    # provider like `size` (in the schema they are the enum of each scene's `objects`).
    object_names: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def for_cast(cls, names: list[str], objects: list[str] | tuple = ()) -> type["ScenePlan"]:
        """The plan whose scenes name their characters from the approved cast only (an enum
        in the response schema: a nickname or a surname alone is refused by the schema) and,
        when the project has objects, the objects each scene uses from an enum of their names
        (`objects`; a name the model paraphrases is read anyway and matched, `match_names`)."""
        return _scene_plan(tuple(names), tuple(dict.fromkeys(objects)))


class CastList(BaseModel):
    """Who is in one scene (the corrective question when a scene named nobody)."""

    characters: list[Name] = Field(description="Names of the cast members present")

    @classmethod
    def for_cast(cls, names: list[str]) -> type["CastList"]:
        return _with_cast(cls, tuple(names), "Exact names of the cast members present")


class FrameDraft(BaseModel):
    prompt: str = Field(description="Image-to-video prompt: subject, action, setting, light")
    characters: list[Name] = Field(
        default_factory=list, description="Names of the characters seen in this shot"
    )
    camera: Camera = Field(description="Shot size and camera movement")
    dialogue: str = Field(description="Line spoken during this shot, or empty")
    speaker: str = Field(
        default="",
        description="Exact name of the character in this scene who speaks the line; empty for "
        "the narrator or when there is no line",
    )


class FramePlan(Plan):
    frames: list[FrameDraft]

    @classmethod
    def for_cast(cls, names: list[str]) -> type["FramePlan"]:
        """The plan whose shots name who is in each, from the scene's cast."""
        return _frame_plan(tuple(names))


def cast_name(names: tuple[str, ...]) -> Any:
    """One of `names`, as an enum in the response schema."""
    return _names(names)


def _names(names: tuple[str, ...]) -> Any:
    # An enum even for one name (a one-value Literal would be a `const`, which response
    # schemas do not take).
    schema = {"type": "string", "enum": list(names)}
    return Annotated[Literal[names], WithJsonSchema(schema)]  # type: ignore[valid-type]


@cache
def _with_cast(model: type[BaseModel], names: tuple[str, ...], description: str) -> Any:
    if not names:
        return model
    field = (list[_names(names)], Field(description=description))  # type: ignore[misc]
    return create_model(
        model.__name__, __base__=model, __module__=model.__module__, characters=field
    )


def _object_name(names: tuple[str, ...]) -> Any:
    # The enum steers the model; what it writes is still read as text (and cut to the column),
    # so a paraphrase is matched to an object rather than failing the plan, and an unknown
    # name dropped.
    schema = {"type": "string", "enum": list(names)}
    return Annotated[str, _cut(OBJECT_NAME_LENGTH), WithJsonSchema(schema)]


@cache
def _scene_plan(names: tuple[str, ...], objects: tuple[str, ...] = ()) -> Any:
    draft = _with_cast(SceneDraft, names, "Exact names of the cast members present")
    if objects:
        used = (
            list[_object_name(objects)],  # type: ignore[misc]
            Field(description="Exact names of the listed objects and places this scene shows"),
        )
        draft = create_model(
            SceneDraft.__name__, __base__=draft, __module__=SceneDraft.__module__, objects=used
        )
    plan = create_model(
        "ScenePlan", __base__=ScenePlan, __module__=ScenePlan.__module__, scenes=(list[draft], ...)
    )
    plan.object_names = objects
    return plan


@cache
def _frame_plan(names: tuple[str, ...]) -> Any:
    draft = _with_cast(
        FrameDraft, names, "Exact names of the characters seen in this shot (of this scene)"
    )
    return create_model(
        "FramePlan", __base__=FramePlan, __module__=FramePlan.__module__, frames=(list[draft], ...)
    )
