"""Upserting cloud objects into mirror tables.

One mechanism for flavors, servers and images: load what the mirror holds
for the site once (ids and a hash of the fields), compare hashes, then bulk-create the new rows,
bulk-update the changed ones and (on a full listing) mark the ones the cloud
no longer has as deleted. Unchanged rows cost a dict lookup, so a sync of a
site with 100,000 images that changed little writes little.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.core.exceptions import EmptyResultSet
from django.db import connections, models, router, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.utils import timezone

from portal.mirror.bulk_load import RowWriter
from portal.mirror.rows import CHUNK, MirrorRow, row_fingerprint
from portal.mirror.sqlite import SqliteBulkSettings
from portal.mirror.writer_thread import WriterThread
from portal.models import Site

# Rows loaded by one statement: bounds what is held at once (~1 kB a row).
WRITE_CHUNK = 2000


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

    What the mirror holds is read once, at the first batch: ids, hashes and flags only
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
        self._scope = scope
        self._observed_at = observed_at
        self._existing: dict[str, tuple] | None = None
        self._newer: set[str] = set()
        self.seen: set[str] = set()
        self.deleted: set[str] = set()
        # Ids of the rows this writer created, changed or marked deleted: the only
        # ones whose waiting jobs it may have to wake (portal.jobs.parking).
        self.moved: set[str] = set()
        self.result = UpsertResult()
        self._sqlite_settings = SqliteBulkSettings(connections[self.using])
        self._background: WriterThread | None = None

    @property
    def existing(self) -> dict[str, tuple]:
        """{openstack_id: (pk, fingerprint, deleted_at)} of the rows the mirror
        holds, but those synced after `observed_at`: read at the first batch,
        while the listing's next pages are already on their way (a warm sync
        of 100,000 images spent a second on it before asking the cloud anything)."""
        if self._existing is None:
            self._existing = self._read_existing()
        return self._existing

    @property
    def newer(self) -> set[str]:
        """Ids whose rows were synced after `observed_at`: not ours to write."""
        self.existing  # noqa: B018 (read together)
        return self._newer

    def _read_existing(self) -> dict[str, tuple]:
        # Ids, hashes and flags only, as the driver gives them (a timestamp is
        # only tested for None): one statement, no ORM row building for 100,000
        # rows. The rows synced after `observed_at` (a job's refresh, the watcher)
        # come flagged in the same read.
        fields = ["pk", "openstack_id", "fingerprint", "deleted_at"]
        rows = self._scope.order_by()  # a dict: the model's order would sort every row
        if self._observed_at is not None:
            later = Q(synced_at__gt=self._observed_at)
            rows = rows.annotate(_newer=ExpressionWrapper(later, output_field=BooleanField()))
            fields.append("_newer")
        try:
            sql, params = rows.values_list(*fields).query.sql_with_params()
        except EmptyResultSet:  # `ids` is empty
            return {}
        with connections[self.using].cursor() as cursor:
            cursor.execute(sql, params)
            found = cursor.fetchall()
        if self._observed_at is None:
            return {row[1]: (row[0], row[2], row[3]) for row in found}
        self._newer = {row[1] for row in found if row[4]}
        return {row[1]: (row[0], row[2], row[3]) for row in found if not row[4]}

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
        existing, newer, seen = self.existing, self.newer, self.seen
        for openstack_id, fields in rows.items():
            # An object a listing showed twice (a page boundary moved under it) is
            # written once, from its first batch: batches written side by side
            # (WriterThread) never hold the same row.
            if openstack_id in newer or openstack_id in seen:
                continue
            fingerprint = fingerprints[openstack_id] if fingerprints else row_fingerprint(fields)
            current = existing.get(openstack_id)
            if current is None:
                new.append((openstack_id, fingerprint, fields))
            elif current[1] != fingerprint or current[2] is not None:
                changed.append((openstack_id, fingerprint, fields))
        self.result.created += len(new)
        self.result.updated += len(changed)
        self.moved.update(openstack_id for openstack_id, _, _ in (*new, *changed))
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
        connection = connections[self.using]
        if self._background is None and many and not connection.in_atomic_block:
            threads = 2 if connection.vendor == "postgresql" else 1
            self._background = WriterThread(self.using, threads=threads)
        rows_writer = RowWriter(
            self.model, site=self.site, now=self.now, rows=[*new, *changed], chunk_size=WRITE_CHUNK
        )
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
        gone = [i for i in vanished if i in existing and existing[i][2] is None]
        self.moved.update(gone)
        pks = [existing[i][0] for i in gone]
        with transaction.atomic(using=self.using):
            for start in range(0, len(pks), CHUNK):
                self.model.objects.filter(pk__in=pks[start : start + CHUNK]).update(
                    deleted_at=self.now, synced_at=self.now
                )
        self.result.deleted = len(pks)
        return self.result


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
