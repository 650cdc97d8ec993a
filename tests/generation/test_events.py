"""Live project events over SSE: authenticated wrapper, live delivery, Last-Event-ID replay."""

import json
from itertools import islice

import django_rq
import httpx
import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from django_eventstream.models import Event
from rest_framework.authtoken.models import Token

from filmstudio.support import iter_events, wait_for
from generation import events
from projects import events as project_events
from tests.factories import ProjectFactory
from tests.pipeline import WebServer, subprocess_env

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
    stored = Event.objects.filter(channel=events.project_channel(project.pk)).exclude(type="")
    payloads = [json.loads(json.loads(e.data)) for e in stored]  # the storage encodes twice
    assert any(p.get("title") == "Renamed" for p in payloads)
