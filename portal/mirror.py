"""The portal's mirror of the clouds: the row base class, the id maps every
app's sync uses, and upserting cloud objects into mirror tables.

One mechanism for flavors, servers and images: load what the mirror holds
for the site once (ids and a hash of the fields), compare hashes, then bulk-create the new rows,
bulk-update the changed ones and (on a full listing) mark the ones the cloud
no longer has as deleted. Unchanged rows cost a dict lookup, so a sync of a
site with 100,000 images that changed little writes little.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from itertools import islice
from operator import itemgetter

import orjson
from django.conf import settings
from django.db import connections, models, router, transaction
from django.db.models.constants import OnConflict
from django.utils import timezone

from portal import cloud
from portal.models import Authorship, Project, Site

CHUNK = 500

# Metadata key the portal writes on what it creates: the portal user's name.
# Only a hint, shown as such: anyone with cloud credentials in the project can
# change it. Who created a thing is the Authorship the creating job recorded.
CREATED_BY_KEY = "portal_user"


class MirrorRow(models.Model):
    """Fields every mirrored OpenStack object has."""

    # No index of its own: each table's unique (site, openstack_id) leads with it.
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+", db_index=False)
    openstack_id = models.CharField(max_length=64)
    synced_at = models.DateTimeField(auto_now=True)
    # Set when the object vanished from the cloud (deleted by anyone). Not indexed:
    # lists read live rows through partial indexes (deleted_at IS NULL).
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Hash of the mirrored fields: a sync compares it instead of every column.
    fingerprint = models.CharField(max_length=40, blank=True, editable=False)

    class Meta:
        abstract = True


def authorship_record(*, site: Site, openstack_id: str, user, job=None) -> None:
    """Record that `user` made the object through the portal (first record wins:
    a re-run step, or a later change of cloud metadata, never moves it)."""
    Authorship.objects.bulk_create(
        [Authorship(site=site, openstack_id=openstack_id, user=user, job=job)],
        ignore_conflicts=True,
    )


def authors_of(site: Site, openstack_ids: Iterable[str] | None = None) -> dict[str, int]:
    """{OpenStack id: user pk} of the objects among `openstack_ids` the portal
    made (of all the site's objects it made when `openstack_ids` is None)."""
    rows = Authorship.objects.filter(site=site, user__isnull=False)
    if openstack_ids is None:
        return dict(rows.values_list("openstack_id", "user_id"))
    ids = set(openstack_ids)
    if not ids:
        return {}
    if len(ids) <= CHUNK:
        rows = rows.filter(openstack_id__in=ids)
    # A full sync asks for every object of the site: reading the site's (few)
    # authorships beats an IN list of 100,000 ids.
    found = rows.values_list("openstack_id", "user_id")
    return {openstack_id: user_id for openstack_id, user_id in found if openstack_id in ids}


def project_ids(site: Site) -> dict[str, int]:
    """{OpenStack project id: portal project pk} of the site."""
    return dict(Project.objects.filter(site=site).values_list("openstack_id", "pk"))


def projects_sync(site: Site) -> int:
    """Refresh the names of the site's projects the portal knows (ids never change)."""
    names = {p.id: p.name for p in cloud.project_list(site.name)}
    changed = 0
    for project in Project.objects.filter(site=site):
        name = names.get(project.openstack_id)
        if name and name != project.name:
            project.name = name
            project.save(update_fields=["name"])
            changed += 1
    return changed


@dataclass
class UpsertResult:
    created: int = 0
    updated: int = 0
    deleted: int = 0

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(
            self.created + other.created, self.updated + other.updated, self.deleted + other.deleted
        )


def mirror_upsert(
    model: type[models.Model],
    *,
    site: Site,
    rows: Mapping[str, dict],
    deleted_ids: set[str] = frozenset(),
    complete: bool = False,
    queryset: models.QuerySet | None = None,
    observed_at: datetime | None = None,
) -> UpsertResult:
    """Write `rows` ({openstack_id: {field: value}}) into `model` for `site`, in
    one transaction.

    `deleted_ids` are objects the cloud reported deleted. With `complete`,
    `rows` is everything the cloud has (within `queryset`), so any other live
    row has vanished and is marked deleted too. See MirrorWriter.
    """
    ids = None if complete else set(rows) | set(deleted_ids)
    writer = MirrorWriter(
        model, site=site, complete=complete, queryset=queryset, ids=ids, observed_at=observed_at
    )
    with transaction.atomic(using=router.db_for_write(model)), writer:
        writer.write(rows, deleted_ids=deleted_ids)
        return writer.finish()


class MirrorWriter:
    """Upserts a listing of one site's objects into `model`, a batch at a time,
    so a listing can be written while its next pages are still arriving.

        with MirrorWriter(Image, site=site, complete=True) as writer:
            for rows in batches:
                writer.write(rows, fingerprints=..., deleted_ids=...)
            result = writer.finish()

    What the mirror holds is read once, up front: ids, hashes and flags only
    (decoding JSON and timestamps of 100,000 rows would cost more than the
    whole comparison). Each batch writes only its new and changed rows, in a
    transaction of its own. `finish` marks the objects the cloud reported
    deleted and, with `complete` (the batches were everything the cloud has,
    within `queryset`), every other live row, which has vanished.

    Race-free: rows are written with INSERT … ON CONFLICT, so a site sync and a
    job's refresh that both see a new image cannot collide; the unique (site,
    openstack_id) constraint is the arbiter. A partial write (`ids`: a job
    refreshing one object) reads only the rows it writes: O(1) per object.

    `observed_at`: when the cloud was asked (it becomes the rows' synced_at). A
    row whose synced_at is later holds newer news (a job's refresh or the status
    watcher asked after us) and is left alone: two writers that overlap never move
    a row back in time.
    """

    def __init__(
        self,
        model: type[models.Model],
        *,
        site: Site,
        complete: bool,
        queryset: models.QuerySet | None = None,
        ids: set[str] | None = None,
        observed_at: datetime | None = None,
    ) -> None:
        self.model, self.site, self.complete = model, site, complete
        self.using = router.db_for_write(model)
        # A row's synced_at is when the cloud was asked, so writers compare asks.
        self.now = observed_at or timezone.now()
        scope = (queryset if queryset is not None else model.objects).filter(site=site)
        if ids is not None:
            scope = scope.filter(openstack_id__in=ids)
        columns = ["pk", "openstack_id", "fingerprint", "deleted_at"]
        # Ids whose rows were synced after `observed_at`: not written by us. Asked of
        # the database (few rows: those a job or the watcher refreshed meanwhile), so
        # a full sync of 100,000 rows decodes no timestamps.
        self.newer: set[str] = set()
        if observed_at is not None:
            newer = scope.filter(synced_at__gt=observed_at).values_list("openstack_id", flat=True)
            self.newer = set(newer)
        found = [row for row in scope.values_list(*columns) if row[1] not in self.newer]
        self.existing = {
            openstack_id: (pk, fingerprint, deleted_at)
            for pk, openstack_id, fingerprint, deleted_at in found
        }
        self.seen: set[str] = set()
        self.deleted: set[str] = set()
        self.result = UpsertResult()
        self._sqlite_settings = _SqliteBulkSettings(connections[self.using])
        self._background: _WriterThread | None = None

    def __enter__(self) -> MirrorWriter:
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        try:
            if self._background is not None:
                background, self._background = self._background, None
                background.close(raise_error=exc_type is None)
        finally:
            self._sqlite_settings.restore()

    def write(
        self,
        rows: Mapping[str, dict],
        *,
        fingerprints: Mapping[str, str] | None = None,
        deleted_ids: Iterable[str] = (),
    ) -> None:
        """Write a batch: `rows` {openstack_id: {field: value}}, with their
        `row_fingerprint`s if the caller computed them already, and the ids
        the cloud reported deleted."""
        new, changed = [], []
        existing, newer = self.existing, self.newer
        for openstack_id, fields in rows.items():
            if openstack_id in newer:
                continue
            fingerprint = fingerprints[openstack_id] if fingerprints else row_fingerprint(fields)
            current = existing.get(openstack_id)
            if current is None:
                new.append((openstack_id, fingerprint, fields))
            elif current[1] != fingerprint or current[2] is not None:
                changed.append((openstack_id, fingerprint, fields))
        self.result.created += len(new)
        self.result.updated += len(changed)
        self.seen.update(rows)
        self.deleted.update(set(deleted_ids) - newer)
        if not (new or changed):
            return
        many = len(new) + len(changed) >= WRITE_CHUNK
        # A sync runs outside any transaction: its big batches are written by
        # a thread with a connection of its own, so the database's share of the
        # work (SQLite's without the GIL, PostgreSQL's in its own process)
        # overlaps the building of the next batch. Inside a transaction (a job,
        # a test) another connection could not see its uncommitted rows.
        if self._background is None and many and not connections[self.using].in_atomic_block:
            self._background = _WriterThread(self.using)
        rows_writer = _RowWriter(self.model, site=self.site, now=self.now, rows=[*new, *changed])
        # Prepared here: the writer thread then spends its time in the database
        # without the GIL instead of queueing for it behind this thread.
        loads = rows_writer.prepare(new, changed)
        if self._background is not None:
            self._background.put(partial(rows_writer.write, loads))
            return
        if many:
            self._sqlite_settings.apply()
        with transaction.atomic(using=self.using):
            rows_writer.write(loads)

    def finish(self) -> UpsertResult:
        if self._background is not None:
            background, self._background = self._background, None
            background.close()  # every batch is written before anything is marked vanished
        existing = self.existing
        vanished = set(self.deleted)
        if self.complete:
            vanished |= set(existing) - self.seen
        pks = [existing[i][0] for i in vanished if i in existing and existing[i][2] is None]
        with transaction.atomic(using=self.using):
            for start in range(0, len(pks), CHUNK):
                self.model.objects.filter(pk__in=pks[start : start + CHUNK]).update(
                    deleted_at=self.now, synced_at=self.now
                )
        self.result.deleted = len(pks)
        return self.result


class _WriterThread:
    """Writes a MirrorWriter's batches, in order, from a thread of its own with
    its own database connection (closed at the end), one transaction each."""

    def __init__(self, using: str) -> None:
        self.using = using
        self.error: BaseException | None = None
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.thread = threading.Thread(target=self._run, name="mirror-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        connection = connections[self.using]
        bulk_settings = _SqliteBulkSettings(connection)
        try:
            while (batch := self.queue.get()) is not None:
                if self.error is not None:
                    continue  # keep taking batches so the caller never blocks
                try:
                    bulk_settings.apply()
                    with transaction.atomic(using=self.using):
                        batch()
                except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
                    self.error = exc
        finally:
            try:
                bulk_settings.restore()
            finally:
                connection.close()

    def put(self, write_batch: Callable[[], None]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(write_batch)

    def close(self, *, raise_error: bool = True) -> None:
        """Wait until every batch handed over is written."""
        self.queue.put(None)
        self.thread.join()
        if raise_error and self.error is not None:
            raise self.error


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
        return connection.ops.adapt_datetimefield_value if sqlite else None
    return partial(field.get_db_prep_save, connection=connection)


# Rows loaded by one statement: bounds what is held at once (~1 kB a row).
WRITE_CHUNK = 2000

# Rows a sync builds, hashes and writes (in one transaction) at a time while a
# listing arrives: big enough that commits cost little, small enough that no
# writer waits long for SQLite's write lock.
WRITE_BATCH = 10_000

# PostgreSQL: the temporary table a chunk of rows is copied into before the merge.
_LOAD_TABLE = "mirror_load"


class NewestSeen:
    """Passes listed objects through, remembering the newest `updated_at` among them:
    a moment in the cloud's own clock, from which the next "changed since" question
    can be asked whatever the portal's clock says (see portal.watch)."""

    def __init__(self) -> None:
        self.at: datetime | None = None

    def note(self, items: Iterable) -> Iterator:
        for item in items:
            stamp = item.updated_at
            if stamp is not None and (self.at is None or stamp > self.at):
                self.at = stamp
            yield item


def newest_update(items: Iterable) -> datetime | None:
    """The newest `updated_at` among listed objects (see NewestSeen)."""
    return max((i.updated_at for i in items if i.updated_at is not None), default=None)


def batched(items: Iterable, size: int) -> Iterator[list]:
    """`items` in lists of `size` (the last one shorter); itertools.batched from 3.12."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class _RowWriter:
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

    def __init__(self, model: type[models.Model], *, site: Site, now, rows: list[tuple]) -> None:
        # Prepared with the caller's connection, written with the writing thread's.
        self.using = router.db_for_write(model)
        connection = connections[self.using]
        self.sqlite = connection.vendor == "sqlite"
        meta = model._meta
        self.names = sorted({name for _, _, fields in rows for name in fields})
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
            for start in range(0, len(rows), WRITE_CHUNK):
                chunk = rows[start : start + WRITE_CHUNK]
                if self.sqlite:
                    chunk = orjson.dumps(list(self.values(chunk)), default=str).decode()
                chunks.append((is_new, min(WRITE_CHUNK, len(rows) - start), chunk))
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


class _SqliteBulkSettings:
    """SQLite settings of the connection while a writer writes many rows, put
    back when it is done.

    The page cache: its default (2 MB) is far smaller than the twenty indexes
    of 100,000 images a cold sync fills, and the pages it kept spilling made
    the write twice as slow. Only memory. (Commits skip their fsync on every
    connection: synchronous=NORMAL, see settings.)
    """

    SETTINGS = {"cache_size": -64 * 1024}

    def __init__(self, connection) -> None:
        self.connection = connection
        self.before: dict[str, int] | None = None

    def apply(self) -> None:
        if self.connection.vendor != "sqlite" or self.before is not None:
            return
        self.before = {}
        with self.connection.cursor() as cursor:
            for name, value in self.SETTINGS.items():
                cursor.execute(f"PRAGMA {name}")
                (self.before[name],) = cursor.fetchone()
                cursor.execute(f"PRAGMA {name} = {int(value)}")

    def restore(self) -> None:
        if self.before is None:
            return
        with self.connection.cursor() as cursor:
            for name, value in self.before.items():
                cursor.execute(f"PRAGMA {name} = {int(value)}")
        self.before = None


def mirror_row_write(row: MirrorRow, fields: dict | None, *, observed_at: datetime) -> MirrorRow:
    """Write what the cloud said at `observed_at` of one object the mirror has
    (`fields`, or None: it is gone) into its row, in at most one query, and return
    the row as written. The lean path of a job's refresh; a row the mirror lacks
    goes through mirror_upsert. A row synced after `observed_at` is newer and wins."""
    if row.synced_at is not None and row.synced_at > observed_at:
        return row
    if fields is None:
        changes = {"deleted_at": row.deleted_at or observed_at}
    else:
        fingerprint = row_fingerprint(fields)
        if fingerprint == row.fingerprint and row.deleted_at is None:
            return row
        changes = {**fields, "fingerprint": fingerprint, "deleted_at": None}
    changes["synced_at"] = observed_at
    type(row).objects.filter(pk=row.pk).update(**changes)
    for name, value in changes.items():
        setattr(row, name, value)
    return row


def site_watched(site: Site) -> bool:
    """Does the status watcher keep this site's mirror current right now? Then a
    job reads its server from the mirror instead of asking the cloud, and the
    watcher wakes it when the server changes."""
    if site.watched_at is None:
        return False
    age = (timezone.now() - site.watched_at).total_seconds()
    return age <= settings.PORTAL_WATCH_FRESH_SECONDS


def row_fingerprint(fields: dict) -> str:
    """A hash of a mirror row's cloud fields: equal hashes mean nothing to write.

    orjson with sorted keys (nested ones too): the same fields give the same text
    whatever order the cloud listed them in, at a third of the json module's cost,
    which a full sync pays for every one of 100,000 rows."""
    text = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha1(text, usedforsecurity=False).hexdigest()


def planner_statistics_refresh() -> None:
    """Let the database's planner know the mirror's shape (after a full sync).

    Without statistics SQLite prefers any index with an equality, e.g. the one on
    `deleted_at` (IS NULL matches nearly every row) over the partial indexes the
    lists are written for, and a page at 100,000 snapshots sorts them all. A full
    ANALYZE costs ~0.2 s at 100,000 images (a sampled one misjudges that index);
    full syncs run every 5 minutes. PostgreSQL's autovacuum keeps its own statistics.
    """
    from django.db import connection

    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
