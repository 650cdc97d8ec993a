"""Querysets compiled to SQL once per process, for the hottest reads.

Compiling a queryset (resolving lookups, joins, the select list) costs more Python time than
running a small query on an open connection: the project document's dozen queries and the
token lookup of every API request paid it on each request. A `CompiledQuery` is built once with
stand-in parameter values, compiled once, and run with the real ones: the same SQL Django
would send, its rows through the fields' converters (JSON, for instance), as dicts named like
`.values()` (or tuples for `.values_list()`).

On PostgreSQL they run on a cursor that binds parameters on the server, so that PostgreSQL can
prepare each statement once per connection (`prepare_threshold` in the database OPTIONS; never
behind a transaction pooler, DB_POOLER) instead of parsing and planning it on every request:
that was two thirds of the document's SQL time. The ORM's own cursors bind on the client and
prepare nothing. While queries are logged (DEBUG, `CaptureQueriesContext`) they run on the
ordinary cursor, which logs each statement with its values.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.postgresql import base as postgresql
from django.db.backends.postgresql import psycopg_any
from django.db.models import Model, QuerySet
from django.db.models.query import ValuesListIterable
from psycopg.pq import Format

TEXT = Format.TEXT
M = TypeVar("M", bound=Model)


@contextmanager
def bound_cursor(alias: str = DEFAULT_DB_ALIAS) -> Iterator[Any]:
    """A Django cursor (errors wrapped, execute wrappers run) over a psycopg cursor that binds
    parameters on the server, whose statements the connection may prepare."""
    connection = connections[alias]
    if connection.vendor != "postgresql" or connection.queries_logged:
        with connection.cursor() as cursor:
            yield cursor
        return
    # What BaseDatabaseWrapper.cursor() does, with the other cursor class.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        raw = postgresql.ServerBindingCursor(connection.connection)
        loader = connection.connection.adapters.get_loader(postgresql.TIMESTAMPTZ_OID, TEXT)
        if connection.timezone != loader.timezone:
            psycopg_any.register_tzloader(connection.timezone, raw)
        connection.validate_thread_sharing()
        cursor = connection.make_cursor(raw)
    with cursor:
        yield cursor


class CompiledQuery:
    """`build(*standins)` returns the queryset (`.values()` or `.values_list()`); every
    parameter of its SQL must be one of the stand-ins (values no real query would use, such as
    ids beyond any id), so that `rows(*values)` can put the real values in their places."""

    def __init__(
        self, build: Callable[..., QuerySet], *standins: object, raw: tuple[str, ...] = ()
    ):
        """`raw`: columns left as the database gives them (no converter: JSON as its text)."""
        self._build = build
        self._standins = standins
        self._raw = raw
        self._compiled: tuple[str, list[int], dict, bool, str] | None = None
        self._names: list[str] | None = None

    def _compile(self) -> tuple[str, list[int], dict, bool, str]:
        queryset = self._build(*self._standins)
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        slots = []
        for value in params:
            found = [i for i, standin in enumerate(self._standins) if standin == value]
            if len(found) != 1:
                raise ValueError(f"a compiled query may take only its stand-ins: {value!r}")
            slots.append(found[0])
        converters = compiler.get_converters([column for column, _, _ in compiler.select])
        raw = {i for i, (_, _, alias) in enumerate(compiler.select) if alias in self._raw}
        if len(raw) != len(self._raw):
            raise ValueError(f"a raw column is not selected: {self._raw!r}")
        converters = {i: found for i, found in converters.items() if i not in raw}
        named = queryset._iterable_class is not ValuesListIterable
        return sql, slots, converters, named, queryset.db

    def rows(self, *values: object, cursor: Any = None) -> list:
        """The rows for `values` (in the stand-ins' order); on `cursor` when given (several
        queries of one read can share one `bound_cursor`)."""
        if self._compiled is None:
            self._compiled = self._compile()
        alias = self._compiled[4]
        if cursor is None:
            with bound_cursor(alias) as own:
                return self._fetch(own, values)
        return self._fetch(cursor, values)

    def _fetch(self, cursor, values: Sequence) -> list:
        assert self._compiled is not None
        sql, slots, converters, named, _ = self._compiled
        cursor.execute(sql, [values[slot] for slot in slots])
        rows = cursor.fetchall()
        if converters:
            connection = cursor.db
            rows = [list(row) for row in rows]
            for row in rows:
                for position, (functions, expression) in converters.items():
                    for function in functions:
                        row[position] = function(row[position], expression, connection)
        if not named:
            return [tuple(row) for row in rows]
        if self._names is None:  # the same SQL always names the same columns
            self._names = [column.name for column in cursor.description or []]
        names = self._names
        return [dict(zip(names, row, strict=True)) for row in rows]


def columns(model: type[Model], table: str = "") -> str:
    """The model's columns in its fields' order (`table.` before each when given), for a
    statement's select list or RETURNING: `instance_from` reads such a row."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    prefix = f"{quote(table)}." if table else ""
    return ", ".join(prefix + quote(field.column) for field in model._meta.concrete_fields)


def instance_from(model: type[M], row: Sequence, alias: str = DEFAULT_DB_ALIAS) -> M:
    """A model instance from a row of `columns(model)` (a raw statement's RETURNING, for one),
    its values through the fields' converters as the ORM's own reads do."""
    connection = connections[alias]
    names, converters = _readers(model, alias)
    values = list(row)
    for position, functions, col in converters:
        for convert in functions:
            values[position] = convert(values[position], col, connection)
    return model.from_db(alias, names, values)


_READERS: dict[tuple[type[Model], str], tuple[list[str], list[tuple[int, list, Any]]]] = {}


def _readers(model: type[Model], alias: str) -> tuple[list[str], list[tuple[int, list, Any]]]:
    """The model's attribute names and, for each column that has any, its converters."""
    found = _READERS.get((model, alias))
    if found is None:
        connection = connections[alias]
        fields = model._meta.concrete_fields
        converters = []
        for position, field in enumerate(fields):
            col = field.get_col(model._meta.db_table)
            functions = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            if functions:
                converters.append((position, functions, col))
        found = _READERS[(model, alias)] = ([field.attname for field in fields], converters)
    return found
