"""Bench 6: the director's request → first `message` event, with the offline director, through
a real uvicorn; the baseline is a trivial request's latency on the same server and client."""

import statistics
import time

import httpx

from bench.harness import Context, Result, Row, bench_user, user_token, web_server
from filmstudio.support import first_event, iter_events

TURNS = 20
TARGET_MS = 30.0  # row 6a: the median, local director


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _first_message(client, url: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    body = {"message": "What is the status?", "page": "dashboard"}
    with client.stream("POST", url, json=body, headers=headers) as response:
        response.raise_for_status()
        events = iter_events(response.iter_text())
        first_event(events, "message")
        elapsed = time.perf_counter() - started
        for _ in events:  # let the turn finish before the next one
            pass
    return elapsed


def run(ctx: Context) -> Result:
    token = user_token(bench_user("bench-director"))
    headers = {"Authorization": f"Token {token}"}
    env = {**ctx.env, "DIRECTOR_PROVIDER": "local", "DIRECTOR_TURNS_PER_MINUTE": "100000"}
    with web_server(ctx, env) as (url, _pid), httpx.Client(timeout=30) as client:
        _first_message(client, f"{url}/api/director/stream", headers)  # warm-up
        firsts = [
            _first_message(client, f"{url}/api/director/stream", headers) for _ in range(TURNS)
        ]
        trivial = []
        for _ in range(TURNS):
            started = time.perf_counter()
            client.get(f"{url}/healthz").raise_for_status()
            trivial.append(time.perf_counter() - started)
    median, p95 = statistics.median(firsts) * 1000, _percentile(firsts, 0.95) * 1000
    base = statistics.median(trivial) * 1000
    ctx.log(f"director: first message median {median:.1f} ms, p95 {p95:.1f} ms")
    return Result(
        rows=[
            Row(
                "6a",
                "Director: request to first message (local), median",
                f"{median:.1f} ms",
                f"/healthz median {base:.2f} ms",
                median / base,
                f"≤ {TARGET_MS:g} ms",
                median <= TARGET_MS,
            ),
            Row(
                "6b",
                "Director: request to first message (local), p95",
                f"{p95:.1f} ms",
                f"/healthz median {base:.2f} ms",
                p95 / base,
            ),
        ],
        notes=[f"Bench 6: {TURNS} turns, one at a time, same uvicorn and client as the baseline."],
        data={
            "first_message_ms": [f * 1000 for f in firsts],
            "healthz_ms": [t * 1000 for t in trivial],
        },
    )
