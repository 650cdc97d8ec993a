"""The Gemini director through the real google-genai SDK against FakeGemini (SSE wire format)."""

import pytest

from director.models import DirectorTurn
from director.pages import PAGES
from generation.models import GenerationJob, SpendEntry
from projects.models import Character
from tests.director.helpers import (
    KEY,
    aread_events,
    async_client_for,
    call,
    counts_of,
    stream_bodies,
    turn_events,
    types_of,
)
from tests.factories import CharacterFactory, FrameFactory, ProjectFactory, SceneFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def project(user):
    project = ProjectFactory(owner=user, status="awaiting_approval")
    CharacterFactory(project=project, name="Mara")
    return project


def ask(run, user, **body):
    return run(turn_events(async_client_for(user), **body))


def test_text_streams_as_message_deltas(run, fake, user, project):
    fake.script_turn(["Your cast ", "is waiting ", "for you."])
    events = ask(run, user, message="hi", page="characters", project_id=project.pk)

    assert types_of(events) == ["start", "message", "message", "message", "complete"]
    assert [e.data["delta"] for e in events[1:4]] == ["Your cast ", "is waiting ", "for you."]
    assert events[-1].data == {"text": "Your cast is waiting for you."}
    assert DirectorTurn.objects.get().provider == "gemini"


def test_the_request_declares_the_page_tools_natively(run, fake, user, project):
    fake.script_turn(["Hello."])
    ask(run, user, message="hi", page="characters", project_id=project.pk)

    [body] = stream_bodies(fake)
    declared = [d["name"] for d in body["tools"][0]["functionDeclarations"]]
    assert declared == list(PAGES["characters"].tools)
    approve = next(
        d for d in body["tools"][0]["functionDeclarations"] if d["name"] == "approve_character"
    )
    # proto3 JSON: the API takes either spelling; this SDK sends the field name as is.
    schema = approve.get("parametersJsonSchema") or approve["parameters_json_schema"]
    assert schema["required"] == ["character_id"]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    system = body["systemInstruction"]["parts"][0]["text"]
    assert "on the characters page" in system
    assert f"project #{project.pk}" in system
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]


def test_tool_results_are_fed_back_as_function_responses(run, fake, user, project):
    mara = project.characters.get()
    fake.script_turn(["Approving Mara.", call("approve_character", character_id=mara.pk)])
    fake.script_turn(["Mara is approved."])
    events = ask(run, user, message="approve mara", page="characters", project_id=project.pk)

    assert types_of(events) == ["start", "message", "function_call", "message", "complete"]
    result = {"character": {"id": mara.pk, "name": "Mara", "role": "lead", "status": "approved"}}
    assert events[2].data == {
        "name": "approve_character",
        "args": {"character_id": mara.pk},
        "result": result,
    }
    assert events[-1].data == {"text": "Approving Mara.\n\nMara is approved."}
    mara.refresh_from_db()
    assert mara.status == Character.Status.APPROVED

    second = stream_bodies(fake)[1]
    model, response = second["contents"][-2:]
    assert model["role"] == "model"
    assert model["parts"] == [
        {"text": "Approving Mara."},
        {"functionCall": {"name": "approve_character", "args": {"character_id": mara.pk}}},
    ]
    assert response["role"] == "user"
    assert response["parts"] == [
        {"functionResponse": {"name": "approve_character", "response": {"output": result}}}
    ]


def test_a_call_on_another_users_character_fails_cleanly(run, fake, user, other_user, project):
    theirs = CharacterFactory(project=ProjectFactory(owner=other_user, status="awaiting_approval"))
    fake.script_turn([call("approve_character", character_id=theirs.pk)])
    fake.script_turn(["I cannot find that character."])
    events = ask(run, user, message="approve them", page="characters", project_id=project.pk)

    function_call = next(e.data for e in events if e.type == "function_call")
    assert function_call["result"] == {"error": "Not found."}
    assert events[-1].type == "complete"
    theirs.refresh_from_db()
    assert theirs.status == Character.Status.PENDING
    response = stream_bodies(fake)[1]["contents"][-1]["parts"][0]["functionResponse"]
    assert response == {"name": "approve_character", "response": {"error": "Not found."}}


def test_ui_tools_have_a_null_result_and_the_model_hears_they_are_done(run, fake, user, project):
    fake.script_turn([call("navigate", page="scenes")])
    fake.script_turn(["There you are."])
    events = ask(run, user, message="show me the scenes", page="characters", project_id=project.pk)

    assert next(e.data for e in events if e.type == "function_call") == {
        "name": "navigate",
        "args": {"page": "scenes"},
        "result": None,
    }
    response = stream_bodies(fake)[1]["contents"][-1]["parts"][0]["functionResponse"]
    assert response["name"] == "navigate"
    assert "carried it out" in response["response"]["output"]


def test_a_tool_not_on_the_page_is_refused(run, fake, user, project):
    fake.script_turn([call("approve_character", character_id=project.characters.get().pk)])
    fake.script_turn(["Sorry."])
    events = ask(run, user, message="approve", page="videos", project_id=project.pk)

    result = next(e.data for e in events if e.type == "function_call")["result"]
    assert result == {"error": "No tool 'approve_character' on the videos page."}
    assert project.characters.get().status == Character.Status.PENDING


def test_the_history_comes_from_the_database(run, fake, user, project):
    fake.script_turn([call("get_project_status")])
    fake.script_turn(["It awaits approval."])
    first = ask(run, user, message="status?", page="project", project_id=project.pk)
    fake.script_turn(["Sure."])
    session_id = first[0].data["session_id"]
    ask(run, user, message="and now?", page="project", session_id=session_id)

    contents = stream_bodies(fake)[2]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user", "model", "user"]
    assert contents[0]["parts"] == [{"text": "status?"}]
    assert contents[1]["parts"] == [{"functionCall": {"name": "get_project_status", "args": {}}}]
    response = contents[2]["parts"][0]["functionResponse"]
    assert response["response"]["output"]["project"]["id"] == project.pk
    assert contents[3]["parts"] == [{"text": "It awaits approval."}]
    assert contents[4]["parts"] == [{"text": "and now?"}]


def test_tool_rounds_are_capped(run, fake, user, project, settings):
    settings.DIRECTOR_MAX_TOOL_ROUNDS = 2
    for _ in range(3):
        fake.script_turn([call("get_project_status")])
    events = ask(run, user, message="loop", page="project", project_id=project.pk)

    assert types_of(events).count("function_call") == 2
    bodies = stream_bodies(fake)
    assert len(bodies) == 3
    assert bodies[2]["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    assert "stopped after 2 rounds" in events[-1].data["text"]


def test_a_provider_error_ends_the_turn_with_an_error_event(run, fake, user, project):
    fake.fail_next(1, status=400, message="Invalid JSON payload.")
    events = ask(run, user, message="hi", page="project", project_id=project.pk)

    assert types_of(events) == ["start", "error"]
    assert "400" in events[-1].data["message"]
    assert "Invalid JSON payload." in events[-1].data["message"]
    assert DirectorTurn.objects.get().status == DirectorTurn.Status.FAILED


def test_a_rate_limited_key_is_retried_before_anything_is_said(run, fake, user, project, settings):
    settings.GEMINI_API_KEYS = [KEY, KEY.replace("A", "B")]
    fake.fail_next(1, status=429, retry_delay="30s")
    fake.script_turn(["Fine."])
    events = ask(run, user, message="hi", page="project", project_id=project.pk)

    assert types_of(events) == ["start", "message", "complete"]
    assert len(stream_bodies(fake)) == 2


def test_a_safety_block_is_an_error_event(run, fake, user, project):
    fake.block_next(1, reason="SAFETY")
    events = ask(run, user, message="something awful", page="project", project_id=project.pk)

    assert types_of(events) == ["start", "error"]
    assert "blocked" in events[-1].data["message"]


def test_thought_signatures_go_back_verbatim(run, fake, user, project):
    # FakeGemini keeps extra keys on raw parts only (not on function_call items), so the
    # signature rides on a text part here; calls keep theirs the same way (the whole Part).
    signed = {"text": "Checking.", "thoughtSignature": "c2lnbmVkIHRob3VnaHQ="}
    fake.script_turn([signed, call("get_project_status")])
    fake.script_turn(["Done."])
    ask(run, user, message="status", page="project", project_id=project.pk)

    model = stream_bodies(fake)[1]["contents"][-2]
    assert model["parts"] == [
        signed,
        {"functionCall": {"name": "get_project_status", "args": {}}},
    ]


@pytest.fixture
def storyboard(user):
    project = ProjectFactory(owner=user, status="complete")
    scene = SceneFactory(project=project, order=1)
    frame = FrameFactory(scene=scene, order=1, image="frames/1-1.png")
    return project, frame


def test_the_unit_tools_are_declared_natively(run, fake, user, storyboard):
    project, _ = storyboard
    fake.script_turn(["Hello."])
    ask(run, user, message="hi", page="storyboard", project_id=project.pk)

    declarations = stream_bodies(fake)[0]["tools"][0]["functionDeclarations"]
    declared = {d["name"]: d for d in declarations}
    for name in ("edit_scene", "edit_frame", "regenerate_keyframe", "regenerate_clip",
                 "regenerate_portrait", "regenerate_scene", "select_take", "refresh_stale",
                 "approve_storyboard"):  # fmt: skip
        assert name in declared
    redo = declared["regenerate_keyframe"]
    schema = redo.get("parametersJsonSchema") or redo["parameters_json_schema"]
    assert schema["required"] == ["frame_id"]
    assert set(schema["properties"]) == {"frame_id", "instructions"}


def test_a_paid_call_asks_first_and_starts_nothing_until_confirmed(run, fake, user, storyboard):
    project, frame = storyboard
    fake.script_turn([call("regenerate_keyframe", frame_id=frame.pk, instructions="darker")])
    fake.script_turn(["That redraws one keyframe: press Confirm."])
    events = ask(run, user, message="darker please", page="storyboard", project_id=project.pk)

    assert types_of(events) == ["start", "function_call", "confirm", "message", "complete"]
    held = events[1].data
    assert held["name"] == "regenerate_keyframe"
    assert held["result"]["confirmation_required"] is True
    confirm = events[2].data
    assert counts_of(confirm["estimate"]) == {"images": 1}
    assert "frame 1 of scene 1" in confirm["summary"]
    assert not GenerationJob.objects.exists()
    # The model hears that nothing was done yet (and never sees the token).
    response = stream_bodies(fake)[1]["contents"][-1]["parts"][0]["functionResponse"]
    assert response["response"]["output"]["confirmation_required"] is True
    assert confirm["token"] not in str(stream_bodies(fake))

    session_id = events[0].data["session_id"]
    client = async_client_for(user)
    body = {"session_id": session_id, "token": confirm["token"]}
    confirmed = run(_confirm(client, body))

    assert types_of(confirmed) == ["start", "function_call", "message", "complete"]
    job = GenerationJob.objects.get()
    assert (job.type, job.target_id, job.params) == (
        "keyframe-generation",
        frame.pk,
        {"instructions": "darker"},
    )
    assert confirmed[1].data["result"]["job"]["id"] == job.pk
    assert len(stream_bodies(fake)) == 2  # carrying out a confirmed call asks no model


async def _confirm(client, body):
    response = await client.post(
        "/api/director/confirm",
        body,
        content_type="application/json",
        headers={"Accept": "text/event-stream"},
    )
    assert response.status_code == 200, response.content
    return await aread_events(response.streaming_content)


def test_a_turn_is_paid_for_in_the_ledger_as_the_users_and_the_projects(run, fake, user, project):
    fake.script_turn(["Your cast ", "is waiting."])
    ask(run, user, message="hi", page="characters", project_id=project.pk)
    (entry,) = SpendEntry.objects.all()
    billed = fake.billed_usage()[-1]
    assert (entry.user_id, entry.project_id, entry.stage) == (user.pk, project.pk, "director")
    assert entry.unit_type == "session" and entry.model == "gemini-2.5-flash"
    assert entry.usage["input_tokens"] == billed["promptTokenCount"] > 0
    assert entry.usd > 0
    project.refresh_from_db()
    assert project.spent_usd == entry.usd
