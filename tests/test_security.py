"""Secrets never reach logs, errors or API responses; nor server paths, other users' jobs or
worker hosts."""

import json
import logging
import sys
from pathlib import Path

import django_rq
import httpx
import pytest
import yaml
from rq import Worker

from filmstudio.logging import RedactSecretsFilter
from filmstudio.support import ASGI_APP, free_port, running, wait_for, web_up
from generation.events import job_payload
from generation.models import GenerationJob
from generation.services import start_video_generation
from media.signing import sign
from tests.factories import FrameFactory, ProjectFactory, SceneFactory
from tests.fakes.gemini_server import FakeGemini
from tests.pipeline import drain, subprocess_env

KEY = "AIzaSecretKeyThatMustNeverLeakXXXXXXXXXXXX"
FAL = "fal-secret-key-that-must-never-leak"

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_log_filter_masks_configured_secrets(settings):
    settings.GEMINI_API_KEYS = [KEY]
    settings.FAL_KEY = FAL
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "calling with %s and %s", (KEY, FAL), None
    )
    RedactSecretsFilter().filter(record)
    assert KEY not in record.getMessage() and FAL not in record.getMessage()
    assert record.getMessage() == "calling with *** and ***"


def test_provider_failures_leak_no_key_to_logs_errors_or_the_api(api, user, settings, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeGemini() as gemini:
        settings.GEMINI_API_KEYS = [KEY]
        settings.GEMINI_BASE_URL = gemini.url
        settings.TEXT_PROVIDER = settings.IMAGE_PROVIDER = "gemini"
        settings.JOB_AUTO_RETRIES = 1
        settings.PROVIDER_MAX_ATTEMPTS = 2
        gemini.fail_next(1, status=400, message=f"API key {KEY} not valid")  # a hostile echo
        gemini.fail_ratio, gemini.fail_status = 1.0, 500
        project = ProjectFactory(owner=user)
        api.post("/api/jobs/character-generation", {"project_id": project.pk}, format="json")
        drain()
    job = GenerationJob.objects.get()
    assert job.status == "failed" and job.error
    texts = [job.error, job.traceback, api.get("/api/jobs").content.decode()]
    texts += [api.get(f"/api/jobs/{job.pk}/status").content.decode()]
    texts += [r.getMessage() for r in caplog.records]
    texts += [str(r.exc_info) for r in caplog.records if r.exc_info]
    assert not [t for t in texts if KEY in t]


# --------------------------------------------------------------------------- what others see


def test_queue_status_gives_non_staff_counts_only(api, user):
    queue = django_rq.get_queue("default")
    worker = Worker([queue], connection=queue.connection, name="gpu-7.internal.example:4242")
    worker.register_birth()
    try:
        worker.set_current_job_id("job-4242-0ddba11")
        shown = api.get("/api/queues/status").json()
        assert "internal.example" not in json.dumps(shown)
        assert "0ddba11" not in json.dumps(shown)
        assert shown["workers"] == []
        assert shown["workers_total"] >= 1
        assert [q["name"] for q in shown["queues"]] == ["default"]
        assert set(shown["queues"][0]) == {
            "name",
            "queued",
            "started",
            "scheduled",
            "deferred",
            "failed",
            "finished",
        }

        user.is_staff = True
        user.save(update_fields=["is_staff"])
        staff = api.get("/api/queues/status").json()
        mine = [w for w in staff["workers"] if w["name"] == worker.name]
        assert [w["current_job"] for w in mine] == ["job-4242-0ddba11"]
    finally:
        worker.register_death()


def test_a_job_error_names_no_server_path_and_keeps_its_traceback_for_staff(api, user, settings):
    project = ProjectFactory(owner=user, status="complete")
    scene = SceneFactory(project=project, status="ready")
    frame = FrameFactory(scene=scene, image=f"{project.pk}/frames/gone.png")  # no such file
    job = start_video_generation(project=project, frame=frame)
    drain()
    job.refresh_from_db()
    assert job.status == "failed"
    assert "FileNotFoundError" in job.error and "gone.png" in job.error
    media_root = str(settings.MEDIA_ROOT)
    shown = [job.error, api.get(f"/api/jobs/{job.pk}/status").content.decode()]
    shown += [api.get(f"/api/jobs?project_id={project.pk}").content.decode()]
    shown += [json.dumps(job_payload(job))]
    assert not [text for text in shown if media_root in text or "/tmp/" in text]
    assert not [text for text in shown if "Traceback" in text]
    assert media_root in job.traceback  # kept, for the staff dashboard's job page


def test_access_logs_mask_the_signature_of_blob_urls(settings, tmp_path):
    log, port = tmp_path / "web.log", free_port()
    # Access log on, as the Dockerfile's uvicorn runs.
    command = [sys.executable, "-m", "uvicorn", ASGI_APP, "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    name = "1/frames/shot.png"
    signature = sign(name)
    with running(command, subprocess_env(settings, LOG_LEVEL="info"), log=log):
        wait_for(lambda: web_up(url), timeout=30)
        assert httpx.get(f"{url}/blob/{name}?sig={signature}", timeout=10).status_code == 404
        wait_for(lambda: "/blob/" in log.read_text(), timeout=10)
    text = log.read_text()
    assert signature not in text
    assert f'"GET /blob/{name}?sig=*** HTTP/1.1" 404' in text


def test_compose_runs_with_debug_off_whatever_env_file_says():
    compose = yaml.safe_load(
        (Path(__file__).resolve().parent.parent / "docker-compose.yml").read_text()
    )
    assert compose["x-app"]["environment"]["DJANGO_DEBUG"] == "false"
    for name in ("web", "worker", "watchdog"):
        assert compose["services"][name]["environment"]["DJANGO_DEBUG"] == "false"
