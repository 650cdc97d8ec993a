"""Database connections that must not cross a fork.

A forked child (RQ's work horse, rq's scheduler) inherits its parent's open PostgreSQL
connections and Django's connection pools: the same sockets. A query from the child would then
run on the parent's session (answers read by the wrong process), and either closing one would
end the session under the other. So a child forgets them at once, without closing anything
(psycopg never closes, when collected, a connection another process opened), and connects
directly from then on: a work horse lives for one job, and a pool of its own (threads, then a
connection handed over by one) made its first query 4.7 ms slower than opening a connection.
Registered with `os.register_at_fork` when the settings load, so it holds in every process that
runs Django. Processes that are not forked (uvicorn's, also with --workers, which spawns them;
a non-forking worker) keep their pool. The one exception is a connection handed over on
purpose (`handing_over`): the parent leaves it alone until the child has exited.
"""

import contextlib
import os
import sys
from collections.abc import Iterator

_hand_over = None  # the connection the next fork keeps (`handing_over`)


def connect_directly() -> None:
    """This process's connections are opened directly from now on, not taken from a pool."""
    postgresql = sys.modules.get("django.db.backends.postgresql.base")
    if postgresql is not None:
        # The pools are shared by every connection of the class, keyed by alias.
        postgresql.DatabaseWrapper._connection_pools.clear()
    conf = sys.modules.get("django.conf")
    if conf is not None and conf.settings.configured:
        for entry in conf.settings.DATABASES.values():
            entry.get("OPTIONS", {}).pop("pool", None)
    db = sys.modules.get("django.db")
    if db is not None:
        for wrapper in db.connections.all(initialized_only=True):
            wrapper.settings_dict.get("OPTIONS", {}).pop("pool", None)


def forget_inherited_connections() -> None:
    global _hand_over
    kept, _hand_over = _hand_over, None  # the child's own forks forget it again
    connect_directly()
    db = sys.modules.get("django.db")
    if db is not None:
        for wrapper in db.connections.all(initialized_only=True):
            if wrapper.connection is not kept:
                wrapper.connection = None


@contextlib.contextmanager
def handing_over(connection) -> Iterator[None]:
    """A fork inside keeps `connection` (a psycopg connection this process does not use until
    the child is done with it: `generation.worker.PreloadWorker` hands its work horse the
    connection it opened, so a job does not connect, nor PostgreSQL start a backend, each time)."""
    global _hand_over
    _hand_over = connection
    try:
        yield
    finally:
        _hand_over = None


os.register_at_fork(after_in_child=forget_inherited_connections)
