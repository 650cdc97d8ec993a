"""The studio page and login through Django's test client (the browser tests drive the rest)."""

import pytest

pytestmark = pytest.mark.django_db


def test_it_sends_anonymous_users_to_login(client):
    response = client.get("/studio/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/studio/"


def test_it_serves_any_signed_in_user(client, user):
    client.force_login(user)
    response = client.get("/studio/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="csrf-token"' in html
    assert "/static/filmstudio/studio.js" in html
    assert "csrftoken" in response.cookies


def test_the_old_test_page_redirects_to_the_studio(client):
    response = client.get("/test/test.html")
    assert response.status_code == 302
    assert response["Location"] == "/studio/"


def test_the_login_page_renders(client):
    response = client.get("/accounts/login/?next=/studio/")
    assert response.status_code == 200
    assert 'name="next" value="/studio/"' in response.content.decode()


def test_logging_in_lands_on_the_studio(client, user):
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "correct horse battery"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/studio/"
