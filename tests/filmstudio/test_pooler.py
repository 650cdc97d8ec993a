"""DB_POOLER=true behind a real transaction pooler: Debian's pgbouncer in `pool_mode=transaction`
(tests.postgres.PgBouncer), as Supabase's pooler on :6543. The end-to-end film and the event
tests also run through it (tests/generation/conftest.py, POOLED_MODULES)."""

import psycopg
import pytest
from django.db import connection

from tests.factories import UserFactory
from tests.filmstudio.test_settings import load_settings

pytestmark = pytest.mark.django_db(transaction=True)


def pooler_url(pgbouncer) -> str:
    return f"postgresql://{pgbouncer.user}@127.0.0.1:{pgbouncer.port}/{connection.settings_dict['NAME']}"


def test_pgbouncer_hands_each_transaction_any_server_connection(pgbouncer):
    """What makes a transaction pooler: one client's consecutive transactions may run on
    different server sessions, so nothing a session holds survives between them."""
    url = pooler_url(pgbouncer)
    with psycopg.connect(url, autocommit=True) as app, psycopg.connect(url) as other:
        first = app.execute("SELECT pg_backend_pid()").fetchone()[0]
        other.execute("SELECT 1")  # holds the server connection `app` just gave back
        second = app.execute("SELECT pg_backend_pid()").fetchone()[0]
        other.rollback()
    assert first != second


# Reads ten users two at a time with QuerySet.iterator() (a server-side cursor unless
# DISABLE_SERVER_SIDE_CURSORS) while another client takes the server connection the app just
# used, every other time. A server-side cursor lives in one server session; DB_POOLER=true reads
# with a plain cursor.
INTERLEAVED = """
import psycopg
from django.contrib.auth.models import User
from django.db import connection
holder = psycopg.connect({holder!r})
got = []
for user in User.objects.order_by("pk").iterator(chunk_size=2):
    got.append(user.username)
    if len(got) % 4 == 2:
        holder.execute("SELECT 1")  # a transaction left open on that server connection
    elif len(got) % 4 == 0:
        holder.rollback()
assert got == {names!r}, got
print("ok", connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"])
"""


@pytest.mark.parametrize(("pooler", "works"), [("true", True), ("false", False)])
def test_db_pooler_settings_are_what_a_transaction_pooler_needs(pgbouncer, tmp_path, pooler, works):
    names = [UserFactory(username=f"reader-{n}").username for n in range(10)]
    url = pooler_url(pgbouncer)
    code = INTERLEAVED.format(holder=url, names=names)
    run = load_settings(tmp_path, then=code, DATABASE_URL=url, DB_POOLER=pooler)
    if works:
        assert run.returncode == 0, run.stderr
        assert run.stdout.split() == ["ok", "True"]
    else:  # without DB_POOLER the cursor is looked for in another server session
        assert run.returncode != 0
        assert "cursor" in run.stderr and "does not exist" in run.stderr, run.stderr
