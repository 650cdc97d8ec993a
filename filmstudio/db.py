"""Database connections that must not cross a fork.

A forked child (RQ's work horse, rq's scheduler) inherits its parent's open PostgreSQL
connections and Django's connection pools: the same sockets. A query from the child would then
run on the parent's session (answers read by the wrong process), and either closing one would
end the session under the other. So a child forgets them at once, without closing anything
(psycopg never closes, when collected, a connection another process opened): its first query
opens its own connection, or its own pool. Registered with `os.register_at_fork` when the
settings load, so it holds in every process that runs Django.
"""

import os
import sys

# Imported here, when the settings load, so that a forked job process finds it loaded (12 ms
# each time otherwise) when its first query opens the child's own pool.
import psycopg_pool  # noqa: F401


def forget_inherited_connections() -> None:
    postgresql = sys.modules.get("django.db.backends.postgresql.base")
    if postgresql is not None:
        # The pools are shared by every connection of the class, keyed by alias.
        postgresql.DatabaseWrapper._connection_pools.clear()
    db = sys.modules.get("django.db")
    if db is not None:
        for wrapper in db.connections.all(initialized_only=True):
            wrapper.connection = None


os.register_at_fork(after_in_child=forget_inherited_connections)
