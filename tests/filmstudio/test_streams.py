"""The shared stream wrapper (filmstudio.streams) behind a real uvicorn: query parameters that
django-eventstream would act on are refused, for every stream."""

import time

import httpx
import jwt
import pytest
from django.conf import settings as django_settings
from django.test import Client

from director.models import DirectorSession
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
