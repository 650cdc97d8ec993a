"""GET /api/director/pages and GET /api/director/sessions/{id}."""

import pytest

from director.models import DirectorMessage, DirectorSession, DirectorTurn
from director.pages import PAGES
from director.tools import TOOLS

pytestmark = pytest.mark.django_db


def test_it_lists_every_page_with_its_tools(api):
    pages = api.get("/api/director/pages").json()

    ids = [page["id"] for page in pages]
    assert {"dashboard", "project", "characters", "scenes", "storyboard", "videos"} <= set(ids)
    characters = next(page for page in pages if page["id"] == "characters")
    assert characters["title"] == "Characters"
    assert characters["description"]
    names = [tool["name"] for tool in characters["tools"]]
    assert {"approve_character", "reject_character", "navigate", "highlight"} <= set(names)
    navigate = next(tool for tool in characters["tools"] if tool["name"] == "navigate")
    assert navigate == {
        "name": "navigate",
        "description": TOOLS["navigate"].description,
        "kind": "ui",
    }


def test_each_page_has_its_own_prompt_and_tools():
    prompts = {page.prompt for page in PAGES.values()}
    assert len(prompts) == len(PAGES)
    assert "approve_character" not in PAGES["videos"].tools
    assert "update_project" in PAGES["project"].tools
    for page in PAGES.values():
        assert {"navigate", "highlight", "open_modal", "get_project_status"} <= set(page.tools)
        assert set(page.tools) <= set(TOOLS)


def test_pages_require_authentication(client):
    assert client.get("/api/director/pages").status_code == 401


def test_a_session_shows_its_messages_in_order(api, user):
    session = DirectorSession.objects.create(user=user, page="characters")
    turn = DirectorTurn.objects.create(session=session, page="characters", status="complete")
    calls = [{"name": "navigate", "args": {"page": "scenes"}}]
    for role, text, function_calls in [
        ("user", "go to scenes", []),
        ("assistant", "Taking you there.", calls),
        ("tool", "", [{**calls[0], "result": None}]),
    ]:
        DirectorMessage.objects.create(
            session=session, turn=turn, role=role, text=text, function_calls=function_calls
        )

    body = api.get(f"/api/director/sessions/{session.pk}").json()
    assert body["id"] == session.pk
    assert body["project_id"] is None
    assert body["page"] == "characters"
    assert [(m["role"], m["text"], m["function_calls"]) for m in body["messages"]] == [
        ("user", "go to scenes", []),
        ("assistant", "Taking you there.", calls),
        ("tool", "", [{"name": "navigate", "args": {"page": "scenes"}, "result": None}]),
    ]
    assert all(m["created_at"] for m in body["messages"])


def test_another_users_session_is_a_404(api, other_user):
    theirs = DirectorSession.objects.create(user=other_user, page="dashboard")
    assert api.get(f"/api/director/sessions/{theirs.pk}").status_code == 404
    assert api.get(f"/api/director/sessions/{theirs.pk}/").status_code == 404
