"""POST /api/director/confirm: a held call runs once, for its own user and session, in time."""

from datetime import timedelta

import pytest
from django.utils import timezone

from director.models import DirectorConfirmation, DirectorMessage, DirectorSession, DirectorTurn
from director.services import call_hash
from filmstudio.support import read_events
from generation.models import GenerationJob
from projects.models import Project
from tests.director.helpers import counts_of, types_of
from tests.factories import CharacterFactory, FrameFactory, ProjectFactory, SceneFactory

pytestmark = pytest.mark.django_db

CONFIRM = "/api/director/confirm"


@pytest.fixture
def film(user):
    project = ProjectFactory(
        owner=user, status=Project.Status.COMPLETE, num_scenes=3, frames_per_scene=3
    )
    mara = CharacterFactory(project=project, name="Mara", status="approved")
    for s in (1, 2, 3):
        scene = SceneFactory(project=project, order=s)
        scene.characters.add(mara)
        for f in (1, 2, 3):
            FrameFactory(scene=scene, order=f, image=f"frames/{s}-{f}.png")
    return project


def stream(api, url: str, body: dict) -> list:
    response = api.post(url, body, format="json")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/event-stream"
    return read_events(response.streaming_content)


def ask(api, film, message="make the second scene more tense and regenerate its frames"):
    body = {"message": message, "page": "storyboard", "project_id": film.pk}
    return stream(api, "/api/director/stream", body)


def confirm_event(events):
    return next(e.data for e in events if e.type == "confirm")


def test_the_reported_case_asks_first_then_redraws_only_that_scene(api, film):
    asked = ask(api, film)

    confirm = confirm_event(asked)
    scene = film.scenes.get(order=2)
    assert confirm["name"] == "regenerate_scene"
    assert confirm["args"] == {
        "scene_id": scene.pk,
        "kind": "keyframes",
        "instructions": "more tense",
    }
    assert counts_of(confirm["estimate"]) == {"images": 3}
    assert "scene 2" in confirm["summary"]
    call = next(
        e.data for e in asked if e.type == "function_call" and e.data["name"] == "regenerate_scene"
    )
    assert call["result"]["confirmation_required"] is True
    names = [(e.type, e.data.get("name")) for e in asked]
    # The confirm event follows the call it is about.
    assert names[names.index(("function_call", "regenerate_scene")) + 1] == (
        "confirm",
        "regenerate_scene",
    )
    assert not GenerationJob.objects.exists()

    session_id = asked[0].data["session_id"]
    events = stream(api, CONFIRM, {"session_id": session_id, "token": confirm["token"]})

    assert types_of(events) == ["start", "function_call", "message", "complete"]
    done = events[1].data
    assert done["name"] == "regenerate_scene"
    assert done["args"] == confirm["args"]
    jobs = GenerationJob.objects.order_by("pk")
    assert [j.type for j in jobs] == ["keyframe-generation"] * 3
    assert sorted(j.target_id for j in jobs) == sorted(scene.frames.values_list("pk", flat=True))
    assert {j.params["instructions"] for j in jobs} == {"more tense"}
    assert [j["id"] for j in done["result"]["jobs"]] == [j.pk for j in jobs]
    assert "Started: job" in events[-1].data["text"]
    film.refresh_from_db()
    assert film.status == Project.Status.COMPLETE
    assert film.scenes.count() == 3


def test_the_confirmed_turn_is_stored_in_the_session(api, film):
    asked = ask(api, film, "make frame 2 of scene 2 darker")
    session_id = asked[0].data["session_id"]
    stream(api, CONFIRM, {"session_id": session_id, "token": confirm_event(asked)["token"]})

    turn = DirectorTurn.objects.order_by("pk").last()
    assert turn.status == DirectorTurn.Status.COMPLETE
    assert turn.provider == "confirm"
    roles = list(turn.messages.values_list("role", flat=True))
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert turn.messages.first().text.startswith("Confirmed: Draw the keyframe of frame 2")
    tool = turn.messages.get(role=DirectorMessage.Role.TOOL).function_calls[0]
    assert tool["result"]["job"]["type"] == "keyframe-generation"
    session = api.get(f"/api/director/sessions/{session_id}").json()
    assert len(session["messages"]) == len(DirectorMessage.objects.filter(session_id=session_id))


def test_a_token_works_once(api, film):
    asked = ask(api, film, "make frame 2 of scene 2 darker")
    body = {"session_id": asked[0].data["session_id"], "token": confirm_event(asked)["token"]}
    stream(api, CONFIRM, body)

    again = api.post(CONFIRM, body, format="json")
    assert again.status_code == 409
    assert "already used" in again.json()["detail"]
    assert GenerationJob.objects.count() == 1


def test_an_expired_token_is_a_409(api, film):
    asked = ask(api, film, "make frame 2 of scene 2 darker")
    DirectorConfirmation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    body = {"session_id": asked[0].data["session_id"], "token": confirm_event(asked)["token"]}

    response = api.post(CONFIRM, body, format="json")
    assert response.status_code == 409
    assert "expired" in response.json()["detail"]
    assert not GenerationJob.objects.exists()


def test_tokens_expire_after_ten_minutes(api, film):
    before = timezone.now()
    ask(api, film, "make frame 2 of scene 2 darker")
    confirmation = DirectorConfirmation.objects.get()
    ttl = confirmation.expires_at - before
    assert timedelta(minutes=9, seconds=59) < ttl <= timedelta(minutes=10, seconds=5)


def test_an_unknown_token_is_a_400(api, film):
    asked = ask(api, film, "make frame 2 of scene 2 darker")
    response = api.post(
        CONFIRM, {"session_id": asked[0].data["session_id"], "token": "guess"}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"token": ["Unknown confirmation token."]}


def test_a_token_of_another_session_is_a_404(api, user, film):
    asked = ask(api, film, "make frame 2 of scene 2 darker")
    mine_too = DirectorSession.objects.create(user=user, page="storyboard")
    response = api.post(
        CONFIRM,
        {"session_id": mine_too.pk, "token": confirm_event(asked)["token"]},
        format="json",
    )
    assert response.status_code == 404
    assert DirectorConfirmation.objects.get().used_at is None


def test_another_user_cannot_confirm(api, other_api, film):
    asked = ask(api, film, "make frame 2 of scene 2 darker")
    body = {"session_id": asked[0].data["session_id"], "token": confirm_event(asked)["token"]}

    response = other_api.post(CONFIRM, body, format="json")
    assert response.status_code == 404
    assert set(response.json()) == {"detail"}
    assert DirectorConfirmation.objects.get().used_at is None
    assert not GenerationJob.objects.exists()


def test_refused_confirmations_spend_no_turn(api, film, settings):
    first = ask(api, film, "make frame 2 of scene 2 darker")
    second = ask(api, film, "make frame 1 of scene 1 darker")
    first_session, second_session = (asked[0].data["session_id"] for asked in (first, second))
    token, expired = (confirm_event(asked)["token"] for asked in (first, second))
    DirectorConfirmation.objects.filter(session_id=second_session).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    settings.DIRECTOR_TURNS_PER_MINUTE = 3  # the two questions took two: one is left
    refusals = [
        ({"session_id": first_session, "token": "guess"}, 400),
        ({"session_id": second_session, "token": token}, 404),
        ({"session_id": second_session, "token": expired}, 409),
    ]
    for body, status in refusals * 2:
        assert api.post(CONFIRM, body, format="json").status_code == status
    events = stream(api, CONFIRM, {"session_id": first_session, "token": token})
    assert types_of(events)[-1] == "complete"
    assert api.post(CONFIRM, refusals[0][0], format="json").status_code == 400


def test_the_token_is_stored_only_as_a_hash_bound_to_the_call(api, film):
    asked = ask(api, film, "make frame 2 of scene 2 darker")
    token = confirm_event(asked)["token"]
    confirmation = DirectorConfirmation.objects.get()
    assert token not in str(DirectorConfirmation.objects.values().get())
    assert confirmation.call_hash == call_hash("regenerate_keyframe", confirmation.args)

    # Arguments changed behind the token's back: what it would do now is not what was agreed.
    DirectorConfirmation.objects.update(args={**confirmation.args, "instructions": "brighter"})
    body = {"session_id": asked[0].data["session_id"], "token": token}
    events = stream(api, CONFIRM, body)
    assert "changed since it was confirmed" in events[1].data["result"]["error"]
    assert not GenerationJob.objects.exists()


def test_a_confirmed_call_that_would_now_do_something_else_does_nothing(api, film):
    asked = ask(api, film)  # scene 2's three keyframes: {"images": 3}
    assert counts_of(confirm_event(asked)["estimate"]) == {"images": 3}
    film.scenes.get(order=2).frames.get(order=3).delete()  # meanwhile, the scene changed
    body = {"session_id": asked[0].data["session_id"], "token": confirm_event(asked)["token"]}
    events = stream(api, CONFIRM, body)
    error = events[1].data["result"]["error"]
    assert "changed since it was confirmed" in error and "'images': 2" in error
    assert not GenerationJob.objects.exists()


def test_the_same_call_asked_twice_is_paid_for_once(api, film):
    first = ask(api, film, "make frame 2 of scene 2 darker")
    session = first[0].data["session_id"]
    body = {"message": "make frame 2 of scene 2 darker", "page": "storyboard"}
    second = stream(
        api, "/api/director/stream", {**body, "project_id": film.pk, "session_id": session}
    )
    tokens = [confirm_event(first)["token"], confirm_event(second)["token"]]
    assert tokens[0] != tokens[1]
    stream(api, CONFIRM, {"session_id": session, "token": tokens[1]})
    again = api.post(CONFIRM, {"session_id": session, "token": tokens[0]}, format="json")
    assert again.status_code == 409
    assert GenerationJob.objects.count() == 1


def test_a_refusal_at_confirmation_time_is_a_tool_result(api, film):
    asked = ask(api, film, "make frame 2 of scene 2 darker")
    frame = film.scenes.get(order=2).frames.get(order=2)
    GenerationJob.objects.create(
        project=film, type="keyframe-generation", target_type="frame", target_id=frame.pk
    )
    body = {"session_id": asked[0].data["session_id"], "token": confirm_event(asked)["token"]}

    events = stream(api, CONFIRM, body)
    assert types_of(events) == ["start", "function_call", "message", "complete"]
    assert "Cannot change" in events[1].data["result"]["error"]
    assert events[-1].data["text"].startswith("That could not be done:")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"session_id": 1},
        {"token": "x"},
        {"session_id": "1", "token": "x"},
        {"session_id": 1, "token": 5},
    ],
)
def test_invalid_bodies_are_a_400(api, body):
    assert api.post(CONFIRM, body, format="json").status_code == 400


def test_it_requires_authentication(client):
    response = client.post(
        CONFIRM, {"session_id": 1, "token": "x"}, content_type="application/json"
    )
    assert response.status_code == 401


def test_edits_need_no_confirmation(api, film):
    events = ask(api, film, "change the camera of frame 1 in scene 3 to a close-up")
    assert "confirm" not in types_of(events)
    assert film.scenes.get(order=3).frames.get(order=1).camera == "a close-up"
