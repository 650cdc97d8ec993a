"""The stream behind a real ASGI server (uvicorn on loopback): disconnects, first-byte latency."""

import time

import httpx
import pytest
from rest_framework.authtoken.models import Token

from director.models import DirectorTurn
from filmstudio.support import first_event, iter_events, read_events, wait_for
from tests.asgi_server import uvicorn_in_thread
from tests.director.helpers import types_of
from tests.factories import CharacterFactory, ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server_url():
    with uvicorn_in_thread() as url:
        yield url


@pytest.fixture
def http(user, server_url):
    token, _ = Token.objects.get_or_create(user=user)
    headers = {"Authorization": f"Token {token.key}", "Accept": "text/event-stream"}
    with httpx.Client(base_url=server_url, headers=headers, timeout=10) as client:
        yield client


@pytest.fixture
def project(user):
    project = ProjectFactory(owner=user, status="awaiting_approval")
    for name in ("Mara", "Elias", "Noor"):
        CharacterFactory(project=project, name=name)
    return project


def test_a_client_that_leaves_mid_turn_loses_nothing(http, project, settings):
    settings.DIRECTOR_LOCAL_DELAY = 0.03  # a turn of a second or so, to leave in the middle of
    body = {"message": "approve all", "page": "characters", "project_id": project.pk}
    with http.stream("POST", "/api/director/stream", json=body) as response:
        assert response.status_code == 200
        stream = iter_events(response.iter_text())
        start = first_event(stream, "start").data
        first_event(stream, "message")
    # The connection is closed: the server cancels the response's iterator, not the turn.
    turn = DirectorTurn.objects.get(pk=start["turn_id"])
    assert turn.status == DirectorTurn.Status.RUNNING

    wait_for(
        lambda: DirectorTurn.objects.get(pk=turn.pk).status != DirectorTurn.Status.RUNNING,
        timeout=10,
        interval=0.02,
    )
    turn.refresh_from_db()
    assert turn.status == DirectorTurn.Status.COMPLETE
    assert set(project.characters.values_list("status", flat=True)) == {"approved"}
    assert list(turn.messages.values_list("role", flat=True)) == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    # Everything it said after the client left is on the channel, for a resuming client.
    session_id = start["session_id"]
    with http.stream(
        "GET",
        f"/api/director/sessions/{session_id}/events",
        headers={"Last-Event-ID": f"director-{session_id}:0"},
    ) as replay:
        complete = first_event(iter_events(replay.iter_text()), "complete").data
    assert "Mara is now approved. Elias is now approved. Noor is now approved." in complete["text"]


def test_the_stream_is_not_buffered_by_the_server(http, project, settings):
    settings.DIRECTOR_LOCAL_DELAY = 0.05
    body = {"message": "status", "page": "project", "project_id": project.pk}
    arrivals = []
    with http.stream("POST", "/api/director/stream", json=body) as response:
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache"
        assert "content-encoding" not in response.headers
        for chunk in response.iter_text():
            arrivals.append((time.monotonic(), chunk))
    events = read_events(chunk for _, chunk in arrivals)
    assert types_of(events)[-1] == "complete"
    # Words arrive spread over the turn, not all at once at the end.
    assert arrivals[-1][0] - arrivals[0][0] > 0.5
    assert len(arrivals) > 10
