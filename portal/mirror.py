"""Upserting cloud objects into the portal's mirror tables.

One mechanism for flavors, servers and images: load what the mirror holds
for the site once (ids and a hash of the fields), compare hashes, then bulk-create the new rows,
bulk-update the changed ones and (on a full listing) mark the ones the cloud
no longer has as deleted. Unchanged rows cost a dict lookup, so a sync of a
site with 100,000 images that changed little writes little.
"""

from __future__ import annotations

import hashlib
import json
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
    # Only ids, hashes and flags come back from the database: decoding JSON and
    # timestamps of 100,000 rows would cost more than the whole comparison.
    existing = {
        openstack_id: (pk, fingerprint, deleted_at)
        for pk, openstack_id, fingerprint, deleted_at in scope.values_list(
            "pk", "openstack_id", "fingerprint", "deleted_at"
        )
    }
    compared = sorted({name for fields in rows.values() for name in fields})

    to_create = []
    to_update = []
    for openstack_id, fields in rows.items():
        fingerprint = _fingerprint(fields)
        current = existing.get(openstack_id)
        if current is None:
            to_create.append(
                model(site=site, openstack_id=openstack_id, fingerprint=fingerprint, **fields)
            )
        elif current[1] != fingerprint or current[2] is not None:
            to_update.append(
                model(
                    pk=current[0], deleted_at=None, synced_at=now, fingerprint=fingerprint, **fields
                )
            )

    vanished = set(deleted_ids)
    if complete:
        vanished |= set(existing) - set(rows)
    vanished_pks = [existing[i][0] for i in vanished if i in existing and existing[i][2] is None]

    with transaction.atomic():
        if to_create:
            model.objects.bulk_create(to_create, batch_size=CHUNK)
        if to_update:
            model.objects.bulk_update(
                to_update, [*compared, "fingerprint", "deleted_at", "synced_at"], batch_size=CHUNK
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


def _fingerprint(fields: dict) -> str:
    text = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
