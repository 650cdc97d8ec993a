"""Real PostgreSQL parts for the reliability tests: a private server (its own data directory,
port and `max_connections`; stopped, restarted or crashed at will), Debian's `pgbouncer` in
`pool_mode=transaction` in front of a server, and pointing this process's Django connection
(and so the DATABASE_URL that tests.pipeline gives workers and web servers) at either.

Both run as an unprivileged system user when the tests run as root (PostgreSQL and PgBouncer
refuse to run as root), in a directory of their own that is removed afterwards."""

from __future__ import annotations

import contextlib
import copy
import glob
import importlib.util
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.db import connection

from filmstudio.support import BASE_DIR, free_port, port_open, stop_process, wait_for
from tests.pipeline import subprocess_env

SUPERUSER = "postgres"  # the database role the private server is initialised with


def run_as(socket_dir: str = "") -> str | None:
    """The system user to run servers as: None when not root; else the owner of `socket_dir`
    when given (a server reached by its Unix socket, as pgserver's of `make test`, keeps it in a
    directory only its user may enter), else `postgres` (Debian's package makes it) or
    `nobody`."""
    if os.geteuid() != 0:
        return None
    if socket_dir.startswith("/") and os.path.isdir(socket_dir):
        owner = pwd.getpwuid(os.stat(socket_dir).st_uid).pw_name
        if owner != "root":
            return owner
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root, and there is no postgres or nobody user to run as")


def private_dir(prefix: str, user: str | None = None) -> Path:
    """A fresh directory `user` owns (pytest's tmp_path is root's, mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def postgres_bin() -> Path:
    """PostgreSQL's programs: the pgserver wheel's (always installed, see requirements.txt),
    else the newest of Debian's /usr/lib/postgresql/*/bin."""
    spec = importlib.util.find_spec("pgserver")
    if spec and spec.submodule_search_locations:
        wheel = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (wheel / "postgres").exists():
            return wheel
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/postgres")]
    if not found:
        raise RuntimeError("no PostgreSQL programs: install the pgserver wheel or postgresql")
    return max(found, key=lambda bin: int(bin.parent.name) if bin.parent.name.isdigit() else 0)


def _run(command: list[str], *, timeout: float = 60) -> str:
    result = subprocess.run(
        command, user=run_as(), capture_output=True, text=True, timeout=timeout, cwd="/"
    )
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


class PrivatePostgres:
    """A PostgreSQL server of this test's own on a free loopback port; `max_connections` as
    asked. Durability is switched off (fsync): it lives for one test."""

    def __init__(self, *, max_connections: int = 40):
        self.bin = postgres_bin()
        self.max_connections = max_connections
        self.dir = private_dir("fs-pg-", run_as())
        self.data = self.dir / "data"
        self.port = free_port()
        self.log = self.dir / "postgres.log"

    def _pg_ctl(self, *args: str, timeout: float = 60) -> str:
        return _run([str(self.bin / "pg_ctl"), "-D", str(self.data), *args], timeout=timeout)

    def init(self) -> PrivatePostgres:
        _run(
            [
                *(str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER),
                *("--auth=trust", "--encoding=UTF8", "--no-sync", "--no-instructions"),
            ]
        )
        return self

    def start(self) -> None:
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.dir}",
            f"-c max_connections={self.max_connections}",
            "-c superuser_reserved_connections=0",  # the app's role is the superuser here
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        ]
        self._pg_ctl("-w", "-t", "30", "-l", str(self.log), "-o", " ".join(options), "start")

    def stop(self, mode: str = "fast") -> None:
        """`fast`: a clean shutdown (sessions ended); `immediate`: like a crash (recovery on the
        next start)."""
        self._pg_ctl("-w", "-t", "30", "-m", mode, "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def running(self) -> bool:
        return port_open(self.port)

    def sql(self, statement: str, *, database: str = "postgres") -> str:
        command = [str(self.bin / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"]
        command += ["-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", database]
        return _run([*command, "-c", statement]).strip()

    def database(self, name: str) -> dict:
        """A Django DATABASES entry for `name` on this server (created if missing)."""
        if not self.sql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
            self.sql(f'CREATE DATABASE "{name}"')
        return {"HOST": "127.0.0.1", "PORT": str(self.port), "NAME": name, "USER": SUPERUSER}

    def __enter__(self) -> PrivatePostgres:
        self.init()
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")
    if not found:
        raise RuntimeError("pgbouncer is not installed: apt-get install pgbouncer (.ci/run does)")
    return found


class PgBouncer:
    """Debian's pgbouncer in transaction pooling (as Supabase's pooler on :6543), on a free
    loopback port, in front of the server `upstream` (a Django DATABASES entry) names. Clients
    log in as `upstream`'s user with no password (`auth_type = trust`); pgbouncer logs in to
    the server with `upstream`'s credentials. A server connection serves one transaction, then
    goes back to the pool: session state (prepared statements, cursors held open) is lost."""

    def __init__(self, upstream: dict, *, pool_size: int = 8):
        self.upstream, self.pool_size = upstream, pool_size
        self.os_user = run_as(upstream.get("HOST") or "")
        self.dir = private_dir("fs-pgbouncer-", self.os_user)
        self.port = free_port()
        self.user = upstream.get("USER") or SUPERUSER
        self.log = self.dir / "pgbouncer.log"

    def config(self) -> str:
        host = self.upstream.get("HOST") or "/var/run/postgresql"
        server = f"host={host} port={self.upstream.get('PORT') or 5432} user={self.user}"
        if self.upstream.get("PASSWORD"):
            server += f" password={self.upstream['PASSWORD']}"
        return "\n".join(
            [
                "[databases]",
                f"* = {server}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {self.port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"admin_users = {self.user}",
                f"auth_file = {self.dir / 'users.txt'}",
                "pool_mode = transaction",
                f"default_pool_size = {self.pool_size}",
                "max_client_conn = 2000",
                # psycopg sends these at login; pgbouncer refuses unknown startup parameters
                "ignore_startup_parameters = extra_float_digits,options",
                f"logfile = {self.log}",
                "",
            ]
        )

    def __enter__(self) -> PgBouncer:
        (self.dir / "users.txt").write_text(f'"{self.user}" ""\n')
        ini = self.dir / "pgbouncer.ini"
        ini.write_text(self.config())
        if self.os_user:
            entry = pwd.getpwnam(self.os_user)
            for path in self.dir.iterdir():
                os.chown(path, entry.pw_uid, entry.pw_gid)
        # -q: its log goes to the log file only
        self.proc = subprocess.Popen(
            [pgbouncer_binary(), "-q", str(ini)],
            user=self.os_user,
            cwd="/",
            start_new_session=True,  # stop_process ends its group
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(
                lambda: port_open(self.port) or self.proc.poll() is not None,
                timeout=15,
                message="pgbouncer did not start",
            )
        except TimeoutError:
            self.__exit__()
            raise
        if self.proc.poll() is not None:
            log = self.log.read_text() if self.log.exists() else ""
            self.__exit__()
            raise RuntimeError(f"pgbouncer exited at start: {log[-2000:]}")
        return self

    def __exit__(self, *exc) -> None:
        stop_process(self.proc, grace=5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def database(self) -> dict:
        """The DATABASES changes that send the test database through this pooler, with what
        DB_POOLER=true sets (filmstudio/settings.py): no prepared statements, no server-side
        cursors, no pool of our own."""
        options = {**connection.settings_dict.get("OPTIONS", {}), "prepare_threshold": None}
        options.pop("pool", None)
        return {
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "USER": self.user,
            "PASSWORD": "",
            "OPTIONS": options,
            "DISABLE_SERVER_SIDE_CURSORS": True,
        }

    def transactions(self) -> int:
        """Transactions pgbouncer has passed to the server so far, over every database (its
        admin console's SHOW STATS): proof that traffic went through it."""
        header, *rows = self.show("STATS")
        column = header.split("|").index("total_xact_count")
        return sum(int(row.split("|")[column]) for row in rows)

    def show(self, what: str) -> list[str]:
        """Rows of the admin console's `SHOW what`, header first, fields joined by `|`."""
        command = [str(postgres_bin() / "psql"), "-X", "-A", "-P", "footer=off"]
        command += ["-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "pgbouncer"]
        out = subprocess.run(
            [*command, "-c", f"SHOW {what}"], capture_output=True, text=True, timeout=10
        )
        if out.returncode != 0:
            raise RuntimeError(f"pgbouncer's SHOW {what} failed: {out.stderr.strip()}")
        return [line for line in out.stdout.splitlines() if line.strip()]


@contextlib.contextmanager
def django_database(settings, changes: dict, *, pooler: bool = False) -> Iterator[dict]:
    """Point this process's default connection at another server, database or pooler for the
    length of the block. Workers and web servers started meanwhile through tests.pipeline get
    the same DATABASE_URL (and DB_POOLER) from the settings."""
    db = connection.settings_dict  # the very dict of settings.DATABASES["default"]
    saved = copy.deepcopy(db)
    connection.close()
    connection.close_pool()  # a pool (DB_POOL) keeps the server it was made for
    db.update(changes)
    settings.DB_POOLER = pooler
    try:
        yield db
    finally:
        connection.close()
        connection.close_pool()
        db.clear()
        db.update(saved)


def migrate(settings) -> None:
    """Migrate the database the settings point at, in a fresh process (as a deploy would)."""
    env = subprocess_env(settings)
    command = [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"]
    subprocess.run(command, cwd=BASE_DIR, env=env, check=True, timeout=120)


@contextlib.contextmanager
def private_database(settings, *, max_connections: int = 40) -> Iterator[PrivatePostgres]:
    """A PrivatePostgres with a migrated `filmstudio` database that this process (and what it
    starts through tests.pipeline) uses for the length of the block."""
    with PrivatePostgres(max_connections=max_connections) as server:
        with django_database(settings, server.database("filmstudio")):
            migrate(settings)
            yield server
