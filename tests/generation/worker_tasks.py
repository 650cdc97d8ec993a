"""RQ job functions for the worker tests (a real worker imports them by name)."""

from django.db import connection, transaction


def backend_pid() -> int:
    """The PostgreSQL backend the job's queries ran on."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def sleep_in_a_query(seconds: float) -> None:
    """A job that hangs inside a query (killed by its timeout mid-statement)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [seconds])


def leave_a_transaction_open() -> int:
    """A job that ends with its transaction still open (a bug, or an error path)."""
    transaction.atomic().__enter__()
    return backend_pid()
