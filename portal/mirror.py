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
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import models, transaction
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
    Authorship.objects.bulk_create(
        [Authorship(site=site, openstack_id=openstack_id, user=user, job=job)],
        ignore_conflicts=True,
    )


def authors_of(site: Site, openstack_ids: Iterable[str]) -> dict[str, int]:
    """{OpenStack id: user pk} of the objects among `openstack_ids` the portal made."""
    ids = set(openstack_ids)
    if not ids:
        return {}
    rows = Authorship.objects.filter(site=site, user__isnull=False)
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
    """Write `rows` ({openstack_id: {field: value}}) into `model` for `site`.

    `deleted_ids` are objects the cloud reported deleted. With `complete`,
    `rows` is everything the cloud has (within `queryset`), so any other live
    row has vanished and is marked deleted too.

    Race-free: new rows are inserted with INSERT … ON CONFLICT DO UPDATE, so a
    site sync and a job's refresh that both see a new image cannot collide; the
    unique (site, openstack_id) constraint is the arbiter. A partial write (a
    job refreshing one object) reads only the rows it writes: O(1) per object.

    `observed_at`: when the cloud was asked (it becomes the rows' synced_at). A
    row whose synced_at is later holds newer news (a job's refresh or the watcher
    asked after us) and is left alone: two writers that overlap never move a row
    back in time.
    """
    result = UpsertResult()
    # A row's synced_at is when the cloud was asked, so writers compare asks.
    now = observed_at or timezone.now()
    scope = (queryset if queryset is not None else model.objects).filter(site=site)
    if not complete:
        scope = scope.filter(openstack_id__in=set(rows) | set(deleted_ids))
    # Only ids, hashes and flags come back from the database: decoding JSON and
    # timestamps of 100,000 rows would cost more than the whole comparison.
    columns = ["pk", "openstack_id", "fingerprint", "deleted_at"]
    if observed_at is None:
        existing = {row[1]: (row[0], row[2], row[3]) for row in scope.values_list(*columns)}
    else:
        found = list(scope.values_list(*columns, "synced_at"))
        existing = {row[1]: (row[0], row[2], row[3]) for row in found}
        newer = {row[1] for row in found if row[4] > observed_at}
        rows = {i: fields for i, fields in rows.items() if i not in newer}
        deleted_ids = set(deleted_ids) - newer
    compared = sorted({name for fields in rows.values() for name in fields})

    # New and changed rows alike are written by one INSERT … ON CONFLICT DO UPDATE:
    # linear in the rows, where bulk_update's CASE WHEN per column is quadratic (the
    # status watcher rewrites hundreds of rows a second during a workshop).
    written_rows = []
    created = 0
    for openstack_id, fields in rows.items():
        fingerprint = row_fingerprint(fields)
        current = existing.get(openstack_id)
        if current is None or current[1] != fingerprint or current[2] is not None:
            created += current is None
            written_rows.append(
                model(
                    site=site, openstack_id=openstack_id, fingerprint=fingerprint,
                    deleted_at=None, synced_at=now, **fields,
                )
            )  # fmt: skip

    vanished = set(deleted_ids)
    if complete:
        vanished |= set(existing) - set(rows)
    vanished_pks = [existing[i][0] for i in vanished if i in existing and existing[i][2] is None]

    written = [*compared, "fingerprint", "deleted_at", "synced_at"]
    with transaction.atomic():
        if written_rows:
            model.objects.bulk_create(
                written_rows,
                batch_size=CHUNK,
                update_conflicts=True,
                unique_fields=["site", "openstack_id"],
                update_fields=written,
            )
        for start in range(0, len(vanished_pks), CHUNK):
            model.objects.filter(pk__in=vanished_pks[start : start + CHUNK]).update(
                deleted_at=now, synced_at=now
            )
    result.created, result.updated, result.deleted = (
        created,
        len(written_rows) - created,
        len(vanished_pks),
    )
    return result


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
    """A hash of a mirror row's cloud fields: equal hashes mean nothing to write."""
    text = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
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
