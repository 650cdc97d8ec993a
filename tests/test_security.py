"""Secrets never reach logs, errors or API responses."""

import logging

import pytest

from filmstudio.logging import RedactSecretsFilter
from generation.models import GenerationJob
from tests.factories import ProjectFactory
from tests.fakes.gemini_server import FakeGemini
from tests.pipeline import drain

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
