"""The row every mirror table extends, and the hash a sync compares rows by."""

from __future__ import annotations

import hashlib

import orjson
from django.db import models

from portal.models import Site

# Ids in one IN list: longer lists go in chunks of this many (see authors_of).
CHUNK = 500


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


def row_fingerprint(fields: dict) -> str:
    """A hash of a mirror row's cloud fields: equal hashes mean nothing to write.

    orjson with sorted keys (nested ones too): the same fields give the same text
    whatever order the cloud listed them in, at a third of the json module's cost,
    which a full sync pays for every one of 100,000 rows."""
    text = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha1(text, usedforsecurity=False).hexdigest()


def rows_by_object(model: type[MirrorRow], objects: list[tuple[int | None, str]]) -> dict:
    """{(site id, OpenStack id): row} for these objects, in one query (the read-aheads
    of a batch of jobs). A pair has one row (each table's unique constraint), so the
    rows come unsorted: the model's order cost Django more to build than the read."""
    if not objects:
        return {}
    rows = model._default_manager.filter(
        site_id__in={site_id for site_id, _ in objects},
        openstack_id__in={openstack_id for _, openstack_id in objects},
    ).order_by()
    return {(row.site_id, row.openstack_id): row for row in rows}
