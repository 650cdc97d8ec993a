"""GET /api/director/sessions/{id}/events: the turn events on the session channel."""

import asyncio
import time

import django_rq
import pytest

from tests.director.helpers import (
    TokenAsyncClient,
    aread_events,
    async_client_for,
    turn_events,
    types_of,
)
from tests.factories import CharacterFactory, ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)


async def until_redis_listener_subscribed(timeout: float = 5.0) -> None:
    """django-eventstream subscribes to Redis in a task of its own, after the first stream."""
    redis = django_rq.get_connection("default")
    deadline = time.monotonic() + timeout
    while not dict(redis.pubsub_numsub("events_channel")).get(b"events_channel"):
        assert time.monotonic() < deadline, "the eventstream Redis listener never subscribed"
        await asyncio.sleep(0.01)


def events_url(session_id: int) -> str:
    return f"/api/director/sessions/{session_id}/events"


async def replay(client, session_id: int, last_event_id: str, count: int):
    response = await client.get(events_url(session_id), headers={"Last-Event-ID": last_event_id})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    return await aread_events(response.streaming_content, until=(), count=count)


@pytest.fixture
def project(user):
    project = ProjectFactory(owner=user, status="awaiting_approval")
    CharacterFactory(project=project, name="Mara")
    return project


def test_a_turn_is_replayed_from_last_event_id(run, user, project):
    client = async_client_for(user)
    posted = run(
        turn_events(client, message="approve mara", page="characters", project_id=project.pk)
    )
    session_id = posted[0].data["session_id"]

    # From the start of the channel: every event, same ids, same data.
    replayed = run(replay(client, session_id, f"director-{session_id}:0", len(posted)))
    assert [(e.type, e.id, e.data) for e in replayed] == [(e.type, e.id, e.data) for e in posted]

    # From the middle: only what came after.
    middle = posted[4]
    rest = run(replay(client, session_id, middle.id, len(posted) - 5))
    assert [e.id for e in rest] == [e.id for e in posted[5:]]
    assert types_of(rest)[-1] == "complete"


def test_live_events_arrive_on_the_channel(run, user, project):
    client = async_client_for(user)
    first = run(turn_events(client, message="status", page="project", project_id=project.pk))
    session_id = first[0].data["session_id"]

    async def listen_while_a_turn_runs():
        response = await client.get(events_url(session_id))
        chunks = aiter(response.streaming_content)
        assert b"stream-open" in await anext(chunks)  # our listener is registered by now
        await until_redis_listener_subscribed()
        reader = asyncio.ensure_future(aread_events(chunks))
        posted = await turn_events(
            client, message="go to scenes", page="project", session_id=session_id
        )
        return posted, await asyncio.wait_for(reader, timeout=10)

    posted, heard = run(listen_while_a_turn_runs())
    assert [(e.type, e.data) for e in heard] == [(e.type, e.data) for e in posted]
    assert [e.id for e in heard] == [e.id for e in posted]


def test_anonymous_gets_a_json_401_before_streaming(run, user):
    client = async_client_for(user)
    session_id = run(turn_events(client, message="hi", page="dashboard"))[0].data["session_id"]

    response = run(TokenAsyncClient(None).get(events_url(session_id)))
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_another_user_gets_a_json_404_before_streaming(run, user, other_user):
    session_id = run(turn_events(async_client_for(user), message="hi", page="dashboard"))[0].data[
        "session_id"
    ]

    response = run(async_client_for(other_user).get(events_url(session_id)))
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    missing = run(async_client_for(user).get(events_url(session_id + 1000)))
    assert missing.status_code == 404
