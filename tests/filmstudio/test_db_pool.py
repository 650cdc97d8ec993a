"""The connection pool (DB_POOL, psycopg_pool through Django): on by default, off behind a
transaction pooler; requests served under ASGI (a fresh thread each) reuse its connections; a
connection the server dropped is replaced before a request gets it; and a forked child never
uses a connection or pool of its parent's (filmstudio.db)."""

import os

import httpx
import pytest
from django.db import connection
from rest_framework.authtoken.models import Token

from filmstudio.support import first_event, iter_events, wait_for
from tests.asgi_server import uvicorn_in_thread
from tests.factories import ProjectFactory
from tests.filmstudio.test_settings import load_settings

SHOW_POOL = (
    "from django.conf import settings as s; db = s.DATABASES['default']\n"
    "print(s.DB_POOL, db['OPTIONS'].get('pool'))"
)


def test_the_pool_is_on_by_default_and_off_behind_a_transaction_pooler(tmp_path):
    run = load_settings(tmp_path, then=SHOW_POOL, DB_POOL_MAX_SIZE="7")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("True {'min_size': 1, 'max_size': 7,")
    for env in ({"DB_POOLER": "true"}, {"DB_CONN_MAX_AGE": "60"}, {"DB_POOL": "false"}):
        run = load_settings(tmp_path, then=SHOW_POOL, **env)
        assert run.returncode == 0, run.stderr
        assert run.stdout.split() == ["False", "None"], env
    # Asked for both ways at once (a pool keeps no connection per thread): said plainly.
    run = load_settings(tmp_path, then=SHOW_POOL, DB_POOL="true", DB_CONN_MAX_AGE="60")
    assert run.returncode != 0 and "DB_CONN_MAX_AGE" in run.stderr
    run = load_settings(tmp_path, then=SHOW_POOL, DB_POOL_MIN_SIZE="5", DB_POOL_MAX_SIZE="2")
    assert run.returncode != 0 and "DB_POOL_MAX_SIZE" in run.stderr


def _backend_pids() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return {pid for (pid,) in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_requests_under_asgi_share_the_pools_connections_and_survive_dropped_ones(user):
    project = ProjectFactory(owner=user)
    headers = {"Authorization": f"Token {Token.objects.create(user=user).key}"}
    stats_before = connection.pool.get_stats()
    with (
        uvicorn_in_thread() as url,
        httpx.Client(base_url=url, headers=headers, timeout=30) as http,
    ):
        for _ in range(12):
            assert http.get(f"/api/projects/{project.pk}").status_code == 200
        stats = connection.pool.get_stats()
        # Twelve requests, each in a thread of its own: no new PostgreSQL session per request.
        opened = stats.get("connections_num", 0) - stats_before.get("connections_num", 0)
        assert opened <= 2, stats
        assert stats["requests_num"] - stats_before.get("requests_num", 0) >= 12
        # The server drops every idle session of the pool (a restart, a failover, a pooler's
        # idle timeout): the next request gets a checked, working connection.
        dropped = _backend_pids()
        assert dropped
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [list(dropped)]
            )
        for _ in range(3):
            assert http.get(f"/api/projects/{project.pk}").status_code == 200
        assert not _backend_pids() & dropped


@pytest.mark.django_db(transaction=True)
def test_streamed_director_turns_give_every_connection_back(user, settings):
    """More streamed turns than the pool has connections: each gives back what it borrowed
    (the request's, the turn thread's, and the one the live events' flush takes at the
    request's end), so the next request always finds one."""
    settings.DIRECTOR_PROVIDER = "local"
    settings.DIRECTOR_LOCAL_DELAY = 0.0
    settings.DIRECTOR_TURNS_PER_MINUTE = 1000
    headers = {"Authorization": f"Token {Token.objects.create(user=user).key}"}
    turns = connection.pool.max_size + 3
    body = {"message": "What is the status?", "page": "dashboard"}
    with uvicorn_in_thread() as url, httpx.Client(base_url=url, headers=headers) as http:
        for _ in range(turns):
            with http.stream("POST", "/api/director/stream", json=body, timeout=15) as response:
                assert response.status_code == 200
                events = iter_events(response.iter_text())
                first_event(events, "complete")

        def all_back() -> bool:
            stats = connection.pool.get_stats()
            return stats["pool_available"] >= stats["pool_size"] - 1  # this thread's own

        wait_for(
            all_back,
            timeout=5,
            message=f"connections not given back: {connection.pool.get_stats()}",
        )


@pytest.mark.django_db(transaction=True)
def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents_alone():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        parent_pid = cursor.fetchone()[0]
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: as RQ's work horse, query at once
        code = 1
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                os.write(write, str(cursor.fetchone()[0]).encode())
            connection.close()
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    got = os.read(read, 64).decode()
    os.close(read)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert got and int(got) != parent_pid  # its own session, not the parent's socket
    with connection.cursor() as cursor:  # and the parent's session is untouched
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] == parent_pid
