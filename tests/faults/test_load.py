"""Load: 50 users at once, each creating a 2x2 offline film through the API, generating its cast,
approving it and waiting for the film, against a `make run`-like stack of the test's own:
uvicorn, 2 workers and the watchdog on a private PostgreSQL (pgserver's, as `make run` embeds)
and Redis. Loopback only; it ends by itself (LOAD_DEADLINE_S). Every film completes, no
request is answered 5xx, no row is doubled; the latency of the API reads is reported.

`make faults` runs it and prints the figures (also written to var/load.json); FS_LOAD_USERS
changes the number of users (for a quick try)."""

import json
import os
import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest
from django.db.models import Count
from rest_framework.authtoken.models import Token

from filmstudio.support import BASE_DIR
from generation.models import GenerationJob
from projects.models import Project, Take
from tests.factories import UserFactory
from tests.faults.test_database import OFFLINE
from tests.faults.test_faults import Watchdog
from tests.pipeline import WebServer, Workers, subprocess_env
from tests.postgres import private_database

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]

USERS = int(os.environ.get("FS_LOAD_USERS", "50"))
WORKERS = 2
POLL_S = 2.0  # each client's poll interval (jittered), as a studio page refreshing
LOAD_DEADLINE_S = 900.0  # the whole run, films included: then it stops and fails
FIGURES = BASE_DIR / "var" / "load.json"  # the last run's figures (var/ is not versioned)


@dataclass
class Calls:
    """Every request the clients made: (kind, status, seconds); transport errors apart."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    rows: list[tuple[str, int, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def request(self, http: httpx.Client, method: str, path: str, kind: str, **kw):
        began = time.perf_counter()
        try:
            response = http.request(method, path, **kw)
        except httpx.HTTPError as error:
            with self.lock:
                self.errors.append(f"{method} {kind}: {type(error).__name__}: {error}")
            raise
        with self.lock:
            self.rows.append((kind, response.status_code, time.perf_counter() - began))
        return response


def one_user(url: str, token: str, n: int, calls: Calls, deadline: float, done: dict) -> None:
    """What a person does in the studio: create, generate the cast, approve it, wait."""
    headers = {"Authorization": f"Token {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        body = {"title": f"Load {n}", "num_scenes": 2, "frames_per_scene": 2, "clip_seconds": 2}
        created = calls.request(http, "POST", "/api/projects", "create", json=body)
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        job = {"project_id": pid, "count": 2}
        started = calls.request(http, "POST", "/api/jobs/character-generation", "start", json=job)
        assert started.status_code == 202, started.text
        approved = False
        while time.monotonic() < deadline:
            time.sleep(POLL_S * random.uniform(0.5, 1.5))
            project = calls.request(http, "GET", f"/api/projects/{pid}", "read-project").json()
            status = project.get("status")
            if status in {"complete", "failed", "cancelled"}:
                done[pid] = status
                return
            if status == "awaiting_approval" and not approved:
                path = f"/api/projects/{pid}/characters"
                for character in calls.request(http, "GET", path, "read-characters").json():
                    if character["status"] == "pending":
                        path = f"/api/characters/{character['id']}/approve"
                        reply = calls.request(http, "POST", path, "approve")
                        assert reply.status_code in {200, 202}, reply.text
                approved = True
        done[pid] = "timed out"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@pytest.mark.timeout(LOAD_DEADLINE_S + 180)  # beyond pytest's default: it has its own deadline
def test_fifty_users_make_a_film_each_at_once(settings, capsys):
    for name, value in OFFLINE.items():
        setattr(settings, name, value)
    with private_database(settings, max_connections=150):
        users = UserFactory.create_batch(USERS)
        tokens = [Token.objects.create(user=user).key for user in users]
        env = subprocess_env(settings, **OFFLINE)
        calls, done = Calls(), {}
        failures: list[BaseException] = []

        def run(n: int) -> None:
            try:
                one_user(web.url, tokens[n], n, calls, deadline, done)
            except BaseException as error:
                failures.append(error)

        with WebServer(env) as web, Workers(env, count=WORKERS), Watchdog(env):
            began = time.monotonic()
            deadline = began + LOAD_DEADLINE_S
            clients = [threading.Thread(target=run, args=(n,)) for n in range(USERS)]
            for client in clients:
                client.start()
            for client in clients:
                client.join(timeout=max(1.0, deadline + 60 - time.monotonic()))
            elapsed = time.monotonic() - began
        figures = report(calls, done, elapsed)
        with capsys.disabled():  # the figures are the point: shown by `make faults`, and kept
            print(f"\nload: {json.dumps(figures)}")
        FIGURES.parent.mkdir(parents=True, exist_ok=True)
        FIGURES.write_text(json.dumps(figures, indent=2) + "\n")
        assert not failures, failures[:3]
        assert not calls.errors, calls.errors[:5]
        assert figures["server_errors"] == 0, Counter(s for _, s, _ in calls.rows)
        assert Counter(done.values()) == {"complete": USERS}
        assert_no_doubled_rows(USERS)


def report(calls: Calls, done: dict, elapsed: float) -> dict:
    reads = [s for kind, _, s in calls.rows if kind.startswith("read")]
    writes = [s for kind, _, s in calls.rows if not kind.startswith("read")]
    return {
        "users": USERS,
        "workers": WORKERS,
        "films_complete": sum(1 for s in done.values() if s == "complete"),
        "seconds": round(elapsed, 1),
        "requests": len(calls.rows),
        "server_errors": sum(1 for _, status, _ in calls.rows if status >= 500),
        "statuses": dict(Counter(str(status) for _, status, _ in calls.rows)),
        "transport_errors": len(calls.errors),
        "reads": len(reads),
        "read_p50_ms": round(statistics.median(reads) * 1000, 1) if reads else None,
        "read_p95_ms": round(percentile(reads, 0.95) * 1000, 1) if reads else None,
        "read_p99_ms": round(percentile(reads, 0.99) * 1000, 1) if reads else None,
        "read_max_ms": round(max(reads) * 1000, 1) if reads else None,
        "write_p99_ms": round(percentile(writes, 0.99) * 1000, 1) if writes else None,
    }


def assert_no_doubled_rows(films: int) -> None:
    """Each film has exactly its cast, scenes, frames and clips; no unit has two takes (no redo
    was asked for) and no job ran twice to success."""
    per_project = Project.objects.annotate(
        characters_n=Count("characters", distinct=True),
        scenes_n=Count("scenes", distinct=True),
        frames_n=Count("scenes__frames", distinct=True),
        clips_n=Count("scenes__frames__video", distinct=True),
    ).values_list("characters_n", "scenes_n", "frames_n", "clips_n")
    assert Counter(per_project) == {(2, 2, 4, 4): films}
    kinds = Counter(Take.objects.values_list("kind", flat=True))
    assert {k: kinds[k] for k in ("portrait", "keyframe", "clip", "film")} == {
        "portrait": 2 * films,
        "keyframe": 4 * films,
        "clip": 4 * films,
        "film": films,
    }
    takes = Take.objects.values("project", "kind", "character", "frame").annotate(n=Count("id"))
    assert not takes.filter(n__gt=1).exists(), list(takes.filter(n__gt=1)[:5])
    jobs = (
        GenerationJob.objects.filter(status="succeeded")
        .values("project", "type", "target_type", "target_id")
        .annotate(n=Count("id"))
    )
    assert not jobs.filter(n__gt=1).exists(), list(jobs.filter(n__gt=1)[:5])
