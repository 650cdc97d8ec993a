"""`make bench`: FilmStudio's benchmarks, each figure a ratio against a baseline measured in the
same run. Prints a Markdown summary table (for the README) and writes var/bench.json.

    python bench/run.py [--only pipeline,api] [--skip stitch] [--worker-class dotted.Path]
                        [--profile DIR]   (py-spy on PATH or BENCH_PYSPY=/path/to/py-spy)

Runs against a database and a Redis DB of its own, derived from DATABASE_URL / REDIS_URL
(`<name>_bench`, created and migrated if missing, emptied at start; Redis DB 14, or
BENCH_REDIS_DB, flushed at start), so a developer's data is never touched. Every worker and
server it starts runs in its own process group and is killed at the end.

Adding a benchmark (bench 6, the director's first-message latency, goes here): write a module
with `run(ctx: bench.harness.Context) -> bench.harness.Result` and fill in its entry in BENCHES.
"""

# The tables are for people: × (ratios), − and ÷ are meant.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import django
import psutil
import psycopg
from psycopg import sql
from rich.console import Console
from rich.markup import escape

BASE_DIR = Path(__file__).resolve().parents[1]
if str(BASE_DIR) not in sys.path:  # run as `python bench/run.py`: bench/ is on the path, not /
    sys.path.insert(0, str(BASE_DIR))

# The project's modules are imported where they are used: after the sys.path fix above and, for
# bench.harness and the benches, after main() has pointed the environment at the bench's own
# database and called django.setup().
if TYPE_CHECKING:
    from bench.harness import Context, Result

DEFAULT_REDIS_DB = 14
# A target is called held or missed only when the machine's 1-minute load average before the
# benches and after them was at most this (2 cores, shared): above it, the Holds column says
# "not judged" with the two loads.
MAX_LOAD = 1.5
STITCH_TARGET = 1.2  # row 5: the app's stitch ÷ the bare concat
SOUND_TARGET = 3.0  # row 5d: the stitch with sound ÷ without (issue 13)
# Settings every process of the bench gets (printed with the results).
BENCH_SETTINGS = {
    "MEDIA_BASE_HEIGHT": "180",  # small renders, so ffmpeg does not dominate benches 1 and 2
    "VIDEO_POLL_INTERVAL": "0.25",
    "GEMINI_RPM": "100000",  # the limiter still runs on every call but never waits
    "LOG_LEVEL": "warning",
    "DJANGO_DEBUG": "false",  # production-like: no query log in workers and the web server
    "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback
    "TEXT_PROVIDER": "local",
    "IMAGE_PROVIDER": "local",
    "VIDEO_PROVIDER": "local",
    "DIRECTOR_PROVIDER": "local",
}
# Never reach a real provider, bucket or webhook from a bench.
_DROPPED_ENV_PREFIXES = ("GEMINI", "FAL_", "MEDIA_S3", "PUBLIC_BASE_URL", "SUPABASE", "PYTEST")


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Bench:
    number: str
    name: str  # for --only / --skip
    title: str
    target: str | None  # "module:function" returning a Result; None = not written yet


BENCHES: list[Bench] = [
    Bench("1", "pipeline", "Pipeline makespan", "bench.pipeline_bench:run"),
    Bench("2", "video", "Workers not held by remote video jobs", "bench.video_bench:run"),
    Bench("3", "overhead", "Orchestration overhead", "bench.overhead_bench:run"),
    Bench("4", "api", "API: GET /api/projects/{id}", "bench.api_bench:run"),
    Bench("5", "stitch", "Stitch 24 five-second 720p clips", "bench.run:stitch"),
    # ---- HOOK: bench 6 ------------------------------------------------------------------
    # The director's request → first `message` event latency (median, p95). To add it, write
    # bench/director_bench.py with `run(ctx) -> Result` (rows "6a"/"6b" with ratios against a
    # baseline from the same run) and set target="bench.director_bench:run". Nothing else
    # changes: the runner, the table and var/bench.json pick it up from here.
    Bench("6", "director", "Director: request to first message event", "bench.director_bench:run"),
    # --------------------------------------------------------------------------------------
    Bench("7", "rss", "Peak RSS of the web process and a worker", "bench.run:rss"),
    Bench("8", "export", "Export job: the hand-off zip", "bench.export_bench:run"),
    Bench("9", "cost", "Cost: the quote against the ledger and the bill", "bench.cost_bench:run"),
    Bench(
        "10",
        "consistency",
        "Consistency: portraits in every keyframe request, the judge's share of the step",
        "bench.consistency_bench:run",
    ),
]


def resolve(target: str) -> Callable[[Context], Result]:
    module, _, function = target.partition(":")
    if module == "bench.run":
        module = __name__
    return getattr(importlib.import_module(module), function)


# --------------------------------------------------------------------------- bench 5 and 7


def stitch(ctx: Context) -> Result:
    from bench import stitch_bench  # noqa: PLC0415 (project module: see the note at the top)
    from bench.harness import Result, Row  # noqa: PLC0415 (needs django.setup())

    ctx.log("stitch: 24 × 5 s 720p clips: stream copy, re-encode, cp (about a minute)")
    r = stitch_bench.run(24, 5, 720, app=_app_stitch)
    cp_s = float(r["cp_s"])
    app_s, bare_s = float(r["app_s"]), float(r["bare_s"])
    app_row = Row(
        "5",
        "Stitch 24 × 5 s 720p clips through the app (the stitch step's cut)",
        f"{app_s:.2f} s",
        f"bare `ffmpeg -f concat -c copy` {bare_s:.2f} s",
        app_s / bare_s,
        "≤ 1.2×",
        app_s / bare_s <= STITCH_TARGET,
    )
    rows = [
        app_row,
        Row(
            "5a",
            "Stitch 24 × 5 s 720p clips by stream copy",
            f"{r['copy_s']:.2f} s",
            f"cp of the same bytes {cp_s * 1000:.0f} ms",
            r["copy_s"] / cp_s,
        ),
        Row(
            "5b",
            "Stitch 24 × 5 s 720p clips by re-encoding",
            f"{r['reencode_s']:.1f} s",
            f"cp of the same bytes {cp_s * 1000:.0f} ms",
            r["reencode_s"] / cp_s,
        ),
        Row(
            "5c",
            "Stitch: re-encode ÷ stream copy",
            f"{r['reencode_s']:.1f} s",
            f"stream copy {r['copy_s']:.2f} s",
            r["reencode_s"] / r["copy_s"],
        ),
        Row(
            "5d",
            "Stitch with sound (24 lines, a music bed, -14 LUFS) ÷ without",
            f"{r['sound_s']:.2f} s",
            f"stream copy {r['copy_s']:.2f} s",
            r["sound_over_copy"],
            f"≤ {SOUND_TARGET:g}×",
            r["sound_over_copy"] <= SOUND_TARGET,
        ),
    ]
    notes = [
        f"Bench 5: the stitch step's `cut()` (generation.steps.stitch) on a 4 × 6 project whose "
        f"clips are those files, best of 5, against the same concat command the app runs "
        f"(`-f concat -safe 0 -c copy -movflags +faststart`) alone, best of 5, interleaved; "
        f"without +faststart it takes {float(r['bare_plain_s']):.2f} s. The app runs no other "
        "ffmpeg: it reads the clips' MP4 headers (tracks, SPS/PPS, AAC configuration, frame "
        "rate) in Python, and what it wrote from the concat's own report.",
        f"Bench 5a–5d: {r['clips']} clips × {r['seconds_per_clip']} s at {r['size']}, "
        f"{int(r['total_bytes']) / 1e6:.1f} MB; ffmpeg {r['binary']}; stream copy "
        f"{r['copy_x_realtime']:.0f}× realtime (best of 3, includes probing every clip), "
        f"re-encode {r['reencode_x_realtime']:.1f}× realtime; cp = `cp` of one file holding all "
        "the clips' bytes (best of 3, page cache warm).",
        f"Bench 5d: the stream copy, then 24 eSpeak NG lines (one per clip) and a synthesized "
        f"bed mixed (sidechain ducking, fades), measured, levelled to -14 LUFS by one gain and "
        f"muxed (picture copied), "
        f"best of 2: {r['sound_lufs']:.1f} LUFS, true peak {r['sound_true_peak']:.1f} dBTP "
        f"({r['sound_normalization']}), {r['sound_output_duration']:.2f} s out. Its floor: one "
        f"AAC encode of the film's mix ({r['sound_aac_s']:.2f} s, best of 2) on top of the copy, "
        f"{r['sound_floor_over_copy']:.1f}× the stitch without sound: the 3× target is below "
        "what encoding the film's sound costs with ffmpeg's AAC encoder.",
    ]
    return Result(rows, notes, dict(r))


def _app_stitch(paths: list[Path]) -> tuple[Callable[[Path], None], list[Path]]:
    """The stitch step's cut() of a 4x6 project whose clips are `paths` (its frames, clips
    and takes made through the models), at the clips' size: a function making it in a folder,
    and the clips' files in the media storage (what the bare concat is run on)."""
    from django.core.files.storage import default_storage  # noqa: PLC0415 (needs django.setup())
    from django.test import override_settings  # noqa: PLC0415 (needs django.setup())

    from bench.harness import bench_user  # noqa: PLC0415 (needs django.setup())
    from generation.steps import stitch as step  # noqa: PLC0415 (needs django.setup())
    from tests.exports import exportable_project  # noqa: PLC0415 (needs django.setup())

    project = exportable_project(
        bench_user("stitch-bench"), scenes=4, frames=len(paths) // 4, clip=paths[0],
        title="Stitch bench",
    )  # fmt: skip

    def cut(folder: Path) -> None:
        folder.mkdir()
        with override_settings(MEDIA_BASE_HEIGHT=720, MEDIA_FPS=24):
            film, summary = step.cut(project, step.film_frames(project), folder)
        if summary["method"] != "copy":
            raise RuntimeError(f"the bench's cut was {summary['method']}, not a stream copy")
        film.unlink()

    frames = step.film_frames(project)
    return cut, [Path(default_storage.path(frame.video.file)) for frame in frames]


RSS_WEB_MIB, RSS_WORKER_MIB = 150, 200  # rows 7a and 7b: peak RSS held under these


def rss(ctx: Context) -> Result:
    from bench.harness import BenchError, Result, Row  # noqa: PLC0415 (needs django.setup())

    sampler = ctx.rss
    rows, notes = [], []
    web = sampler.phase_peaks("api").get("web", {})
    worker = sampler.phase_peaks("pipeline").get("worker", {})
    if not web and not worker:
        raise BenchError("nothing sampled: run bench 1 (pipeline) and/or 4 (api)")
    if web:
        idle = sampler.idle.get("web", 0.0)
        rows.append(
            Row(
                "7a",
                "Peak RSS, web process (uvicorn, during bench 4)",
                f"{web['main']:.0f} MiB",
                f"same process idle after start {idle:.0f} MiB",
                web["main"] / idle if idle else None,
                f"≤ {RSS_WEB_MIB} MiB",
                web["main"] <= RSS_WEB_MIB,
            )
        )
    if worker:
        idle = sampler.idle.get("worker", 0.0)
        peak = max(worker.get("main", 0.0), worker.get("child", 0.0))
        rows.append(
            Row(
                "7b",
                "Peak RSS, worker (rqworker or its forked job process, during bench 1)",
                f"{peak:.0f} MiB",
                f"rqworker idle after start {idle:.0f} MiB",
                peak / idle if idle else None,
                f"≤ {RSS_WORKER_MIB} MiB",
                peak <= RSS_WORKER_MIB,
            )
        )
        notes.append(
            f"Bench 7: worker peaks: rqworker {worker.get('main', 0):.0f} MiB, forked job "
            f"process (work horse, or rq's scheduler) {worker.get('child', 0):.0f} MiB, ffmpeg "
            f"{worker.get('tool', 0):.0f} MiB. RSS of a forked child counts the pages it "
            "shares with its parent. Sampled every 100 ms with psutil."
        )
    overall = {label: dict(peaks) for label, peaks in sampler.peaks.items()}
    return Result(rows, notes, {"idle_mib": dict(sampler.idle), "peaks_mib": overall})


# --------------------------------------------------------------------------- environment


def bench_database_url(url: str) -> str:
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "filmstudio"
    return urlunsplit(parts._replace(path=f"/{name}_bench"))


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def ensure_database(url: str, bench_url: str) -> bool:
    """Create the bench database if missing; True if it was created."""
    name = urlsplit(bench_url).path.lstrip("/")
    last_error: Exception | None = None
    for admin_url in (_with_database(url, "postgres"), url):
        try:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                ).fetchone()
                if not exists:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                return not exists
        except psycopg.OperationalError as error:
            last_error = error
    raise SystemExit(f"cannot reach PostgreSQL to create {name}: {last_error}")


def bench_redis_url(url: str) -> str:
    parts = urlsplit(url)
    wanted = int(os.environ.get("BENCH_REDIS_DB", DEFAULT_REDIS_DB))
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        current = int(query.get("db", 0))
        query["db"] = str(wanted if wanted != current else wanted - 1)
        return f"unix://{parts.netloc}{parts.path}?{urlencode(query)}"
    current = int(parts.path.lstrip("/") or 0)
    db = wanted if wanted != current else wanted - 1
    return urlunsplit(parts._replace(path=f"/{db}"))


def prepare_environment(bench_dir: Path, log: Callable[[str], None]) -> dict[str, str]:
    database_url = os.environ.get("DATABASE_URL") or os.environ.get("SUPABASE_DB_URL")
    redis_url = os.environ.get("REDIS_URL")
    if not database_url or not redis_url:
        raise SystemExit(
            "DATABASE_URL and REDIS_URL must be set: run `make bench`, which starts embedded "
            "PostgreSQL and Redis when they are unset"
        )
    db_url, rq_url = bench_database_url(database_url), bench_redis_url(redis_url)
    created = ensure_database(database_url, db_url)
    media = bench_dir / "media"
    shutil.rmtree(media, ignore_errors=True)
    media.mkdir(parents=True)
    for stale in bench_dir.glob("bench-*.log"):
        stale.unlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV_PREFIXES)}
    env |= BENCH_SETTINGS
    env |= {
        "DATABASE_URL": db_url,
        "REDIS_URL": rq_url,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "VAR_DIR": str(bench_dir),
        "MEDIA_ROOT": str(media),
        "DJANGO_SETTINGS_MODULE": "filmstudio.settings",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    db_name = urlsplit(db_url).path.lstrip("/")
    parts = urlsplit(rq_url)
    redis_db = dict(parse_qsl(parts.query)).get("db") or parts.path.lstrip("/") or "0"
    log(f"database {db_name} ({'created' if created else 'exists'}), Redis DB {redis_db}")
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
    subprocess.run([*manage, "flush", "--noinput", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
    log(f"database {db_name} migrated and emptied")
    os.environ.clear()
    os.environ.update(env)
    return env


# --------------------------------------------------------------------------- output


def _ratio_text(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    return f"{ratio:.2f}×" if ratio < 100 else f"{ratio:,.0f}×"


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| # | Benchmark | Measured | Baseline (same run) | Ratio | Target | Holds |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        holds = {True: "✅ yes", False: "❌ no", None: ""}.get(row["holds"], row["holds"])
        lines.append(
            f"| {row['id']} | {row['name']} | {row['measured']} | {row['baseline']} | "
            f"{_ratio_text(row['ratio'])} | {row['target']} | {holds} |"
        )
    return "\n".join(lines)


NOT_JUDGED = "not judged"


def judge(rows: list[dict], load_before: float, load_after: float) -> bool:
    """Whether the targets are judged: on a machine busy before the benches (1-minute load
    above MAX_LOAD) the figures are noise of other processes as much as ours, so each row with a
    target says "not judged" and the loads (what it would have said is kept as
    `holds_unjudged`). The load after is reported, not judged by: it is mostly the benches' own
    work (two workers, uvicorn, ffmpeg on two cores put it at 3-4 on a quiet machine)."""
    if load_before <= MAX_LOAD:
        return True
    verdict = f"{NOT_JUDGED} (load {load_before:.1f} before, {load_after:.1f} after)"
    for row in rows:
        if row["holds"] is not None:
            row["holds_unjudged"], row["holds"] = row["holds"], verdict
    return False


def machine_info() -> dict[str, object]:
    from media import ffmpeg  # noqa: PLC0415 (project module: see the note at the top)

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "ffmpeg": ffmpeg.ffmpeg_binary(),
    }


def machine_load() -> dict[str, float]:
    """How busy the machine is without us (sampled over 1 s while the bench is idle)."""
    return {
        "cpu_busy_percent": psutil.cpu_percent(interval=1.0),
        "load_1m": psutil.getloadavg()[0],
    }


# --------------------------------------------------------------------------- main


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [b.name for b in BENCHES]
    parser.add_argument("--only", default="", help=f"comma-separated subset of {names}")
    parser.add_argument("--skip", default="", help="comma-separated benches to leave out")
    parser.add_argument(
        "--worker-class",
        default=os.environ.get("BENCH_WORKER_CLASS") or None,
        help="pass --worker-class to every rqworker (to measure an alternative)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        default=None,
        help="record py-spy profiles (collapsed stacks) of workers and the web server into DIR",
    )
    parser.add_argument("--json", default=str(BASE_DIR / "var" / "bench.json"))
    args = parser.parse_args(argv)
    args.only = {n for n in args.only.split(",") if n}
    args.skip = {n for n in args.skip.split(",") if n}
    unknown = (args.only | args.skip) - set(names)
    if unknown:
        parser.error(f"unknown bench(es) {sorted(unknown)}; choose from {names}")
    return args


def run_benches(ctx: Context, args: argparse.Namespace, console) -> tuple[list, list, dict]:
    """Every selected bench in order; one that fails is reported and the others still run."""
    from bench.harness import Row  # noqa: PLC0415 (needs django.setup())

    rows: list[dict] = []
    notes: list[str] = []
    results: dict[str, dict] = {}
    for bench in BENCHES:
        if (args.only and bench.name not in args.only) or bench.name in args.skip:
            continue
        if bench.target is None:
            rows.append(Row(bench.number, bench.title, "not measured yet", "", None).as_dict())
            results[bench.name] = {"status": "not implemented"}
            continue
        ctx.log(f"bench {bench.number} ({bench.name}): {bench.title}")
        started = time.monotonic()
        try:
            with console.status(f"bench {bench.number}: {bench.title}"):
                result = resolve(bench.target)(ctx)
        except KeyboardInterrupt:
            raise
        except Exception as error:
            ctx.log(f"bench {bench.number} failed: {type(error).__name__}: {error}")
            results[bench.name] = {
                "status": "error",
                "error": str(error),
                "traceback": traceback.format_exc(),
            }
            message = f"error: {error}".replace("|", "/").replace("\n", " ")[:160]
            rows.append(Row(bench.number, bench.title, message, "", None).as_dict())
            continue
        elapsed = time.monotonic() - started
        ctx.log(f"bench {bench.number} done in {elapsed:.0f}s")
        rows += [row.as_dict() for row in result.rows]
        notes += result.notes
        results[bench.name] = {
            "status": "ok",
            "seconds": elapsed,
            "rows": [row.as_dict() for row in result.rows],
            "notes": result.notes,
            "data": result.data,
        }
    return rows, notes, results


def report(rows: list[dict], notes: list[str], worker_class: str | None) -> str:
    table = markdown_table(rows)
    settings_text = ", ".join(f"{k}={v}" for k, v in BENCH_SETTINGS.items())
    print()
    print(f"## Benchmarks ({os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d})")
    print()
    print(table)
    print()
    for note in notes:
        print(f"- {note}")
    print(
        f"- Settings of every bench process: {settings_text}; the workers of benches 1–3 talk to "
        "the fake Gemini/fal servers instead (TEXT/IMAGE_PROVIDER=gemini, VIDEO_PROVIDER=fal, "
        "GEMINI_BASE_URL, FAL_QUEUE_URL_FORMAT, FAL_JWKS_URL) through the real SDKs."
    )
    if worker_class:
        print(f"- Workers ran with --worker-class {worker_class} (an experiment).")
    return table


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(highlight=False)
    began = time.monotonic()

    def log(message: str) -> None:
        line = f"[dim]{time.monotonic() - began:6.1f}s[/dim] {escape(message)}"
        console.print(line, soft_wrap=True)

    signal.signal(signal.SIGTERM, _interrupt)
    # Before anything of ours runs (the migrations below load the machine too).
    load_before = machine_load()
    bench_dir = BASE_DIR / "var" / "bench"
    if url := os.environ.get("DATABASE_URL") or os.environ.get("SUPABASE_DB_URL"):
        # One folder per bench database: two benches at once (two checkouts' worth of people
        # on one machine) must not empty each other's media.
        bench_dir /= urlsplit(bench_database_url(url)).path.lstrip("/")
    env = prepare_environment(bench_dir, log)

    django.setup()
    from bench.harness import Context, reset_redis  # noqa: PLC0415 (needs django.setup())

    ctx = Context(
        env=env,
        log=log,
        worker_class=args.worker_class,
        profile_dir=Path(args.profile).resolve() if args.profile else None,
    )
    if load_before["cpu_busy_percent"] > 25:
        log(
            f"warning: the machine is already {load_before['cpu_busy_percent']:.0f}% busy "
            "(other processes): figures will be noisier"
        )
    ctx.rss.start()
    try:
        rows, notes, results = run_benches(ctx, args, console)
    except KeyboardInterrupt:
        log("interrupted: workers and servers stopped")
        return 130
    finally:
        ctx.rss.close()
        with contextlib.suppress(Exception):
            reset_redis()
        shutil.rmtree(bench_dir / "media", ignore_errors=True)

    load_after = machine_load()
    notes.append(
        f"Machine: {os.cpu_count()} cores; CPU busy before the benches "
        f"{load_before['cpu_busy_percent']:.0f}% (load average {load_before['load_1m']:.1f}), "
        f"after {load_after['cpu_busy_percent']:.0f}% (load {load_after['load_1m']:.1f}): "
        "other processes on the machine share the cores with the bench."
    )
    if not judge(rows, load_before["load_1m"], load_after["load_1m"]):
        notes.append(
            f"Targets not judged: the 1-minute load average was {load_before['load_1m']:.1f} "
            f"before the benches (judged at most {MAX_LOAD}; {load_after['load_1m']:.1f} after): "
            "other processes shared the cores."
        )
    table = report(rows, notes, args.worker_class)
    document = {
        "generated_at": datetime.now(UTC).isoformat(),
        "machine": machine_info(),
        "load": {"before": load_before, "after": load_after, "max_judged": MAX_LOAD},
        "settings": BENCH_SETTINGS,
        "worker_class": args.worker_class,
        "total_seconds": time.monotonic() - began,
        "rows": rows,
        "markdown": table,
        "notes": notes,
        "benches": results,
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    shown = out.relative_to(BASE_DIR) if out.is_relative_to(BASE_DIR) else out
    print(f"\nwrote {shown} in {time.monotonic() - began:.0f}s")
    return 1 if any(r.get("status") == "error" for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
