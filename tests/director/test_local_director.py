"""The local director through POST /api/director/stream (AsyncClient, real threads)."""

import pytest

from director.models import DirectorMessage, DirectorSession, DirectorTurn
from projects.models import Character
from tests.director.helpers import async_client_for, turn_events, types_of
from tests.factories import CharacterFactory, ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def project(user):
    project = ProjectFactory(owner=user, title="The Keeper", status="awaiting_approval")
    CharacterFactory(project=project, name="Mara Vance")
    CharacterFactory(project=project, name="Elias Okafor")
    return project


def test_it_streams_start_messages_then_complete(run, user, project):
    client = async_client_for(user)
    events = run(
        turn_events(client, message="What's the status?", page="project", project_id=project.pk)
    )

    kinds = types_of(events)
    assert kinds[0] == "start"
    assert kinds[-1] == "complete"
    assert set(kinds[1:-1]) == {"message", "function_call"}
    turn = DirectorTurn.objects.get()
    assert events[0].data == {"session_id": turn.session_id, "turn_id": turn.pk}
    deltas = [e.data["delta"] for e in events if e.type == "message"]
    assert len(deltas) > 5  # word by word
    assert "".join(deltas) == events[-1].data["text"]
    assert "“The Keeper” is awaiting approval" in events[-1].data["text"]
    assert "Characters: 2 pending." in events[-1].data["text"]


def test_tool_results_are_fed_back_to_the_next_step(run, user, project):
    client = async_client_for(user)
    events = run(
        turn_events(client, message="Approve Mara please", page="characters", project_id=project.pk)
    )

    calls = [e.data for e in events if e.type == "function_call"]
    mara = project.characters.get(name="Mara Vance")
    # Step 1 reads the cast; step 2 picks Mara's id out of that result; step 3 reports.
    assert [c["name"] for c in calls] == ["get_project_status", "approve_character"]
    assert calls[1]["args"] == {"character_id": mara.pk}
    assert calls[1]["result"]["character"] == {
        "id": mara.pk,
        "name": "Mara Vance",
        "role": "lead",
        "status": "approved",
    }
    assert "Mara Vance is now approved." in events[-1].data["text"]
    mara.refresh_from_db()
    assert mara.status == Character.Status.APPROVED
    assert project.characters.get(name="Elias Okafor").status == Character.Status.PENDING


def test_event_order_interleaves_text_and_calls(run, user, project):
    events = run(
        turn_events(
            async_client_for(user), message="approve all", page="characters", project_id=project.pk
        )
    )

    kinds = types_of(events)
    first_call = kinds.index("function_call")
    assert "message" in kinds[1:first_call]  # "Let me check the cast." comes first
    assert kinds[first_call + 1] == "message"
    assert kinds.count("function_call") == 3  # status, then one approval per character
    assert set(project.characters.values_list("status", flat=True)) == {"approved"}


def test_ui_tools_are_sent_with_a_null_result(run, user, project):
    client = async_client_for(user)
    events = run(
        turn_events(client, message="go to the scenes", page="characters", project_id=project.pk)
    )

    calls = [e.data for e in events if e.type == "function_call"]
    assert calls == [
        {"name": "navigate", "args": {"page": "scenes", "project_id": project.pk}, "result": None}
    ]
    session_id = events[0].data["session_id"]
    events = run(
        turn_events(
            client, message="highlight the approve button", page="characters", session_id=session_id
        )
    )
    calls = [e.data for e in events if e.type == "function_call"]
    assert calls == [{"name": "highlight", "args": {"target": "approve-button"}, "result": None}]


def test_the_turn_is_stored_with_its_messages(run, user, project, api):
    client = async_client_for(user)
    events = run(
        turn_events(client, message="approve Elias", page="characters", project_id=project.pk)
    )
    session_id = events[0].data["session_id"]

    session = DirectorSession.objects.get(pk=session_id)
    assert (session.user, session.project, session.page) == (user, project, "characters")
    turn = session.turns.get()
    assert turn.status == DirectorTurn.Status.COMPLETE
    assert turn.provider == "local"
    assert turn.finished_at is not None
    roles = list(turn.messages.values_list("role", flat=True))
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]

    body = api.get(f"/api/director/sessions/{session_id}").json()
    assert body["id"] == session_id
    assert body["project_id"] == project.pk
    assert body["page"] == "characters"
    assert [m["role"] for m in body["messages"]] == roles
    assert body["messages"][0]["text"] == "approve Elias"
    tool = body["messages"][4]["function_calls"][0]
    assert tool["name"] == "approve_character"
    assert tool["result"]["character"]["status"] == "approved"


def test_a_second_turn_continues_the_session(run, user, project):
    client = async_client_for(user)
    first = run(turn_events(client, message="status", page="project", project_id=project.pk))
    session_id = first[0].data["session_id"]
    second = run(
        turn_events(client, message="go to characters", page="project", session_id=session_id)
    )

    assert second[0].data["session_id"] == session_id
    assert second[0].data["turn_id"] != first[0].data["turn_id"]
    assert DirectorSession.objects.count() == 1
    assert DirectorMessage.objects.filter(role="user").count() == 2


def test_a_tool_from_another_page_is_not_offered(run, user, project):
    events = run(
        turn_events(
            async_client_for(user), message="approve all", page="videos", project_id=project.pk
        )
    )

    assert "function_call" not in types_of(events)
    assert "from the Characters page" in events[-1].data["text"]
    assert set(project.characters.values_list("status", flat=True)) == {"pending"}


def test_a_service_refusal_becomes_an_error_result(run, user, project):
    events = run(
        turn_events(
            async_client_for(user),
            message="generate the videos",
            page="videos",
            project_id=project.pk,
        )
    )

    call = next(e.data for e in events if e.type == "function_call")
    assert call["name"] == "start_generation"
    assert call["result"] == {"error": "Cannot generate videos: the project has no frames yet."}
    assert events[-1].type == "complete"
    assert "I could not start it: Cannot generate videos" in events[-1].data["text"]
