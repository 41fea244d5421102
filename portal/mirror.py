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
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

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

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+")
    openstack_id = models.CharField(max_length=64)
    synced_at = models.DateTimeField(auto_now=True)
    # Set when the object vanished from the cloud (deleted by anyone).
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Hash of the mirrored fields: a sync compares it instead of every column.
    fingerprint = models.CharField(max_length=40, blank=True, editable=False)

    class Meta:
        abstract = True


def authorship_record(*, site: Site, openstack_id: str, user, job=None) -> None:
    """Record that `user` made the object through the portal (first record wins:
    a re-run step, or a later change of cloud metadata, never moves it)."""
    Authorship.objects.get_or_create(
        site=site, openstack_id=openstack_id, defaults={"user": user, "job": job}
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
    fingerprints: Mapping[str, str] | None = None,
) -> UpsertResult:
    """Write `rows` ({openstack_id: {field: value}}) into `model` for `site`.

    `fingerprints` are the rows' `row_fingerprint`s if the caller computed them
    already (while a listing was still arriving).

    `deleted_ids` are objects the cloud reported deleted. With `complete`,
    `rows` is everything the cloud has (within `queryset`), so any other live
    row has vanished and is marked deleted too.

    Race-free: new and changed rows alike are written with INSERT … ON CONFLICT
    DO UPDATE, so a site sync and a job's refresh that both see a new image
    cannot collide; the unique (site, openstack_id) constraint is the arbiter.
    A partial write (a job refreshing one object) reads only the rows it
    writes: O(1) per object.
    """
    now = timezone.now()
    scope = (queryset if queryset is not None else model.objects).filter(site=site)
    if not complete:
        scope = scope.filter(openstack_id__in=set(rows) | set(deleted_ids))
    # Only ids, hashes and flags come back from the database: decoding JSON and
    # timestamps of 100,000 rows would cost more than the whole comparison.
    existing = {
        openstack_id: (pk, fingerprint, deleted_at)
        for pk, openstack_id, fingerprint, deleted_at in scope.values_list(
            "pk", "openstack_id", "fingerprint", "deleted_at"
        )
    }

    result = UpsertResult()
    new, changed = [], []
    for openstack_id, fields in rows.items():
        fingerprint = fingerprints[openstack_id] if fingerprints else row_fingerprint(fields)
        current = existing.get(openstack_id)
        if current is None:
            new.append((openstack_id, fingerprint, fields))
        elif current[1] != fingerprint or current[2] is not None:
            changed.append((openstack_id, fingerprint, fields))
    result.created, result.updated = len(new), len(changed)

    vanished = set(deleted_ids)
    if complete:
        vanished |= set(existing) - set(rows)
    vanished_pks = [existing[i][0] for i in vanished if i in existing and existing[i][2] is None]
    result.deleted = len(vanished_pks)

    with transaction.atomic(using=router.db_for_write(model)):
        if new or changed:
            _RowWriter(model, site=site, now=now, rows=[*new, *changed]).write(new, changed)
        for start in range(0, len(vanished_pks), CHUNK):
            model.objects.filter(pk__in=vanished_pks[start : start + CHUNK]).update(
                deleted_at=now, synced_at=now
            )
    return result


# Field types whose values the row builders (`server_fields`, `image_fields`…)
# already give as str, int, bool or None, which every database driver takes
# as is. They skip Django's per-value preparation: at 100,000 rows of twenty
# fields that preparation cost more than the database's own work. JSON and
# timestamps still go through the field's get_db_prep_save.
_DRIVER_NATIVE = frozenset(
    {
        "CharField", "TextField", "BooleanField", "IntegerField", "BigIntegerField",
        "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField",
        "PositiveSmallIntegerField", "ForeignKey",
    }
)  # fmt: skip

# Rows prepared at once: bounds the parameter lists held in memory.
WRITE_CHUNK = 2000
# Rows per INSERT on databases other than SQLite (far below PostgreSQL's
# 65,535 parameters per statement).
ROWS_PER_STATEMENT = 500


class _RowWriter:
    """Writes mirror rows ((openstack_id, fingerprint, {field: value})) of one
    site with one prepared statement per kind, run for every row (executemany).

    bulk_create compiled each value through the model field machinery and took
    half a minute for 100,000 images. The fields the rows give, the fingerprint,
    deleted_at (cleared) and synced_at are written; a new row gets its model
    defaults for the rest, an existing row keeps them.
    """

    def __init__(self, model: type[models.Model], *, site: Site, now, rows: list[tuple]) -> None:
        self.connection = connection = connections[router.db_for_write(model)]
        meta = model._meta
        self.names = sorted({name for _, _, fields in rows for name in fields})
        given = [meta.get_field(name) for name in self.names]
        fixed = {"site_id": site.pk, "deleted_at": None, "synced_at": now}
        taken = {"openstack_id", "fingerprint", *(f.attname for f in given)}
        rest = [f for f in meta.concrete_fields if not f.primary_key and f.attname not in taken]
        columns = [meta.get_field("openstack_id"), meta.get_field("fingerprint"), *given, *rest]
        # The other columns hold the same value in every row: prepared once.
        self.constant = tuple(
            f.get_db_prep_save(fixed.get(f.attname, f.get_default()), connection) for f in rest
        )
        self.defaults = [f.get_default() for f in given]
        self.to_prepare = [
            (i, f) for i, f in enumerate(given) if f.get_internal_type() not in _DRIVER_NATIVE
        ]

        ops = connection.ops
        unique = [meta.get_field("site").column, meta.get_field("openstack_id").column]
        updated = [*given, *(meta.get_field(n) for n in ("fingerprint", "deleted_at", "synced_at"))]
        table = ops.quote_name(meta.db_table)
        listed = ", ".join(ops.quote_name(f.column) for f in columns)
        self.insert_head = f"INSERT INTO {table} ({listed}) VALUES "
        self.row_placeholder = f"({', '.join(['%s'] * len(columns))})"
        self.on_conflict_update = ops.on_conflict_suffix_sql(
            columns, OnConflict.UPDATE, [f.column for f in updated], unique
        )
        # SQLite runs an upsert whose DO UPDATE names many indexed columns
        # three times slower than a plain insert even when nothing conflicts
        # (8 s instead of 3 s for 100,000 images): rows believed new go in
        # with DO NOTHING first.
        self.on_conflict_nothing = (
            f"ON CONFLICT({', '.join(map(ops.quote_name, unique))}) DO NOTHING"
        )

    def params(self, rows: list[tuple]) -> list[tuple]:
        connection, names, defaults = self.connection, self.names, self.defaults
        params = []
        for openstack_id, fingerprint, fields in rows:
            values = [fields.get(n, d) for n, d in zip(names, defaults, strict=True)]
            for index, field in self.to_prepare:
                values[index] = field.get_db_prep_save(values[index], connection)
            params.append((openstack_id, fingerprint, *values, *self.constant))
        return params

    def write(self, new: list[tuple], changed: list[tuple]) -> None:
        with (
            self.connection.cursor() as cursor,
            _page_cache_for_bulk(cursor, len(new) + len(changed)),
        ):
            for start in range(0, len(new), WRITE_CHUNK):
                params = self.params(new[start : start + WRITE_CHUNK])
                if self._insert(cursor, params, self.on_conflict_nothing) != len(params):
                    # Someone else inserted some of these since we looked (a
                    # job's refresh): write ours over theirs, as the upsert does.
                    self._insert(cursor, params, self.on_conflict_update)
            for start in range(0, len(changed), WRITE_CHUNK):
                params = self.params(changed[start : start + WRITE_CHUNK])
                self._insert(cursor, params, self.on_conflict_update)

    def _insert(self, cursor, params: list[tuple], on_conflict: str) -> int:
        """Run the INSERT for every row of `params`; returns how many rows it wrote."""
        if self.connection.vendor == "sqlite":
            # One prepared statement stepped once per row: SQLite's fastest way.
            cursor.executemany(f"{self.insert_head}{self.row_placeholder} {on_conflict}", params)
            return cursor.rowcount
        # A client/server database parses and plans each statement (psycopg
        # binds on the client), so executemany's one statement per row took
        # 18 s for 100,000 images on PostgreSQL: many rows per statement.
        written = 0
        for start in range(0, len(params), ROWS_PER_STATEMENT):
            batch = params[start : start + ROWS_PER_STATEMENT]
            values = ", ".join([self.row_placeholder] * len(batch))
            cursor.execute(
                f"{self.insert_head}{values} {on_conflict}", [v for row in batch for v in row]
            )
            written += cursor.rowcount
        return written


# SQLite's page cache while writing many rows. Its default (2 MB) is far
# smaller than the twenty indexes of 100,000 images a cold sync fills, and the
# pages it keeps spilling made the write twice as slow. Only memory: the
# cache is shrunk back when the write is done.
BULK_PAGE_CACHE_KIB = 64 * 1024


@contextmanager
def _page_cache_for_bulk(cursor, rows: int):
    if cursor.db.vendor != "sqlite" or rows < WRITE_CHUNK:
        yield
        return
    cursor.execute("PRAGMA cache_size")
    (before,) = cursor.fetchone()
    cursor.execute(f"PRAGMA cache_size = -{BULK_PAGE_CACHE_KIB}")
    try:
        yield
    finally:
        cursor.execute(f"PRAGMA cache_size = {int(before)}")


# One encoder for every fingerprint: json.dumps with options builds a new one per call.
_FINGERPRINT_JSON = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))


def row_fingerprint(fields: dict) -> str:
    """A hash of a mirror row's cloud fields: equal hashes mean nothing to write."""
    text = _FINGERPRINT_JSON.encode(fields)
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


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
