"""Live project events over SSE: authenticated wrapper, live delivery, Last-Event-ID replay."""

import json
from itertools import islice

import django_rq
import httpx
import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import AsyncClient
from django.test.utils import CaptureQueriesContext
from django_eventstream.models import Event
from rest_framework.authtoken.models import Token

from filmstudio import eventstore
from filmstudio.support import iter_events, wait_for
from generation import events, services
from projects import events as project_events
from tests.factories import ProjectFactory
from tests.pipeline import WebServer, drain, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def project(user):
    return ProjectFactory(owner=user)


@pytest.fixture
def token(user):
    return Token.objects.get_or_create(user=user)[0].key


def test_anonymous_gets_json_401_and_others_json_404(project, other_user):
    client = AsyncClient()
    response = async_to_sync(client.get)(f"/api/events/projects/{project.pk}")
    assert response.status_code == 401
    assert response.json()["detail"]
    other = Token.objects.create(user=other_user).key
    response = async_to_sync(client.get)(
        f"/api/events/projects/{project.pk}", headers={"Authorization": f"Token {other}"}
    )
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


def test_events_arrive_live_and_replay_from_last_event_id(project, token, settings):
    """Through a real uvicorn: events sent by another process arrive via Redis, live."""
    channel = events.project_channel(project.pk)
    headers = {"Authorization": f"Token {token}"}
    with WebServer(subprocess_env(settings)) as web:
        url = f"{web.url}/api/events/projects/{project.pk}"
        with httpx.stream("GET", url, headers=headers, timeout=10) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            stream = iter_events(response.iter_text(), skip=["keep-alive"])
            assert next(stream).type == "stream-open"
            wait_for(lambda: redis_subscribers() > 0, timeout=5)
            project_events._send(channel, "project", {"project_id": project.pk, "n": 1})
            project_events._send(channel, "project", {"project_id": project.pk, "n": 2})
            live = list(islice(stream, 2))
        assert [(e.type, e.data["n"]) for e in live] == [("project", 1), ("project", 2)]
        resumed = {**headers, "Last-Event-ID": live[0].id}
        with httpx.stream("GET", url, headers=resumed, timeout=10) as replay:
            missed = next(iter_events(replay.iter_text()))
        assert (missed.type, missed.data["n"]) == ("project", 2)


def redis_subscribers() -> int:
    return django_rq.get_connection("default").pubsub_numsub("events_channel")[0][1]


def test_a_service_change_is_published_after_commit(api, project, token):
    api.patch(f"/api/projects/{project.pk}", {"title": "Renamed"}, format="json")
    # Stored when the request ended (the test client's response is closed: request_finished).
    stored = Event.objects.filter(channel=events.project_channel(project.pk)).exclude(type="")
    payloads = [json.loads(json.loads(e.data)) for e in stored]  # the storage encodes twice
    assert any(p.get("title") == "Renamed" for p in payloads)


def test_live_events_cost_no_sql_and_a_step_stores_them_in_one_write(project):
    """Published through Redis at once; the replay log gets them in one INSERT when the
    worker's task ends (here the in-process worker, as in every test)."""
    channel = events.project_channel(project.pk)
    eventstore.flush()
    project_events._send(channel, "project", {"project_id": project.pk, "n": 0})  # a known channel
    with CaptureQueriesContext(connection) as queries:
        for n in range(1, 14):
            project_events._send(channel, "project", {"project_id": project.pk, "n": n})
    assert queries.captured_queries == []
    assert eventstore.EventStore().get_events(channel, 0)[-1].data == json.dumps(
        {"project_id": project.pk, "n": 13}
    )
    with CaptureQueriesContext(connection) as queries:
        assert eventstore.flush() == 14
    assert [q["sql"].split()[:3] for q in queries.captured_queries] == [
        ["INSERT", "INTO", '"django_eventstream_event"']
    ]

    services.start_character_generation(project=project, count=2)
    eventstore.flush()
    with CaptureQueriesContext(connection) as queries:
        drain()
    writes = [q["sql"] for q in queries.captured_queries if "django_eventstream" in q["sql"]]
    assert len(writes) == 1 and writes[0].startswith("INSERT")
    stored = Event.objects.filter(channel=channel, type="job")
    assert json.loads(json.loads(stored.latest("eid").data))["status"] == "succeeded"


def test_replay_survives_a_redis_flush(project, token, settings):
    """Stored events replay from the database once Redis has lost them; new events go on above
    the old ids (a client's Last-Event-ID stays meaningful)."""
    channel = events.project_channel(project.pk)
    for n in range(1, 4):
        project_events._send(channel, "project", {"project_id": project.pk, "n": n})
    eventstore.flush()
    first = Event.objects.filter(channel=channel, type="project").order_by("eid").first()
    django_rq.get_connection("default").flushdb()

    headers = {"Authorization": f"Token {token}", "Last-Event-ID": f"{channel}:{first.eid}"}
    with WebServer(subprocess_env(settings)) as web:
        url = f"{web.url}/api/events/projects/{project.pk}"
        with httpx.stream("GET", url, headers=headers, timeout=10) as replay:
            stream = iter_events(replay.iter_text(), skip=["stream-open", "keep-alive"])
            missed = list(islice(stream, 2))
    assert [(e.type, e.data["n"]) for e in missed] == [("project", 2), ("project", 3)]
    assert missed[-1].id == f"{channel}:{first.eid + 2}"

    project_events._send(channel, "project", {"project_id": project.pk, "n": 4})
    # Above the old ids, with a gap (ids other processes may hold unflushed stay unused).
    assert eventstore.EventStore().get_current_id(channel) > first.eid + 2
    after = eventstore.EventStore().get_events(channel, first.eid + 2)
    assert [json.loads(e.data)["n"] for e in after] == [4]
