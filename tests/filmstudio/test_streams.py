"""The shared stream wrapper (filmstudio.streams) behind a real uvicorn: query parameters that
django-eventstream would act on are refused, for every stream, and a user holds a bounded
number of streams open."""

import contextlib
import time

import httpx
import jwt
import pytest
from django.conf import settings as django_settings
from django.test import Client
from rest_framework.authtoken.models import Token

from director.models import DirectorSession, DirectorTurn
from filmstudio.support import first_event, iter_events, wait_for
from tests.asgi_server import uvicorn_in_thread
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server_url():
    with uvicorn_in_thread() as url:
        yield url


@pytest.fixture
def staff(user):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


@pytest.fixture
def http(staff, server_url):
    """A signed-in browser session (the staff dashboard's stream takes sessions only)."""
    browser = Client()
    browser.force_login(staff)
    cookie = browser.cookies[django_settings.SESSION_COOKIE_NAME].value
    with httpx.Client(
        base_url=server_url,
        cookies={django_settings.SESSION_COOKIE_NAME: cookie},
        headers={"Accept": "text/event-stream"},
        timeout=10,
    ) as client:
        yield client


@pytest.fixture
def stream_urls(staff) -> list[str]:
    project = ProjectFactory(owner=staff)
    session = DirectorSession.objects.create(user=staff, project=project, page="project")
    return [
        f"/api/events/projects/{project.pk}",
        f"/api/director/sessions/{session.pk}/events",
        f"/dashboard/projects/{project.pk}/events",
    ]


def forged_meta(user_id: int, channel: str) -> str:
    """What django-eventstream takes from `?es-meta=`: a JWT signed with SECRET_KEY that
    replaces the stream's user and channels."""
    claims = {"user": user_id, "channels": [channel], "exp": int(time.time()) + 600}
    return jwt.encode(claims, django_settings.SECRET_KEY, algorithm="HS256")


def test_es_meta_and_recover_are_refused_on_every_stream(http, stream_urls, other_user):
    theirs = ProjectFactory(owner=other_user)
    values = {
        "es-meta": ["garbage", forged_meta(other_user.pk, f"project-{theirs.pk}")],
        "recover": ["true"],
    }
    answers = []
    for url in stream_urls:
        for name, candidates in values.items():
            for value in candidates:
                with http.stream("GET", url, params={name: value}) as response:
                    answers.append((url, name, response.status_code, response.headers))
                    if response.status_code != 200:  # a 200 is a stream: it never ends
                        response.read()
                    if response.status_code == 400:
                        assert response.json() == {name: ["This parameter is not accepted."]}
    assert [(url, name, status) for url, name, status, _ in answers] == [
        (url, name, 400) for url in stream_urls for name in ("es-meta", "es-meta", "recover")
    ]
    assert {headers["content-type"] for *_, headers in answers} == {"application/json"}


def test_a_stream_without_those_parameters_still_opens(http, stream_urls):
    for url in stream_urls:
        with http.stream("GET", url, params={"lastEventId": ""}) as response:
            assert response.status_code == 200, url
            assert response.headers["content-type"].startswith("text/event-stream")


# --------------------------------------------------------------------------- open streams per user


def token_client(server_url: str, user) -> httpx.Client:
    token, _ = Token.objects.get_or_create(user=user)
    headers = {"Authorization": f"Token {token.key}", "Accept": "text/event-stream"}
    return httpx.Client(base_url=server_url, headers=headers, timeout=10)


def open_stream(stack: contextlib.ExitStack, client: httpx.Client, url: str):
    """An SSE stream held open (until `stack` closes), once the server has started it; and its
    events (dropping that iterator would close the connection)."""
    response = stack.enter_context(client.stream("GET", url))
    assert response.status_code == 200, response.read()
    events = iter_events(response.iter_text(), skip=())
    assert first_event(events, "stream-open")
    return response, events


def answer(client: httpx.Client, method: str, url: str, **kwargs) -> tuple[int, object]:
    """The status, and the JSON body unless it is a stream (which would never end)."""
    with client.stream(method, url, **kwargs) as response:
        if response.headers["content-type"].startswith("text/event-stream"):
            return response.status_code, None
        response.read()
        return response.status_code, response.json()


def test_a_user_holds_at_most_max_streams_per_user_open(server_url, user, other_user, settings):
    settings.MAX_STREAMS_PER_USER = 3
    settings.DIRECTOR_PROVIDER = "local"
    settings.DIRECTOR_TURNS_PER_MINUTE = 1000
    project = ProjectFactory(owner=user)
    session = DirectorSession.objects.create(user=user, project=project, page="project")
    theirs = ProjectFactory(owner=other_user)
    urls = [f"/api/events/projects/{project.pk}", f"/api/director/sessions/{session.pk}/events"]
    turn = {"message": "status", "page": "project", "project_id": project.pk}
    with (
        token_client(server_url, user) as mine,
        token_client(server_url, other_user) as other,
        contextlib.ExitStack() as held,
    ):
        streams = [open_stream(held, mine, url) for url in (urls[0], urls[1], urls[0])]
        for url in urls:
            status, body = answer(mine, "GET", url)
            assert status == 429
            assert body == {
                "detail": "Too many open streams: at most 3 at once per user; close one first."
            }
        # The director's stream is a stream too, refused before a turn starts.
        status, body = answer(mine, "POST", "/api/director/stream", json=turn)
        assert status == 429
        assert "at most 3 at once" in body["detail"]
        assert not DirectorTurn.objects.exists()
        # Another user is not held back by this one.
        streams.append(open_stream(held, other, f"/api/events/projects/{theirs.pk}"))
        # A stream closed by its client gives its place back.
        streams.pop(0)[0].close()

        def director_turn():
            with mine.stream("POST", "/api/director/stream", json=turn) as response:
                if response.status_code == 429:
                    return None
                assert response.status_code == 200
                return [event.type for event in iter_events(response.iter_text())]

        assert wait_for(director_turn, timeout=10, interval=0.1)[-1] == "complete"
