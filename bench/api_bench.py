"""Bench 4: the API under load. `GET /api/projects/{id}` on a 10 scenes × 5 frames project (with
clips) vs `/healthz`, same uvicorn process (1 worker), same load tool (wrk), same settings;
plus the SQL queries each request makes, counted in-process, the PostgreSQL sessions the server
opened per request under load, and (4e) the request's server time against its floor: the same
SQL by raw psycopg, the same URL signatures and `json.dumps` of the same document."""

# The tables are for people: × (ratios), − and ÷ are meant.
# ruff: noqa: RUF001, RUF002, RUF003

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path

import httpx
import psycopg
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bench.harness import (
    BenchError,
    Context,
    Result,
    Row,
    bench_user,
    build_project,
    user_token,
    web_server,
)
from media.signing import sign

SCENES, FRAMES = 10, 5
DURATION_S = 5
WARMUP_S = 1
CONNECTIONS = 8
FLOOR_TARGET = 2.0  # row 4e: server time ÷ floor
FLOOR_REPEAT = 30
_SIGNED = re.compile(r'"/blob/([^"?]+)\?sig=')
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def run(ctx: Context) -> Result:
    user = bench_user("bench-api")
    token = user_token(user)
    ctx.log(f"api: building a {SCENES}×{FRAMES} project with clips")
    big = build_project(user, title="Bench API", scenes=SCENES, frames=FRAMES, videos=True)
    small = build_project(user, title="Bench API small", scenes=1, frames=1, videos=True)
    headers = {"Authorization": f"Token {token}"}
    in_process = {
        "detail": _in_process(f"/api/projects/{big.pk}", headers),
        "detail_1x1": _in_process(f"/api/projects/{small.pk}", headers),
        "healthz": _in_process("/healthz", {}),
    }
    queries = {name: r["queries"] for name, r in in_process.items()}
    floor = _server_time_and_floor(f"/api/projects/{big.pk}", headers)
    ctx.log(
        f"api: server time {floor['server_ms']:.2f} ms, floor {floor['floor_ms']:.2f} ms "
        f"(SQL {floor['sql_ms']:.2f}, {floor['signatures']} signatures {floor['sign_ms']:.2f}, "
        f"json.dumps {floor['dumps_ms']:.2f})"
    )
    tool = load_tool(ctx)
    ctx.rss.phase = "api"
    with web_server(ctx, ctx.env) as (url, _pid):
        ctx.log(f"api: uvicorn at {url}; load with {tool.name}, {CONNECTIONS} connections")
        results = {}
        for name, path, hdrs in (
            ("healthz", "/healthz", {}),
            ("detail", f"/api/projects/{big.pk}", headers),
        ):
            tool.measure(url + path, hdrs, WARMUP_S)  # warm-up, not counted
            opened = _sessions_opened()
            results[name] = tool.measure(url + path, hdrs, DURATION_S)
            r = results[name]
            r["sessions_per_request"] = (_sessions_opened() - opened) / max(r["requests"], 1)
            ctx.log(
                f"api: {path}: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, "
                f"p99 {r['p99_ms']:.2f} ms, {r['bytes_per_request']:.0f} B, "
                f"{r['sessions_per_request']:.3f} PostgreSQL sessions opened per request"
            )
    detail, health = results["detail"], results["healthz"]
    floor_ratio = floor["server_ms"] / floor["floor_ms"]
    rows = [
        Row(
            "4a",
            f"API GET /api/projects/{{id}} ({SCENES}×{FRAMES} with clips): throughput",
            f"{detail['rps']:.0f} req/s",
            f"/healthz {health['rps']:.0f} req/s",
            detail["rps"] / health["rps"],
        ),
        Row(
            "4b",
            "API GET /api/projects/{id}: median latency",
            f"p50 {detail['p50_ms']:.1f} ms",
            f"/healthz p50 {health['p50_ms']:.2f} ms",
            detail["p50_ms"] / health["p50_ms"],
        ),
        Row(
            "4c",
            "API GET /api/projects/{id}: tail latency",
            f"p99 {detail['p99_ms']:.1f} ms",
            f"/healthz p99 {health['p99_ms']:.2f} ms",
            detail["p99_ms"] / health["p99_ms"],
        ),
        Row(
            "4d",
            "API GET /api/projects/{id}: SQL queries per request",
            f"{queries['detail']} queries ({SCENES}×{FRAMES})",
            f"same endpoint on a 1×1 project: {queries['detail_1x1']}; /healthz: "
            f"{queries['healthz']}",
            queries["detail"] / queries["detail_1x1"] if queries["detail_1x1"] else None,
        ),
        Row(
            "4e",
            f"API GET /api/projects/{{id}} ({SCENES}×{FRAMES}): server time ÷ its floor",
            f"{floor['server_ms']:.2f} ms in-process",
            f"same {floor['queries']} queries by raw psycopg + {floor['signatures']} URL "
            f"signatures + json.dumps: {floor['floor_ms']:.2f} ms",
            floor_ratio,
            f"≤ {FLOOR_TARGET:g}×",
            floor_ratio <= FLOOR_TARGET,
        ),
        Row(
            "4f",
            "API GET /api/projects/{id}: PostgreSQL sessions opened per request (under wrk)",
            f"{detail['sessions_per_request']:.3f} per request",
            f"/healthz {health['sessions_per_request']:.3f}; {detail['requests']} requests",
            None,
        ),
    ]
    notes = [
        f"Bench 4: {tool.description}; {DURATION_S} s per endpoint after a {WARMUP_S} s warm-up, "
        f"{CONNECTIONS} connections, token auth header on the API; one uvicorn process "
        "(DJANGO_DEBUG=false, no access log); response "
        f"{detail['bytes_per_request'] / 1024:.1f} KiB. SQL queries counted in-process with "
        "CaptureQueriesContext (token lookup and session middleware included).",
        f"Bench 4: the same requests in-process (django.test.Client, no server, no thread "
        f"hops): /api/projects/{{id}} {in_process['detail']['ms']:.1f} ms, 1×1 project "
        f"{in_process['detail_1x1']['ms']:.1f} ms, /healthz {in_process['healthz']['ms']:.2f} ms "
        "per request (mean of 20): what the view and serializers cost, apart from ASGI.",
        f"Bench 4e: server time = median of {FLOOR_REPEAT} in-process requests (token lookup, "
        "middleware, view, rendering); floor = median of the same SQL statements (captured from "
        "one request, run on one open psycopg connection, rows fetched; psycopg prepares a "
        "statement run 5 times, so these run prepared) + signing each of the "
        "document's blob URLs + `json.dumps` of the document, each interleaved with the requests: "
        f"SQL {floor['sql_ms']:.2f} ms, signatures {floor['sign_ms']:.2f} ms, dumps "
        f"{floor['dumps_ms']:.2f} ms.",
        "Bench 4f: PostgreSQL sessions opened (pg_stat_database.sessions of the bench database) "
        "while wrk ran, ÷ the requests wrk made; the process's connection pool (DB_POOL) keeps "
        "them open between requests.",
    ]
    if tool.note:
        notes.append(f"Bench 4: {tool.note}")
    return Result(
        rows,
        notes,
        {
            "tool": tool.name,
            "results": results,
            "queries": queries,
            "in_process": in_process,
            "floor": floor,
            "rss_mib": ctx.rss.phase_peaks("api"),
        },
    )


def _in_process(path: str, headers: dict[str, str], repeat: int = 20) -> dict[str, float]:
    """SQL queries of one request, and the mean time of a request, through Django's test
    client in this process."""
    client = Client(HTTP_HOST="127.0.0.1", headers=headers)
    client.get(path)  # warm caches (content types, URL resolver)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    queries = len(captured.captured_queries)  # now: the next request empties the query log
    if response.status_code != 200:
        raise BenchError(f"GET {path} answered {response.status_code}")
    began = time.perf_counter()
    for _ in range(repeat):
        client.get(path)
    ms = (time.perf_counter() - began) / repeat * 1000
    return {"queries": queries, "ms": ms}


def _server_time_and_floor(path: str, headers: dict[str, str]) -> dict[str, float]:
    """Row 4e: the in-process request, and what it cannot do with less: its own SQL on an open
    connection, its URL signatures and serializing its document."""
    client = Client(HTTP_HOST="127.0.0.1", headers=headers)
    client.get(path)  # warm
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    if response.status_code != 200:
        raise BenchError(f"GET {path} answered {response.status_code}")
    statements = [q["sql"] for q in captured.captured_queries]
    document = response.json()
    names = _SIGNED.findall(response.content.decode())
    db = connection.settings_dict
    conninfo = psycopg.conninfo.make_conninfo(
        dbname=db["NAME"],
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        host=db["HOST"] or None,
        port=db["PORT"] or None,
    )
    with psycopg.connect(conninfo, autocommit=True) as raw:

        def run_sql() -> None:
            for statement in statements:
                raw.execute(statement).fetchall()

        run_sql()  # warm
        # Interleaved, so that the request and its floor see the same load on a shared machine.
        times: dict[str, list[float]] = {"server": [], "sql": [], "sign": [], "dumps": []}
        for _ in range(FLOOR_REPEAT):
            for part, work in (
                ("server", lambda: client.get(path)),
                ("sql", run_sql),
                ("sign", lambda: [sign(blob) for blob in names]),
                ("dumps", lambda: json.dumps(document)),
            ):
                began = time.perf_counter()
                work()
                times[part].append(time.perf_counter() - began)
    server_ms, sql_ms, sign_ms, dumps_ms = (
        statistics.median(times[part]) * 1000 for part in ("server", "sql", "sign", "dumps")
    )
    return {
        "server_ms": server_ms,
        "floor_ms": sql_ms + sign_ms + dumps_ms,
        "sql_ms": sql_ms,
        "sign_ms": sign_ms,
        "dumps_ms": dumps_ms,
        "queries": len(statements),
        "signatures": len(names),
    }


def _sessions_opened() -> int:
    """Sessions ever opened on this database (PostgreSQL counts them in pg_stat_database; its
    statistics reach the view within a second)."""
    time.sleep(1.2)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


# --------------------------------------------------------------------------- load tools


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise BenchError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _size(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)([KMG]?B)", text.strip())
    if not match:
        return 0.0
    return float(match.group(1)) * {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30}[match.group(2)]


class Wrk:
    name = "wrk"
    note = ""

    def __init__(self, binary: str):
        self.binary = binary
        version = subprocess.run([binary, "-v"], capture_output=True, text=True).stdout
        self.description = f"load by {version.splitlines()[0].split(' Copyright')[0].strip()}"

    def measure(self, url: str, headers: dict[str, str], seconds: int) -> dict[str, float]:
        command = [self.binary, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        out = subprocess.run(
            [*command, url], capture_output=True, text=True, timeout=seconds + 30, check=True
        ).stdout
        if "Non-2xx" in out or "Socket errors" in out:
            raise BenchError(f"wrk saw errors on {url}:\n{out}")
        rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
        p50 = _seconds(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
        p99 = _seconds(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
        total = re.search(r"(\d+) requests in [0-9.]+\w+, ([0-9.]+[KMG]?B) read", out)
        size = _size(total.group(2)) / int(total.group(1)) if total else 0.0
        return {
            "rps": rps,
            "p50_ms": p50 * 1e3,
            "p99_ms": p99 * 1e3,
            "bytes_per_request": size,
            "requests": int(total.group(1)) if total else 0,
        }


class HttpxLoad:
    """Fallback when wrk cannot be had: closed-loop httpx clients in threads (slower than wrk;
    its own CPU use limits the figures, so compare ratios only)."""

    name = "httpx"

    def __init__(self, note: str):
        self.note = note
        self.description = "load by a Python httpx loop (wrk unavailable)"

    def measure(self, url: str, headers: dict[str, str], seconds: int) -> dict[str, float]:
        latencies: list[float] = []
        sizes: list[int] = []
        lock = threading.Lock()
        deadline = time.monotonic() + seconds

        def loop() -> None:
            mine, got = [], []
            with httpx.Client(headers=headers, timeout=30) as client:
                while time.monotonic() < deadline:
                    began = time.perf_counter()
                    response = client.get(url)
                    mine.append(time.perf_counter() - began)
                    if response.status_code != 200:
                        raise BenchError(f"GET {url} answered {response.status_code}")
                    got.append(len(response.content))
            with lock:
                latencies.extend(mine)
                sizes.extend(got)

        threads = [threading.Thread(target=loop) for _ in range(CONNECTIONS)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        latencies.sort()
        return {
            "rps": len(latencies) / elapsed,
            "p50_ms": statistics.median(latencies) * 1e3,
            "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1e3,
            "bytes_per_request": statistics.fmean(sizes) if sizes else 0.0,
            "requests": len(latencies),
        }


def load_tool(ctx: Context) -> Wrk | HttpxLoad:
    """wrk if present; else try Debian's package (as root, unless BENCH_NO_INSTALL=1); else
    the httpx fallback, said plainly in the results."""
    found = shutil.which("wrk")
    if found:
        return Wrk(found)
    apt = shutil.which("apt-get")
    if apt and os.geteuid() == 0 and not os.environ.get("BENCH_NO_INSTALL"):
        ctx.log("api: wrk is missing; installing Debian's wrk package")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in ([apt, "install", "-y", "-q", "wrk"], [apt, "update", "-q"]):
            subprocess.run(command, env=env, capture_output=True, timeout=300)
            if Path("/usr/bin/wrk").exists():
                break
        if not Path("/usr/bin/wrk").exists():  # after an update, one more try
            subprocess.run(
                [apt, "install", "-y", "-q", "wrk"], env=env, capture_output=True, timeout=300
            )
        found = shutil.which("wrk")
        if found:
            return Wrk(found)
    note = "wrk could not be found or installed: figures come from the httpx fallback."
    ctx.log(f"api: {note}")
    return HttpxLoad(note)
