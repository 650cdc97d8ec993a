"""Helpers to run the pipeline in tests: in-process, or with real worker and server processes."""

import os
import subprocess
from urllib.parse import quote

from filmstudio.support import (
    free_port,
    kill_tree,
    start_process,
    stop_process,
    wait_for,
    web_command,
    web_up,
    worker_command,
)
from generation.inline import work_once


def drain(*, rounds: int = 300) -> None:
    """Run every queued and scheduled job (polls, back-offs: at once) until nothing is left."""
    for _ in range(rounds):
        if not work_once(everything=True):
            return
    raise AssertionError("the pipeline did not settle")


def cast_approved(api, project, *, count: int = 1) -> None:
    """`count` characters drawn through the API and approved, and what follows run: the
    project then waits at the storyboard (or is complete, without that checkpoint)."""
    body = {"project_id": project.pk, "count": count}
    response = api.post("/api/jobs/character-generation", body, format="json")
    assert response.status_code == 202, response.content
    drain()
    for character in project.characters.all():
        assert api.post(f"/api/characters/{character.pk}/approve").status_code == 200
    drain()
    project.refresh_from_db()


def database_url(db: dict) -> str:
    """A DATABASE_URL for the test database, for subprocesses (workers, web servers)."""
    auth = quote(db["USER"] or "")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"])
    host = db["HOST"] or ""
    if host.startswith("/"):
        return f"postgresql://{auth}@/{db['NAME']}?host={quote(host)}"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgresql://{auth}@{host}{port}/{db['NAME']}"


def subprocess_env(settings, **extra) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GEMINI", "FAL", "PYTEST", "TEST_DATABASE", "MEDIA_S3", "SUPABASE"))
        and k != "PUBLIC_BASE_URL"
    }
    env.update(
        DATABASE_URL=database_url(settings.DATABASES["default"]),
        DB_POOLER="true" if settings.DB_POOLER else "false",  # tests.postgres.django_database
        REDIS_URL=settings.REDIS_URL,
        DJANGO_DEBUG="true",
        SECRET_KEY=settings.SECRET_KEY,  # the same signed URLs and sessions as the test process
        VAR_DIR=str(settings.VAR_DIR),
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        MEDIA_BASE_HEIGHT=str(settings.MEDIA_BASE_HEIGHT),
        MEDIA_FPS=str(settings.MEDIA_FPS),
        VIDEO_POLL_INTERVAL=str(settings.VIDEO_POLL_INTERVAL),
        PROVIDER_BACKOFF_BASE=str(settings.PROVIDER_BACKOFF_BASE),
        PROVIDER_BACKOFF_CAP=str(settings.PROVIDER_BACKOFF_CAP),
        JOB_HEARTBEAT_INTERVAL="0.2",
        LOG_LEVEL="warning",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Workers:
    """Real subprocesses (`manage.py filmworker` by default), killed on exit."""

    command = worker_command()

    def __init__(self, env: dict[str, str], count: int = 1):
        self.env, self.count, self.procs = env, count, []

    def start_one(self) -> subprocess.Popen:
        proc = start_process(self.command, self.env)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        kill_tree(proc)

    def __enter__(self):
        for _ in range(self.count):
            self.start_one()
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            if proc.poll() is None:
                kill_tree(proc)


class WebServer:
    """A real uvicorn serving the ASGI app on a free loopback port."""

    def __init__(self, env: dict[str, str]):
        self.port, self.env = free_port(), env
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.proc = start_process(web_command(self.port), self.env)
        wait_for(lambda: web_up(self.url), timeout=30, message="uvicorn did not start")
        return self

    def __exit__(self, *exc):
        stop_process(self.proc)
