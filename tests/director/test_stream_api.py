"""POST /api/director/stream: what is refused before streaming, and the stream's framing."""

import pytest

from director.models import DirectorMessage, DirectorSession, DirectorTurn
from filmstudio.support import read_events
from tests.director.helpers import types_of
from tests.factories import ProjectFactory

URL = "/api/director/stream"
pytestmark = pytest.mark.django_db


def post(client, body, **headers):
    return client.post(URL, body, format="json", headers={"Accept": "text/event-stream", **headers})


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    return response.json()


def test_it_requires_authentication(client):
    response = client.post(
        URL, {"message": "hi", "page": "dashboard"}, content_type="application/json"
    )
    assert_json_error(response, 401)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"page": "dashboard"}, "message"),
        ({"message": "", "page": "dashboard"}, "message"),
        ({"message": "   \n ", "page": "dashboard"}, "message"),
        ({"message": 42, "page": "dashboard"}, "message"),
        ({"message": "hi"}, "page"),
        ({"message": "hi", "page": "settings"}, "page"),
        ({"message": "hi", "page": "dashboard", "project_id": "1"}, "project_id"),
        ({"message": "hi", "page": "dashboard", "session_id": 0}, "session_id"),
        ({"message": "hi", "page": "dashboard", "mood": "sunny"}, "mood"),
    ],
)
def test_invalid_requests_are_a_json_400(api, body, field):
    assert field in assert_json_error(post(api, body), 400)
    assert not DirectorSession.objects.exists()


def test_an_over_long_message_is_a_400(api, settings):
    settings.DIRECTOR_MAX_MESSAGE_CHARS = 10
    body = assert_json_error(post(api, {"message": "x" * 11, "page": "dashboard"}), 400)
    assert body == {"message": ["Ensure this field has no more than 10 characters."]}
    assert post(api, {"message": "x" * 10, "page": "dashboard"}).status_code == 200


def test_someone_elses_project_is_a_404(api, other_user):
    theirs = ProjectFactory(owner=other_user)
    body = {"message": "status", "page": "project", "project_id": theirs.pk}
    assert set(assert_json_error(post(api, body), 404)) == {"detail"}
    assert not DirectorTurn.objects.exists()


def test_someone_elses_session_is_a_404(api, other_user):
    theirs = DirectorSession.objects.create(user=other_user, page="dashboard")
    body = {"message": "hi", "page": "dashboard", "session_id": theirs.pk}
    assert set(assert_json_error(post(api, body), 404)) == {"detail"}
    assert not DirectorTurn.objects.exists()


def test_too_many_turns_are_a_429_with_a_clear_message(api, settings):
    settings.DIRECTOR_TURNS_PER_MINUTE = 2
    for _ in range(2):
        assert post(api, {"message": "hi", "page": "dashboard"}).status_code == 200
    response = post(api, {"message": "hi", "page": "dashboard"})
    body = assert_json_error(response, 429)
    assert body["detail"].startswith("Too many director turns: at most 2 per minute.")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert DirectorTurn.objects.count() == 2


def test_the_rate_limit_is_per_user(api, other_api, settings):
    settings.DIRECTOR_TURNS_PER_MINUTE = 1
    assert post(api, {"message": "hi", "page": "dashboard"}).status_code == 200
    assert post(api, {"message": "hi", "page": "dashboard"}).status_code == 429
    assert post(other_api, {"message": "hi", "page": "dashboard"}).status_code == 200


def test_invalid_requests_do_not_use_up_turns(api, settings):
    settings.DIRECTOR_TURNS_PER_MINUTE = 1
    for _ in range(3):
        post(api, {"message": "", "page": "dashboard"})
    assert post(api, {"message": "hi", "page": "dashboard"}).status_code == 200


def test_a_turn_refused_with_a_409_spends_no_turn(api, user, settings):
    settings.DIRECTOR_TURNS_PER_MINUTE = 1
    session = DirectorSession.objects.create(user=user, page="dashboard")
    DirectorTurn.objects.create(session=session, page="dashboard")  # still running
    busy = {"message": "hi", "page": "dashboard", "session_id": session.pk}
    for _ in range(3):
        assert post(api, busy).status_code == 409
    assert post(api, {"message": "hi", "page": "dashboard"}).status_code == 200
    assert post(api, {"message": "hi", "page": "dashboard"}).status_code == 429


def test_a_session_answers_one_turn_at_a_time(api, user):
    session = DirectorSession.objects.create(user=user, page="dashboard")
    DirectorTurn.objects.create(session=session, page="dashboard")
    body = {"message": "hi", "page": "dashboard", "session_id": session.pk}
    assert "still answering" in assert_json_error(post(api, body), 409)["detail"]


def test_a_turn_lost_long_ago_does_not_block_the_session(api, user, settings):
    settings.DIRECTOR_TURN_TIMEOUT = 1
    session = DirectorSession.objects.create(user=user, page="dashboard")
    lost = DirectorTurn.objects.create(session=session, page="dashboard")
    DirectorTurn.objects.filter(pk=lost.pk).update(created_at="2020-01-01T00:00:00Z")
    body = {"message": "hi", "page": "dashboard", "session_id": session.pk}

    assert post(api, body).status_code == 200
    lost.refresh_from_db()
    assert lost.status == DirectorTurn.Status.FAILED


def test_the_stream_is_sse_without_caching_or_buffering(api):
    response = post(api, {"message": "hi", "page": "dashboard"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    assert response["X-Accel-Buffering"] == "no"
    assert "Content-Encoding" not in response
    events = read_events(response.streaming_content)
    assert types_of(events)[0] == "start"
    assert types_of(events)[-1] == "complete"


def test_event_ids_name_the_session_channel(api):
    events = read_events(post(api, {"message": "hi", "page": "dashboard"}).streaming_content)
    session_id = events[0].data["session_id"]
    ids = [int(e.id.removeprefix(f"director-{session_id}:")) for e in events]
    assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_inside_a_transaction_the_turn_runs_inline_and_is_stored(api, user):
    """Here the test holds a transaction a turn thread could not see into."""
    events = read_events(post(api, {"message": "hello", "page": "dashboard"}).streaming_content)

    assert types_of(events)[-1] == "complete"
    assert "You are on the Dashboard page" in events[-1].data["text"]
    turn = DirectorTurn.objects.get()
    assert turn.status == DirectorTurn.Status.COMPLETE
    assert list(DirectorMessage.objects.values_list("role", flat=True)) == ["user", "assistant"]


def test_a_turn_that_fails_ends_with_an_error_event(api, settings):
    settings.DIRECTOR_PROVIDER = "gemini"  # without keys
    events = read_events(post(api, {"message": "hi", "page": "dashboard"}).streaming_content)

    assert types_of(events) == ["start", "error"]
    assert events[-1].data == {"message": "The director could not answer: GEMINI_API_KEYS is empty"}
    turn = DirectorTurn.objects.get()
    assert turn.status == DirectorTurn.Status.FAILED
    assert turn.error == events[-1].data["message"]
