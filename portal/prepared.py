"""One-row statements the job engine runs thousands of times a minute, with their
SQL built once per process.

Django builds and compiles a query's SQL on every call: for the claim of a job (a
one-row UPDATE by primary key) that is ~0.35 ms of CPU, seven times what the
database takes to run it. A snapshot job runs about twenty such statements: with
these five (the claim, the release, the checkpoint, the parked state's read, the
task an action began) prepared, the worker's CPU per job fell from 29 to 19 ms with
1,000 jobs at once (bench/snapshot_jobs_bench.py, SQLite).

Here the SQL of each statement is written once (table and column names from the
model's `_meta`, quoted by the connection) and kept per database vendor; values
are converted by the fields exactly as the ORM converts them (`pre_save`, then
`get_db_prep_save` for what is written, `get_db_prep_value` for what is
compared). Statements run on Django's connection cursor, so they join the
caller's transaction and count in `assertNumQueries`. No signals are sent: no
model saved here has receivers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from django.db import connection, migrations, models
from django.db.models.constants import OnConflict

# (key, vendor) -> what the builder made from the model's _meta.
_built: dict[tuple[Any, str], Any] = {}


def built(key: Any, build: Callable[[Callable[[str], str]], Any]) -> Any:
    """What `build(quote)` returns for `key` on this database, built on first use."""
    found = _built.get((key, connection.vendor))
    if found is None:
        found = _built[(key, connection.vendor)] = build(connection.ops.quote_name)
    return found


def run(sql: str, params: Sequence[Any]) -> int:
    """Execute one statement; the rows it changed."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def fetch(sql: str, params: Sequence[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def db_value(model: type[models.Model], name: str, value: Any) -> Any:
    """`value` as a comparison with the field `name` sends it (a lookup's right side)."""
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field)  # a column, not a relation's reverse side
    return field.get_db_prep_value(value, connection, prepared=False)


def row_update(obj: models.Model, fields: Sequence[str] | None = None) -> int:
    """`obj.save(update_fields=fields)` (every field but the key when None) for a
    row that exists: one UPDATE by primary key. Returns the rows changed (0: the
    row is gone)."""
    model = type(obj)

    def build(quote):
        meta = model._meta
        names = set(fields) if fields is not None else None
        columns = [
            field
            for field in meta.concrete_fields
            if not field.primary_key and (names is None or field.name in names)
        ]
        if names is not None and len(columns) != len(names):
            raise ValueError(f"not all of {sorted(names)} are fields of {meta.label}")
        assignments = ", ".join(f"{quote(field.column)} = %s" for field in columns)
        sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"
        return sql, columns

    sql, columns = built(("row_update", model, tuple(fields or ())), build)
    params = [field.get_db_prep_save(field.pre_save(obj, False), connection) for field in columns]
    params.append(obj.pk)
    return run(sql, params)


def row_insert_unless_present(obj: models.Model) -> int:
    """`bulk_create([obj], ignore_conflicts=True)` for one row, without the
    transaction bulk_create opens around it (one statement is atomic by itself,
    and on SQLite that transaction is a BEGIN IMMEDIATE of its own): the
    database's own "insert, or nothing if a unique constraint has the row".
    Returns the rows inserted (0: one was there). The key is not read back."""
    model = type(obj)

    def build(quote):
        meta = model._meta
        columns = [field for field in meta.concrete_fields if not field.primary_key]
        ops = connection.ops
        suffix = ops.on_conflict_suffix_sql(columns, OnConflict.IGNORE, None, None)
        sql = (
            f"{ops.insert_statement(on_conflict=OnConflict.IGNORE)} {quote(meta.db_table)} "
            f"({', '.join(quote(field.column) for field in columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))}) {suffix}"
        )
        return sql.rstrip(), columns

    sql, columns = built(("row_insert_unless_present", model), build)
    return run(
        sql, [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in columns]
    )


# Share of each page a table written by these statements fills with new rows, on
# PostgreSQL: the rest is room for a row's next version on the same page, so an update
# that changes no indexed column (a claim, a checkpoint, a task an action began) is
# "HOT" and writes none of the table's indexes (two dozen each on the job table and
# the server mirror). SQLite rewrites rows in place and is not concerned.
PAGE_FILL_PERCENT = 70


def page_room(db_table: str) -> migrations.RunPython:
    """A migration's operation: keep room on `db_table`'s pages (PAGE_FILL_PERCENT);
    reversed, back to PostgreSQL's default (full pages). Pages written from then on."""

    def room(fillfactor: str, apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            table = schema_editor.quote_name(db_table)
            schema_editor.execute(f"ALTER TABLE {table} {fillfactor}", params=None)

    return migrations.RunPython(
        partial(room, f"SET (fillfactor = {PAGE_FILL_PERCENT})"),
        partial(room, "RESET (fillfactor)"),
        elidable=False,
    )
