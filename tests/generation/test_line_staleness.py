"""A spoken line is made by a speech provider and model in a voice: changing any of them (the
settings, or the speaker's voice) makes the line stale with a reason that names it, and
nothing is spoken again until asked."""

import pytest

from generation.models import GenerationJob
from generation.voices import voice_for
from projects.models import Character, Frame, Take
from projects.takes import inputs_hash, project_stale_units
from tests.factories import FrameFactory, ProjectFactory, SceneFactory
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob


@pytest.fixture(autouse=True)
def offline(settings):
    settings.TEXT_PROVIDER = settings.IMAGE_PROVIDER = settings.VIDEO_PROVIDER = "local"
    settings.SPEECH_PROVIDER = "local"
    settings.GEMINI_SPEECH_MODEL = "gemini-3.8-flash-lite-tts"


@pytest.fixture
def spoken(api, user):
    """A project with two frames of dialogue (Mira's and the narrator's), both spoken offline."""
    project = ProjectFactory(owner=user)
    mira = Character.objects.create(
        project=project, name="Mira", status=Character.Status.APPROVED, voice="espeak-bea"
    )
    scene = SceneFactory(project=project)
    scene.characters.add(mira)
    hers = FrameFactory(scene=scene, dialogue="Mira: The lamp is out.", speaker=mira)
    narrated = FrameFactory(scene=scene, dialogue="Night falls on the island.")
    response = api.post("/api/jobs/audio-generation", {"project_id": project.pk}, format="json")
    assert response.status_code == 202, response.json()
    drain()
    takes = Take.objects.filter(project=project, kind=Take.Kind.LINE)
    assert {(t.frame_id, t.provider, t.model) for t in takes} == {
        (hers.pk, "local", "espeak-ng-2"),
        (narrated.pk, "local", "espeak-ng-2"),
    }
    assert all(t.inputs["speech"] == {"provider": "local", "model": "espeak-ng-2"} for t in takes)
    return project, mira, hers, narrated


def stale_lines(api, project) -> dict[int, list[str]]:
    response = api.get(f"/api/projects/{project.pk}/stale")
    assert response.status_code == 200
    return {u["id"]: u["reasons"] for u in response.json()["units"] if u["type"] == "line"}


def quote_of_lines(api, project) -> list[dict]:
    body = {"project_id": project.pk, "dry_run": True}
    response = api.post("/api/jobs/audio-generation", body, format="json")
    assert response.status_code == 200, response.json()
    return response.json()["estimate"]["items"]


def test_switching_the_speech_provider_or_model_makes_the_lines_stale(api, spoken, settings):
    project, mira, hers, narrated = spoken
    assert stale_lines(api, project) == {}
    assert quote_of_lines(api, project) == []  # nothing a project job would speak
    jobs = Job.objects.filter(project=project).count()

    settings.SPEECH_PROVIDER = "gemini"
    switched = (
        "speech provider changed from local (espeak-ng-2) to gemini (gemini-3.8-flash-lite-tts)"
    )
    # Gemini has no espeak-bea: Mira would speak in the voice picked for her, and says so
    recast = f"voice changed from espeak-bea to {voice_for(mira)}"
    assert stale_lines(api, project) == {hers.pk: [switched, recast], narrated.pk: [switched]}
    # the refresh's quote prices them at the new provider's rates
    estimate = api.get(f"/api/projects/{project.pk}/stale").json()["estimate"]
    lines = [i for i in estimate["items"] if i["stage"] == "lines"]
    assert lines and {i["provider"] for i in lines} == {"gemini"}
    assert sum(float(i["usd"]) for i in lines) > 0

    # the audio job's own quote: both lines, at the new provider's rates
    quoted = quote_of_lines(api, project)
    assert {(i["provider"], i["model"]) for i in quoted} == {
        ("gemini", "gemini-3.8-flash-lite-tts")
    }
    assert sum(i["usd"] for i in quoted) > 0  # (the refresh prices each line: rounded apart)

    settings.GEMINI_SPEECH_MODEL = "gemini-3.8-flash-tts"
    assert stale_lines(api, project)[hers.pk] == [switched.replace("-lite", ""), recast]

    settings.SPEECH_PROVIDER = "local"  # back to what spoke them: fresh again
    assert stale_lines(api, project) == {}
    # nothing was spoken again by itself, and the frames still point at their lines
    assert Job.objects.filter(project=project).count() == jobs
    assert Take.objects.filter(project=project, kind=Take.Kind.LINE).count() == 2


def test_a_project_audio_job_speaks_again_only_the_lines_another_provider_made(
    api, spoken, settings, gemini
):
    project, _, hers, narrated = spoken
    settings.SPEECH_PROVIDER = "gemini"
    settings.GEMINI_SPEECH_MODEL = "gemini-3.8-flash-tts"
    assert set(stale_lines(api, project)) == {hers.pk, narrated.pk}
    response = api.post("/api/jobs/audio-generation", {"project_id": project.pk}, format="json")
    assert response.status_code == 202, response.json()
    drain()
    hers.refresh_from_db()
    narrated.refresh_from_db()
    for frame in (hers, narrated):
        assert (frame.line_take.provider, frame.line_take.model) == (
            "gemini",
            "gemini-3.8-flash-tts",
        )
    assert stale_lines(api, project) == {}
    assert len([r for r in gemini.requests if r.kind == "audio"]) == 2
    jobs = Job.objects.filter(project=project).count()
    again = api.post("/api/jobs/audio-generation", {"project_id": project.pk}, format="json")
    assert again.status_code == 409, again.json()  # nothing left to say: no empty job
    assert again.json()["detail"] == "Nothing to speak: every line is spoken and up to date."
    assert Job.objects.filter(project=project).count() == jobs
    assert len([r for r in gemini.requests if r.kind == "audio"]) == 2

    # the same provider, another model: stale, and the reason names both models
    settings.GEMINI_SPEECH_MODEL = "gemini-3.8-flash-lite-tts"
    moved = "speech model changed from gemini-3.8-flash-tts to gemini-3.8-flash-lite-tts"
    assert stale_lines(api, project) == {hers.pk: [moved], narrated.pk: [moved]}


def test_a_new_voice_makes_that_speakers_lines_stale_and_names_both_voices(api, spoken):
    project, mira, hers, _ = spoken
    response = api.patch(f"/api/characters/{mira.pk}", {"voice": "espeak-gus"}, format="json")
    assert response.status_code == 200, response.json()
    assert stale_lines(api, project) == {hers.pk: ["voice changed from espeak-bea to espeak-gus"]}


def test_a_line_spoken_before_the_provider_was_recorded_keeps_its_hash(api, spoken, settings):
    """Lines spoken before their inputs named the speech provider are read with the provider
    and model their take records: not stale while those still speak."""
    project, _, hers, _ = spoken
    take = Frame.objects.get(pk=hers.pk).line_take
    older = {k: v for k, v in take.inputs.items() if k != "speech"}
    Take.objects.filter(pk=take.pk).update(inputs=older, inputs_hash=inputs_hash(older))
    assert stale_lines(api, project) == {}
    assert project_stale_units(project) == []
    settings.SPEECH_PROVIDER = "gemini"
    assert hers.pk in stale_lines(api, project)


def test_a_line_records_the_voice_spoken_when_the_provider_lacks_the_stored_one(
    api, spoken, settings, gemini
):
    """Gemini has no espeak-bea: Mira speaks in a voice picked from what the rest of the cast
    leaves. Her line records that voice, so another character taking it makes her line stale."""
    project, mira, hers, _ = spoken
    tom = Character.objects.create(
        project=project, name="Tom", status=Character.Status.APPROVED, voice="Puck"
    )
    settings.SPEECH_PROVIDER = "gemini"
    picked = voice_for(mira)
    assert picked not in ("espeak-bea", "Puck", "")
    response = api.post("/api/jobs/audio-generation", {"project_id": project.pk}, format="json")
    assert response.status_code == 202, response.json()
    drain()
    take = Frame.objects.get(pk=hers.pk).line_take
    assert take.provider == "gemini" and take.inputs["voice"] == picked
    (request,) = [r for r in gemini.requests if r.kind == "audio" and "lamp" in str(r.body)]
    assert picked in str(request.body)  # what it records is what was asked for
    assert stale_lines(api, project) == {}

    response = api.patch(f"/api/characters/{tom.pk}", {"voice": picked}, format="json")
    assert response.status_code == 200, response.json()
    now = voice_for(Character.objects.get(pk=mira.pk))
    assert now != picked
    assert stale_lines(api, project) == {hers.pk: [f"voice changed from {picked} to {now}"]}
