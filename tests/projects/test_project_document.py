"""The project document built in one pass (projects.documents) is the JSON that
ProjectDetailSerializer writes, byte for byte, on a project with every kind of unit and state:
takes current and older, stale units with their reasons, sound, objects, consistency scores,
missing clips, a rejected character, a budget and a film."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.renderers import JSONRenderer

from projects import selectors
from projects.documents import project_document
from projects.models import Character, Frame, Project, ProjectObject, Take, Video
from projects.serializers import ProjectDetailSerializer
from projects.takes import (
    clip_inputs,
    film_inputs,
    hierarchy_frames,
    keyframe_inputs,
    line_inputs,
    portrait_inputs,
    reference_inputs,
    take_record,
)
from tests.factories import (
    CharacterFactory,
    FrameFactory,
    ProjectFactory,
    SceneFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def serializer_json(user, project_id: int) -> bytes:
    """The document as the serializers write it (what the API answered before)."""
    project = selectors.project_hierarchy(selectors.projects_for_user(user)).get(pk=project_id)
    context = {"take_states": selectors.hierarchy_take_states(project)}
    return JSONRenderer().render(ProjectDetailSerializer(project, context=context).data)


def take(project: Project, kind: str, name: str, inputs: dict, **unit) -> Take:
    """A current take of `kind` for the unit given as `character=`, `frame=` or `obj=`."""
    return take_record(
        project_id=project.pk, kind=kind, file=f"{project.pk}/{name}", inputs=inputs, **unit
    )


@pytest.fixture
def rich(user) -> Project:
    project = ProjectFactory(
        owner=user,
        num_scenes=3,
        frames_per_scene=3,
        budget_usd=Decimal("12.5"),
        min_consistency=0.7,
        checkpoints=["cast", "storyboard"],
        music=Project.Music.GENERATED,
        burn_subtitles=True,
        synopsis='Ünïcode — quotes " and \u2028 line separators',
    )
    Project.objects.filter(pk=project.pk).update(spent_usd=Decimal("1.234567"))
    cast = [
        CharacterFactory(
            project=project,
            name=f"Person {i}",
            voice="espeak-en",
            slot=i,
            status=Character.Status.APPROVED,
        )
        for i in range(3)
    ]
    rejected = CharacterFactory(
        project=project, name="Nobody", status=Character.Status.REJECTED, rejection_reason="no"
    )
    for character in cast:
        for n in range(2 if character == cast[0] else 1):  # an older take, then the current
            name, inputs = f"characters/p{character.pk}-{n}.png", portrait_inputs(character)
            take(project, Take.Kind.PORTRAIT, name, inputs, character=character)
    lamp = ProjectObject.objects.create(project=project, name="Brass lamp", description="old")
    take(project, Take.Kind.REFERENCE, "objects/lamp.png", reference_inputs(lamp), obj=lamp)
    ProjectObject.objects.create(project=project, name="The pier")  # no image yet
    for s in range(1, 4):
        scene = SceneFactory(project=project, order=s, cast_fallback=s == 3)
        scene.characters.set([cast[2], cast[0]] if s < 3 else [*cast, rejected])
        if s == 1:
            scene.project_objects.set([lamp])
        for f in range(1, 4):
            frame = FrameFactory(
                scene=scene,
                order=f,
                dialogue=f"Person 0: line {s}.{f}" if f != 2 else "",
                speaker=cast[0] if f == 1 else None,
                duration=2.5,
            )
            if f == 3:
                frame.characters.set([cast[2], cast[0]])
    frames = hierarchy_frames(project)
    for i, frame in enumerate(frames):
        if i == 8:
            continue  # one frame never drawn
        score = {"score": 0.5 + i / 20, "flagged": i == 3, "per_character": []}
        name, inputs = f"frames/k{frame.pk}.png", keyframe_inputs(frame)
        take(
            project,
            Take.Kind.KEYFRAME,
            name,
            inputs,
            frame=frame,
            consistency=score if i % 2 else None,
        )
    frames = hierarchy_frames(project)
    for i, frame in enumerate(frames[:6]):
        name, inputs = f"videos/c{frame.pk}.mp4", clip_inputs(frame)
        take(project, Take.Kind.CLIP, name, inputs, frame=frame, duration=2.0 + i / 10)
    Video.objects.create(frame=frames[6], status=Video.Status.FAILED)  # a clip that failed
    for frame in frames:
        if frame.dialogue and frame.pk != frames[3].pk:  # one line not spoken yet
            name, inputs = f"lines/l{frame.pk}.wav", line_inputs(frame)
            take(project, Take.Kind.LINE, name, inputs, frame=frame, duration=1.25)
    frames = hierarchy_frames(project)
    project.refresh_from_db()
    take(project, Take.Kind.FILM, "final/film.mp4", film_inputs(project, frames), duration=12.0)
    # Since: a new clip (its unit has two takes; the film is stale), edits that make portraits,
    # keyframes, clips and a line stale, with their reasons.
    again = f"videos/c{frames[1].pk}-again.mp4"
    take(project, Take.Kind.CLIP, again, clip_inputs(frames[1]), frame=frames[1], duration=2.0)
    Character.objects.filter(pk=cast[1].pk).update(appearance="A red coat now.")
    Frame.objects.filter(pk=frames[0].pk).update(camera="Low angle", dialogue="Person 0: new")
    Frame.objects.filter(pk=frames[4].pk).update(prompt="Another prompt")
    ProjectObject.objects.filter(pk=lamp.pk).update(name="Copper lamp")
    Project.objects.filter(pk=project.pk).update(style="watercolour", clip_seconds=3)
    return project


def test_the_one_pass_document_is_the_serializers_json_byte_for_byte(user, rich):
    document = JSONRenderer().render(project_document(user, rich.pk))
    assert document == serializer_json(user, rich.pk)
    doc = project_document(user, rich.pk)
    shots = [f for s in doc["scenes"] for f in s["frames"]]
    # The project is as rich as it means to be: every kind of state is in the comparison.
    assert {c["status"] for c in doc["characters"]} == {"approved", "rejected"}
    assert any(c["takes_count"] == 2 for c in doc["characters"])
    assert any(c["stale"] for c in doc["characters"])
    assert sum(f["stale"] for f in shots) >= 4
    assert {f["video"] is None for f in shots} == {True, False}
    assert any(f["video"] and f["video"]["stale"] for f in shots)
    assert any(f["video"] and f["video"]["video_url"] is None for f in shots)
    assert any(f["line"] and f["line"]["stale"] for f in shots)
    assert any(f["line"] is None and f["dialogue"] for f in shots)
    assert {f["consistency"] is None for f in shots} == {True, False}
    assert any(f["character_ids"] for f in shots) and any(s["object_ids"] for s in doc["scenes"])
    assert any(s["cast_fallback"] for s in doc["scenes"])
    assert any(f["video"] and f["video"]["takes_count"] == 2 for f in shots)
    assert doc["stale"] is True and doc["final_video_url"].startswith("/blob/")
    assert doc["take_id"] is not None and doc["budget_usd"] == Decimal("12.50")
    assert [o["image_url"] is None for o in doc["objects"]] == [False, True]
    # the lamp renamed and the style changed since its reference take; the pier has none
    assert [(o["stale"], o["stale_reasons"], o["takes_count"]) for o in doc["objects"]] == [
        (True, ["name changed", "project style changed"], 1),
        (False, [], 0),
    ]


def test_the_api_answers_the_serializers_json_and_its_queries_do_not_grow(api, user, rich):
    with CaptureQueriesContext(connection) as rich_queries:
        response = api.get(f"/api/projects/{rich.pk}")
    assert response.status_code == 200
    assert response.content == serializer_json(user, rich.pk)
    small = ProjectFactory(owner=user, num_scenes=1, frames_per_scene=1)
    FrameFactory(scene=SceneFactory(project=small, order=1), order=1)
    frame = hierarchy_frames(small)[0]
    take(small, Take.Kind.KEYFRAME, "frames/k.png", keyframe_inputs(frame), frame=frame)
    with CaptureQueriesContext(connection) as small_queries:
        response = api.get(f"/api/projects/{small.pk}")
    assert response.content == serializer_json(user, small.pk)
    assert len(rich_queries.captured_queries) == len(small_queries.captured_queries)


def test_an_empty_project_and_another_users_project(api, user):
    empty = ProjectFactory(owner=user)
    assert JSONRenderer().render(project_document(user, empty.pk)) == serializer_json(
        user, empty.pk
    )
    theirs = ProjectFactory(owner=UserFactory())
    assert api.get(f"/api/projects/{theirs.pk}").status_code == 404
