"""PostgreSQL faults against a server of the test's own (tests.postgres.PrivatePostgres): streams
beyond its max_connections hold none of them while the API and a worker carry on; a restart
mid-pipeline, clean and then like a crash, costs the film nothing."""

import os
import socket
import time

import httpx
import pytest
from django.db import connection
from rest_framework.authtoken.models import Token

from director.models import DirectorSession
from filmstudio.support import wait_for
from media.signing import sign
from projects.models import Project
from tests.factories import ProjectFactory, UserFactory
from tests.faults.test_faults import Watchdog, assert_no_duplicates, new_project, run_to_the_end
from tests.pipeline import WebServer, Workers, subprocess_env
from tests.postgres import private_database

pytestmark = pytest.mark.django_db(transaction=True)

OFFLINE = {"TEXT_PROVIDER": "local", "IMAGE_PROVIDER": "local", "VIDEO_PROVIDER": "local"}


@pytest.fixture
def offline(settings):
    for name, value in OFFLINE.items():
        setattr(settings, name, value)
    settings.JOB_HEARTBEAT_TIMEOUT = 2
    settings.JOB_AUTO_RETRIES = 8


def named(env: dict[str, str], application: str) -> dict[str, str]:
    """`env` whose DATABASE_URL tags the process's sessions in pg_stat_activity."""
    sep = "&" if "?" in env["DATABASE_URL"] else "?"
    return {**env, "DATABASE_URL": f"{env['DATABASE_URL']}{sep}application_name={application}"}


def sessions_by_application() -> dict[str, int]:
    """Sessions open on the test's database now, by application_name (this process's own
    left out)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1"
        )
        return dict(cursor.fetchall())


def open_stream(port: int, path: str, headers: dict[str, str]) -> tuple[socket.socket, int]:
    """A GET whose response head has been read and whose body is then left unread (a
    stalled download, an idle SSE client): the socket and the status code."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"GET {path}: the server closed the connection: {head!r}")
        head += chunk
    return sock, int(head.split(b" ", 2)[1])


STREAM_USERS = 20
MAX_CONNECTIONS = 12


def test_streams_beyond_max_connections_hold_none_while_the_api_and_a_worker_work(
    settings, offline
):
    """60 project SSE streams, 60 stalled /blob downloads and 20 director session streams (140)
    against a server that takes 12 sessions in all: every stream opens, and meanwhile the
    API answers every user and a worker generates a cast. Each user keeps to 4 streams."""
    with private_database(settings, max_connections=MAX_CONNECTIONS):
        users = UserFactory.create_batch(STREAM_USERS)
        tokens = {u.pk: Token.objects.create(user=u).key for u in users}
        projects = {u.pk: ProjectFactory(owner=u, num_scenes=2, frames_per_scene=2) for u in users}
        sessions = {u.pk: DirectorSession.objects.create(user=u, page="project") for u in users}
        big = f"{projects[users[0].pk].pk}/final/film-stalled.mp4"
        (settings.MEDIA_ROOT / big).parent.mkdir(parents=True)
        (settings.MEDIA_ROOT / big).write_bytes(os.urandom(32 << 20))  # beyond socket buffers
        env = subprocess_env(settings, **OFFLINE)
        opened = []
        with (
            # Its pool may keep 2 sessions (DB_POOL): a stream holding one would leave the
            # requests after it waiting for a connection that never comes back.
            WebServer(named({**env, "DB_POOL_MAX_SIZE": "2"}, "fs-web")) as web,
            Workers(named(env, "fs-worker")),
        ):
            try:
                for user in users:
                    auth = {"Authorization": f"Token {tokens[user.pk]}"}
                    sse = {**auth, "Accept": "text/event-stream"}
                    for _ in range(3):
                        path = f"/api/events/projects/{projects[user.pk].pk}"
                        opened.append(("sse", *open_stream(web.port, path, sse)))
                        path = f"/blob/{big}?sig={sign(big)}"
                        opened.append(("blob", *open_stream(web.port, path, {})))
                    path = f"/api/director/sessions/{sessions[user.pk].pk}/events"
                    opened.append(("director", *open_stream(web.port, path, sse)))
                statuses = {(kind, status) for kind, _, status in opened}
                assert statuses == {("sse", 200), ("blob", 200), ("director", 200)}
                assert len(opened) == 140 > MAX_CONNECTIONS
                held = _api_and_worker_while_streams_are_open(web.url, users, tokens, projects)
            finally:
                for _, sock, _ in opened:
                    sock.close()
        # The web process had at most the sessions of the API requests in flight (one at a
        # time here) and its pool's, never one per stream; the worker's are its job's and
        # heartbeat's.
        assert held["fs-web"] <= 2, held
        assert held["fs-worker"] <= 4, held


def _api_and_worker_while_streams_are_open(url, users, tokens, projects) -> dict[str, int]:
    """Every user's project list, and a cast generated by the worker, through the API; the
    most sessions each process held on the way."""
    most: dict[str, int] = {"fs-web": 0, "fs-worker": 0}

    def sample() -> None:
        for name, count in sessions_by_application().items():
            if name in most:
                most[name] = max(most[name], count)

    owner = users[0]
    project_id = projects[owner.pk].pk
    with httpx.Client(base_url=url, timeout=10) as http:
        for user in users:
            began = time.monotonic()
            response = http.get(
                "/api/projects", headers={"Authorization": f"Token {tokens[user.pk]}"}
            )
            assert response.status_code == 200, response.text
            assert [p["id"] for p in response.json()["results"]] == [projects[user.pk].pk]
            assert time.monotonic() - began < 5
            sample()
        auth = {"Authorization": f"Token {tokens[owner.pk]}"}
        body = {"project_id": project_id, "count": 2}
        response = http.post("/api/jobs/character-generation", json=body, headers=auth)
        assert response.status_code == 202, response.text

        def cast_ready() -> bool:
            sample()
            reply = http.get(f"/api/projects/{project_id}", headers=auth)
            assert reply.status_code == 200, reply.text
            return reply.json()["status"] == Project.Status.AWAITING_APPROVAL

        wait_for(cast_ready, timeout=60, interval=0.1, message="the worker made no cast")
    return most


@pytest.mark.faults
def test_postgres_restarted_mid_pipeline_cleanly_then_crashed_the_film_completes(settings, offline):
    """The private server is restarted while a scene step runs (a clean `fast` shutdown, down
    for a second), then again while clips are made (`immediate`: a crash, recovered at start).
    Workers, the watchdog and this process lose their sessions each time."""
    with private_database(settings) as server:
        user = UserFactory()
        project = new_project(user)
        restarts: list[tuple[str, str]] = []
        interrupted: list[int] = []
        plan = [("scene-generation", "fast"), ("video-generation", "immediate")]

        def restart_when_running() -> None:
            if len(restarts) == len(plan):
                return
            step, mode = plan[len(restarts)]
            running = list(project.jobs.filter(type=step, status="running"))
            if not running:
                return
            server.stop(mode)
            time.sleep(1.0)  # down for a while: every reconnect in that time fails
            server.start()
            connection.close()  # ours is gone too
            restarts.append((step, mode))
            interrupted.extend(job.pk for job in running)

        env = subprocess_env(settings, **OFFLINE, JOB_HEARTBEAT_TIMEOUT=2, JOB_AUTO_RETRIES=8)
        with Workers(env, count=2), Watchdog(env):
            project = run_to_the_end(project, during=restart_when_running, timeout=180)
        assert restarts == plan
        assert project.status == "complete"
        assert_no_duplicates(project)
        # The steps running at each restart succeeded (reconnected, or run again).
        again = project.jobs.filter(pk__in=interrupted)
        assert set(again.values_list("status", flat=True)) == {"succeeded"}
