"""Token authentication with its query compiled once (filmstudio.auth) answers as DRF's did:
the token's user, 401 with DRF's messages for an unknown token, an inactive user or a bad
header, the session when no token is sent, 401 with nothing."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from filmstudio.auth import TokenAuthentication
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def with_header(value: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=value)
    return client


def test_a_token_is_its_users_in_one_query(user, other_user):
    mine = ProjectFactory(owner=user)
    theirs = ProjectFactory(owner=other_user)
    token = Token.objects.create(user=user)
    Token.objects.create(user=other_user)
    client = with_header(f"Token {token.key}")
    with CaptureQueriesContext(connection) as queries:
        found, auth = TokenAuthentication().authenticate_credentials(token.key)
    assert len(queries.captured_queries) == 1
    assert (found.pk, found.username, found.is_active) == (user.pk, "alice", True)
    assert (auth.key, auth.user_id, auth.user.pk, auth.created) == (
        token.key,
        user.pk,
        user.pk,
        token.created,
    )
    assert client.get(f"/api/projects/{mine.pk}").json()["id"] == mine.pk
    assert client.get(f"/api/projects/{theirs.pk}").status_code == 404


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("Token nosuchkey", "Invalid token."),
        ("Token", "Invalid token header. No credentials provided."),
        ("Token a b", "Invalid token header. Token string should not contain spaces."),
    ],
)
def test_a_bad_token_is_refused_with_drfs_message(user, header, detail):
    Token.objects.create(user=user)
    response = with_header(header).get("/api/projects")
    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response["WWW-Authenticate"] == "Token"


def test_an_inactive_users_token_is_refused(user):
    token = Token.objects.create(user=user)
    user.is_active = False
    user.save(update_fields=["is_active"])
    response = with_header(f"Token {token.key}").get("/api/projects")
    assert response.status_code == 401
    assert response.json() == {"detail": "User inactive or deleted."}


def test_a_token_of_a_deleted_user_is_gone_with_it(user):
    token = Token.objects.create(user=user)
    key = token.key
    user.delete()
    response = with_header(f"Token {key}").get("/api/projects")
    assert response.json() == {"detail": "Invalid token."}


def test_without_a_token_the_session_counts_and_nothing_is_401(user):
    project = ProjectFactory(owner=user)
    session = APIClient()
    session.force_login(user)
    assert session.get(f"/api/projects/{project.pk}").json()["id"] == project.pk
    assert session.get(f"/api/projects/{ProjectFactory(owner=UserFactory()).pk}").status_code == 404
    assert APIClient().get(f"/api/projects/{project.pk}").status_code == 401
