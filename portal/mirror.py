"""Upserting cloud objects into the portal's mirror tables.

One mechanism for flavors, servers and images: load what the mirror holds
for the site once, compare field by field, then bulk-create the new rows,
bulk-update the changed ones and (on a full listing) mark the ones the cloud
no longer has as deleted. Unchanged rows cost a dict lookup, so a sync of a
site with 100,000 images that changed little writes little.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.db import models, transaction
from django.utils import timezone

from portal.models import Site

CHUNK = 500


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
) -> UpsertResult:
    """Write `rows` ({openstack_id: {field: value}}) into `model` for `site`.

    `deleted_ids` are objects the cloud reported deleted. With `complete`,
    `rows` is everything the cloud has (within `queryset`), so any other live
    row has vanished and is marked deleted too.
    """
    result = UpsertResult()
    now = timezone.now()
    scope = (queryset if queryset is not None else model.objects).filter(site=site)
    compared = sorted({name for fields in rows.values() for name in fields})
    existing = {
        values["openstack_id"]: values
        for values in scope.values("pk", "openstack_id", "deleted_at", *compared)
    }

    to_create = []
    to_update = []
    for openstack_id, fields in rows.items():
        current = existing.get(openstack_id)
        if current is None:
            to_create.append(model(site=site, openstack_id=openstack_id, **fields))
            continue
        changed = current["deleted_at"] is not None or any(
            current[name] != value for name, value in fields.items()
        )
        if changed:
            to_update.append(model(pk=current["pk"], deleted_at=None, synced_at=now, **fields))

    vanished = set(deleted_ids)
    if complete:
        vanished |= set(existing) - set(rows)
    vanished_pks = [
        existing[i]["pk"] for i in vanished if i in existing and existing[i]["deleted_at"] is None
    ]

    with transaction.atomic():
        if to_create:
            model.objects.bulk_create(to_create, batch_size=CHUNK)
        if to_update:
            model.objects.bulk_update(
                to_update, [*compared, "deleted_at", "synced_at"], batch_size=CHUNK
            )
        for start in range(0, len(vanished_pks), CHUNK):
            model.objects.filter(pk__in=vanished_pks[start : start + CHUNK]).update(
                deleted_at=now, synced_at=now
            )
    result.created, result.updated, result.deleted = (
        len(to_create),
        len(to_update),
        len(vanished_pks),
    )
    return result
