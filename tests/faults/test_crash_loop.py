"""A job that kills its worker every time it runs (a crash, an OOM kill) is resumed by the
watchdog JOB_MAX_ATTEMPTS times in all, then failed: real workers, really killed."""

import sys
import time

import pytest

from filmstudio.support import wait_for
from generation.models import GenerationJob
from generation.services import start_character_generation
from projects import services
from tests.fakes.gemini_server import FakeGemini
from tests.pipeline import Workers, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "AIzaCrashLoopKeyAAAAAAAAAAAAAAAAAAAAAAAAAAA"


class Watchdog(Workers):
    command = [sys.executable, "manage.py", "watchdog", "--interval", "0.3"]


def test_a_job_that_keeps_killing_its_worker_is_failed_after_job_max_attempts(user, settings):
    settings.JOB_MAX_ATTEMPTS = 3
    with FakeGemini() as gemini:
        gemini.latency = {"text": 30.0, "image": 0.0, "default": 0.0}  # it never gets that far
        env = subprocess_env(
            settings,
            GEMINI_API_KEYS=KEY,
            GEMINI_BASE_URL=gemini.url,
            TEXT_PROVIDER="gemini",
            IMAGE_PROVIDER="gemini",
            JOB_HEARTBEAT_TIMEOUT=1,
            JOB_MAX_ATTEMPTS=3,
        )
        project = services.project_create(owner=user, title="Crash loop", num_scenes=1)
        job = start_character_generation(project=project, count=2)
        kills = []
        with Workers(env) as workers, Watchdog(env):

            def kill_each_attempt() -> bool:
                job.refresh_from_db()
                if job.status == GenerationJob.Status.FAILED:
                    return True
                asked = gemini.count(kind="text")
                if job.status == GenerationJob.Status.RUNNING and asked > len(kills):
                    # The step is in its model call: its worker dies (SIGKILL, horse and all).
                    workers.kill(workers.procs[-1])
                    kills.append(job.attempts)
                    workers.start_one()
                return False

            wait_for(kill_each_attempt, timeout=120, interval=0.05, message="never failed")
            time.sleep(3)  # several watchdog sweeps later, nothing resumed it
        job.refresh_from_db()
    assert kills == [1, 2, 3]
    assert job.status == GenerationJob.Status.FAILED
    assert job.attempts == 3
    assert "Stopped after 3 attempts" in job.error
    assert gemini.count(kind="text") == 3  # no fourth try reached the model
