"""Writing a chunk of mirror rows with one set-based statement, in SQLite's
dialect and PostgreSQL's."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC
from functools import partial
from operator import itemgetter

import orjson
from django.db import connections, models, router
from django.db.models.constants import OnConflict

from portal.models import Site

# Field types whose values the row builders (`server_fields`, `image_fields`…)
# already give as str, int, bool or None, which both load paths take as they
# are. At 100,000 rows of twenty fields, Django's per-value preparation cost
# more than the database's own work.
_DRIVER_NATIVE = frozenset(
    {
        "CharField", "TextField", "BooleanField", "IntegerField", "BigIntegerField",
        "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField",
        "PositiveSmallIntegerField", "ForeignKey",
    }
)  # fmt: skip


def _json_text(encoder: type[json.JSONEncoder] | None) -> Callable[[object], str]:
    if encoder is None:
        return lambda value: orjson.dumps(value).decode()
    return partial(json.dumps, cls=encoder)


def _adapter(field: models.Field, connection) -> Callable | None:
    """What turns a (non-null) value of `field` into what the load path takes,
    None if the value goes as it is.

    SQLite (rows as one JSON document): a JSON field's value goes nested, as
    itself; a timestamp as SQLite's own text form, the one the ORM writes (the
    column is compared as text). PostgreSQL (COPY): a JSON value as its text,
    a timestamp as is (psycopg writes it).
    """
    internal = field.get_internal_type()
    if internal in _DRIVER_NATIVE:
        return None
    sqlite = connection.vendor == "sqlite"
    if internal == "JSONField":
        if not sqlite:
            return _json_text(field.encoder)
        if field.encoder is None:
            return None
        return lambda value: json.loads(json.dumps(value, cls=field.encoder))
    if internal == "DateTimeField":
        return _sqlite_datetime(connection) if sqlite else None
    return partial(field.get_db_prep_save, connection=connection)


def _sqlite_datetime(connection) -> Callable:
    """SQLite's text form of a timestamp, as the ORM writes it: naive, in the
    connection's zone. The gateway's timestamps are in UTC already, as is the
    connection (USE_TZ), so for them that is the text without the zone; two of
    each row's twenty values, Django's general path was a fifth of the time a
    cold sync spent preparing rows."""
    general = connection.ops.adapt_datetimefield_value
    if connection.timezone is not UTC:
        return general

    def adapt(value):
        if value.tzinfo is UTC:
            return str(value.replace(tzinfo=None))
        return general(value)

    return adapt


# PostgreSQL: the temporary table a chunk of rows is copied into before the merge.
_LOAD_TABLE = "mirror_load"


class RowWriter:
    """Writes mirror rows ((openstack_id, fingerprint, {field: value})) of one
    site, a chunk at a time, with set-based statements:

    - SQLite: the chunk goes as one JSON array (one parameter) that
      `INSERT … SELECT … FROM json_each(%s) … ON CONFLICT` unpacks;
    - PostgreSQL: COPY into a temporary table, then one
      `INSERT … SELECT … FROM mirror_load ON CONFLICT`.

    Why not a statement per row (executemany): PostgreSQL then parses, plans
    and runs 100,000 statements (twenty seconds of a cold sync), and SQLite's
    driver takes the GIL back after every row, so the writer thread queued
    behind the thread building the next batch (a 4 s write took 12). Here the
    database does a chunk's work in one call, without the GIL. (PostgreSQL
    parses COPY's text several times faster than a JSON document.)

    The fields the rows give, the fingerprint, deleted_at (cleared) and
    synced_at are written; a new row gets its model defaults for the rest, an
    existing row keeps them.
    """

    def __init__(
        self, model: type[models.Model], *, site: Site, now, rows: list[tuple], chunk_size: int
    ) -> None:
        self.chunk_size = chunk_size  # rows per statement (MirrorWriter's WRITE_CHUNK)
        # Prepared with the caller's connection, written with the writing thread's.
        self.using = router.db_for_write(model)
        connection = connections[self.using]
        self.sqlite = connection.vendor == "sqlite"
        meta = model._meta
        names: set[str] = set()
        for _, _, fields in rows:
            names.update(fields)  # in C: a listing's rows all have the same twenty
        self.names = sorted(names)
        given = [meta.get_field(name) for name in self.names]
        fixed = {"site_id": site.pk, "deleted_at": None, "synced_at": now}
        taken = {"openstack_id", "fingerprint", *(f.attname for f in given)}
        rest = [f for f in meta.concrete_fields if not f.primary_key and f.attname not in taken]
        varying = [meta.get_field("openstack_id"), meta.get_field("fingerprint"), *given]
        columns = [*varying, *rest]
        # The other columns hold the same value in every row: parameters of
        # the statement, prepared once.
        self.constant = [
            f.get_db_prep_save(fixed.get(f.attname, f.get_default()), connection) for f in rest
        ]
        self.defaults = [f.get_default() for f in given]
        self.to_prepare = [
            (i + 2, adapt) for i, f in enumerate(given) if (adapt := _adapter(f, connection))
        ]

        ops = connection.ops
        quoted = [ops.quote_name(f.column) for f in varying]
        if self.sqlite:
            # json_extract gives a JSON object or array as its text, which is
            # how SQLite's JSON columns hold them; true and false as 1 and 0.
            picked = [f"json_extract(value, '$[{i}]')" for i in range(len(varying))]
            fixed_sql = ["%s"] * len(rest)
            source = "json_each(%s) WHERE true"  # WHERE: SQLite's upsert after a SELECT needs one
        else:
            load = ops.quote_name(_LOAD_TABLE)
            table = ops.quote_name(meta.db_table)
            self.create_load_sql = (
                f"CREATE TEMPORARY TABLE {load} ON COMMIT DROP AS "
                f"SELECT {', '.join(quoted)} FROM {table} WITH NO DATA"
            )
            self.copy_sql = f"COPY {load} ({', '.join(quoted)}) FROM STDIN"
            self.drop_load_sql = f"DROP TABLE {load}"
            picked = quoted
            fixed_sql = [f"%s::{f.db_type(connection)}" for f in rest]
            source = load
        unique = [meta.get_field("site").column, meta.get_field("openstack_id").column]
        updated = [*given, *(meta.get_field(n) for n in ("fingerprint", "deleted_at", "synced_at"))]
        table = ops.quote_name(meta.db_table)
        listed = ", ".join(ops.quote_name(f.column) for f in columns)
        insert = (
            f"INSERT INTO {table} ({listed}) SELECT {', '.join(picked + fixed_sql)} FROM {source}"
        )
        on_conflict = ops.on_conflict_suffix_sql(
            columns, OnConflict.UPDATE, [f.column for f in updated], unique
        )
        # A row someone refreshed after this writer's listing was asked (its synced_at
        # is later) holds newer news: the upsert leaves it, whoever commits last.
        synced = ops.quote_name(meta.get_field("synced_at").column)
        newer_wins = f"WHERE {table}.{synced} <= EXCLUDED.{synced}"
        self.upsert_sql = f"{insert} {on_conflict} {newer_wins}"
        # SQLite runs an upsert whose DO UPDATE names many indexed columns
        # three times slower than a plain insert even when nothing conflicts:
        # rows believed new go in with DO NOTHING first.
        self.insert_sql = (
            f"{insert} ON CONFLICT({', '.join(map(ops.quote_name, unique))}) DO NOTHING"
        )

    def values(self, rows: list[tuple]) -> Iterator[list]:
        """Each row's values: openstack_id, fingerprint, then the given fields."""
        names, defaults, to_prepare = self.names, self.defaults, self.to_prepare
        # Every row of a listing has every field: picked in one C call.
        pick = itemgetter(*names) if len(names) > 1 else (lambda f: tuple(f[n] for n in names))
        for openstack_id, fingerprint, fields in rows:
            try:
                values = [openstack_id, fingerprint, *pick(fields)]
            except KeyError:  # a row without some field: the model's default
                given = [fields.get(n, d) for n, d in zip(names, defaults, strict=True)]
                values = [openstack_id, fingerprint, *given]
            for index, adapt in to_prepare:
                if values[index] is not None:
                    values[index] = adapt(values[index])
            yield values

    def prepare(self, new: list[tuple], changed: list[tuple]) -> list[tuple[bool, int, object]]:
        """The chunks to write: (new?, how many rows, what `_load` takes). On
        SQLite the chunk's JSON text, built now; on PostgreSQL the rows, which
        `write` copies (COPY runs within the writing transaction)."""
        chunks = []
        for is_new, rows in ((True, new), (False, changed)):
            for start in range(0, len(rows), self.chunk_size):
                chunk = rows[start : start + self.chunk_size]
                if self.sqlite:
                    chunk = orjson.dumps(list(self.values(chunk)), default=str).decode()
                chunks.append((is_new, min(self.chunk_size, len(rows) - start), chunk))
        return chunks

    def write(self, chunks: list[tuple[bool, int, object]]) -> None:
        with connections[self.using].cursor() as cursor:
            for is_new, count, chunk in chunks:
                params = self._load(cursor, chunk)
                if not is_new:
                    cursor.execute(self.upsert_sql, params)
                else:
                    cursor.execute(self.insert_sql, params)
                    if cursor.rowcount != count:
                        # Someone else inserted some of these since we looked (a
                        # job's refresh): write ours over theirs, as the upsert does.
                        cursor.execute(self.upsert_sql, params)
                self._unload(cursor)

    def _load(self, cursor, chunk) -> list:
        """Hand a prepared chunk to the database; returns the insert's parameters."""
        if self.sqlite:
            return [*self.constant, chunk]
        cursor.execute(self.create_load_sql)
        with cursor.copy(self.copy_sql) as copy:
            for values in self.values(chunk):
                copy.write_row(values)
        return self.constant

    def _unload(self, cursor) -> None:
        if not self.sqlite:
            cursor.execute(self.drop_load_sql)  # the next chunk's starts empty
