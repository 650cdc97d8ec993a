"""An agent run with real processes: rqworker subprocesses, the watchdog and uvicorn, offline
providers. The worker running the run's advance is SIGKILLed mid-advance and the web server
that started the run is stopped; the watchdog resumes the lost advance from Postgres and a new
web server takes the decisions: the film completes with nothing doubled."""

import httpx
import pytest
from rest_framework.authtoken.models import Token

from director.models import AgentRun
from filmstudio.support import wait_for
from generation.models import GenerationJob
from projects.models import Character, Frame, Project
from tests.faults.test_faults import Watchdog
from tests.pipeline import WebServer, Workers, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
Job = GenerationJob


def client(web: WebServer, user) -> httpx.Client:
    token, _ = Token.objects.get_or_create(user=user)
    return httpx.Client(
        base_url=web.url, headers={"Authorization": f"Token {token.key}"}, timeout=20
    )


def run_status(run_id: int) -> str:
    return AgentRun.objects.get(pk=run_id).status


def awaiting(run_id: int, kind: str, timeout: float = 90) -> None:
    def there() -> bool:
        run = AgentRun.objects.get(pk=run_id)
        assert run.status not in ("failed", "cancelled", "complete"), (run.status, run.error)
        return run.status == "awaiting_decision" and run.checkpoint_kind == kind

    wait_for(there, timeout=timeout, message=f"the run never stopped at {kind}")


def test_a_run_survives_a_killed_worker_and_a_restarted_web_server(user, settings):
    env = subprocess_env(
        settings,
        TEXT_PROVIDER="local",
        IMAGE_PROVIDER="local",
        VIDEO_PROVIDER="local",
        SPEECH_PROVIDER="local",
        JOB_HEARTBEAT_TIMEOUT=2,
        AGENT_LOCAL_DELAY=1.5,  # each planner step that calls tools: the kill lands inside one
    )
    with Workers(env) as workers, Watchdog(env):
        with WebServer(env) as web, client(web, user) as http:
            body = {"title": "Storm", "num_scenes": 2, "frames_per_scene": 1, "clip_seconds": 2}
            pid = http.post("/api/projects", json=body).json()["id"]
            goal = {"goal": "A keeper and a storm, with two characters."}
            response = http.post(f"/api/projects/{pid}/agent-runs", json=goal)
            assert response.status_code == 201, response.text
            run_id = response.json()["id"]

            def advancing() -> Job | None:
                return Job.objects.filter(
                    project_id=pid, type="agent-run", status="running"
                ).first()

            wait_for(lambda: advancing() is not None, timeout=30, message="no advance ran")
            victim = advancing()
            workers.kill(workers.procs[-1])  # SIGKILL, mid-advance (the planner is pausing)
            workers.start_one()
        # The web server that started the run is gone too; the run goes on without it.
        awaiting(run_id, "cast")
        # the lost advance was resumed (an attempt more), and ended once it stopped at the cast
        wait_for(lambda: Job.objects.get(pk=victim.pk).status != "running", timeout=10)
        victim.refresh_from_db()
        assert victim.status == "succeeded" and victim.attempts >= 2, victim.error

        with WebServer(env) as web, client(web, user) as http:  # a new web server
            run = http.get(f"/api/agent-runs/{run_id}").json()
            assert run["status"] == "awaiting_decision" and run["checkpoint"]["kind"] == "cast"
            assert (
                http.post(
                    f"/api/agent-runs/{run_id}/decide", json={"decision": "approve"}
                ).status_code
                == 200
            )
            awaiting(run_id, "storyboard")
            assert (
                http.post(
                    f"/api/agent-runs/{run_id}/decide", json={"decision": "approve"}
                ).status_code
                == 200
            )
            wait_for(lambda: run_status(run_id) in ("complete", "failed"), timeout=120)
            run = http.get(f"/api/agent-runs/{run_id}").json()

    assert run["status"] == "complete", (run["error"], run["events"][-3:])
    project = Project.objects.get(pk=pid)
    assert project.status == "complete" and project.final_video
    # nothing doubled by the lost advance: one cast, one character generation, one cut
    assert Character.objects.filter(project=project).count() == 2
    assert Job.objects.filter(project=project, type="character-generation").count() == 1
    assert Frame.objects.filter(scene__project=project).count() == 2
    assert (
        Job.objects.filter(project=project, type="video-stitching", status="succeeded").count() == 1
    )
    types = [e["type"] for e in run["events"]]
    assert types.count("checkpoint") == 2 and types[-1] == "complete"
    starts = [
        e
        for e in run["events"]
        if e["type"] == "action" and e["data"]["name"] == "start_generation"
    ]
    assert len(starts) == 1
