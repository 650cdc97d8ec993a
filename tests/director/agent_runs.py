"""Helpers of the agent-run tests: the API calls, and the offline provider's calls counted."""

from collections import Counter

import django_rq
import pytest
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from generation.providers.local import LocalImage, LocalSpeech, LocalText, LocalVideo
from projects.models import Character


@pytest.fixture(autouse=True)
def offline(settings):
    """The pipeline's providers offline (autouse where imported)."""
    settings.TEXT_PROVIDER = settings.IMAGE_PROVIDER = settings.VIDEO_PROVIDER = "local"
    settings.SPEECH_PROVIDER = "local"


@pytest.fixture
def calls(monkeypatch) -> Counter:
    """Every call of the offline provider, by kind (and `.prompts`: every image prompt)."""
    counted: Counter = Counter()
    prompts: list[str] = []
    counted.prompts = prompts  # type: ignore[attr-defined]

    def counting(cls, method: str, kind: str):
        original = getattr(cls, method)

        def wrapper(self, **kwargs):
            counted[kind] += 1
            if kind == "image":
                prompts.append(kwargs["prompt"])
            return original(self, **kwargs)

        monkeypatch.setattr(cls, method, wrapper)

    counting(LocalText, "generate_json", "text")
    counting(LocalImage, "generate_image", "image")
    counting(LocalVideo, "submit", "clip")
    counting(LocalSpeech, "speak", "speech")
    return counted


def new_project(api, **fields) -> int:
    body = {"title": "Storm", "num_scenes": 2, "frames_per_scene": 2, "clip_seconds": 2, **fields}
    response = api.post("/api/projects", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def start(api, project_id: int, **body) -> dict:
    body = {"goal": "A lighthouse keeper befriends a storm, with two characters.", **body}
    response = api.post(f"/api/projects/{project_id}/agent-runs", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def run_of(api, run_id: int) -> dict:
    response = api.get(f"/api/agent-runs/{run_id}")
    assert response.status_code == 200, response.content
    return response.json()


def decide(api, run_id: int, decision: str, notes: str = ""):
    body = {"decision": decision, **({"notes": notes} if notes else {})}
    return api.post(f"/api/agent-runs/{run_id}/decide", body, format="json")


def stages(counted: Counter) -> dict:
    return dict(counted)


def drawn(counted: Counter, name: str) -> int:
    return sum(1 for prompt in counted.prompts if name in prompt.split(",")[0])


def portraits(project_id: int) -> dict[str, tuple[int, str]]:
    return {c.name: (c.take_id, c.image) for c in Character.objects.filter(project_id=project_id)}


def work_one() -> None:
    """Exactly one queued RQ job, in this process."""
    queue = django_rq.get_queue("default")
    worker = SimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer)
    worker.work(burst=True, max_jobs=1)
