"""Mirror writes: the unique constraint arbitrates concurrent inserts, and a
single-object refresh reads and writes only that object's row."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from images.models import Image
from portal.mirror import mirror_upsert

FIELDS = {
    "name": "gold", "status": "saving", "visibility": "private", "owner_openstack_id": "p-alpha",
    "is_snapshot": True, "tags": [], "properties": {},
}  # fmt: skip


def test_a_writer_with_a_stale_read_updates_instead_of_failing(people):
    """A site sync and a job refresh both see a new image. The job read the mirror
    before the sync inserted it; its insert must become an update, not an
    IntegrityError that fails a job whose snapshot is fine."""
    site = people["site"]
    mirror_upsert(Image, site=site, rows={"img-1": FIELDS})
    stale = Image.objects.exclude(openstack_id="img-1")  # what the job saw
    result = mirror_upsert(
        Image, site=site, rows={"img-1": {**FIELDS, "status": "active"}}, queryset=stale
    )
    assert result.created == 1  # it believed the row was new…
    rows = Image.objects.filter(site=site, openstack_id="img-1")
    assert rows.count() == 1 and rows.get().status == "active"  # …and the row was updated


def test_a_single_object_refresh_reads_only_its_row(people):
    site = people["site"]
    mirror_upsert(Image, site=site, rows={f"img-{n}": FIELDS for n in range(300)}, complete=True)
    with CaptureQueriesContext(connection) as queries:
        mirror_upsert(Image, site=site, rows={"img-7": {**FIELDS, "status": "active"}})
    reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT")]
    assert len(reads) == 1 and '"openstack_id" IN' in reads[0]
    assert Image.objects.get(openstack_id="img-7").status == "active"
    assert Image.objects.filter(status="saving").count() == 299


def test_a_complete_listing_still_marks_the_vanished(people):
    site = people["site"]
    mirror_upsert(Image, site=site, rows={"a": FIELDS, "b": FIELDS}, complete=True)
    result = mirror_upsert(Image, site=site, rows={"a": FIELDS}, complete=True)
    assert result.deleted == 1
    assert Image.objects.get(openstack_id="b").deleted_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_sync_outside_a_transaction_writes_big_batches_from_a_thread(monkeypatch):
    """Outside a transaction (a site sync) big batches go to a writer thread with
    its own connection: all of them are written before `finish` marks the
    vanished, and a failed batch fails the sync."""
    from django.db import IntegrityError

    from portal import mirror
    from portal.models import Site

    site = Site.objects.create(name="devcloud", display_name="Bielefeld")
    Image.objects.create(site=site, openstack_id="old", **FIELDS)
    monkeypatch.setattr(mirror, "WRITE_CHUNK", 2)  # every batch is "big"
    with mirror.MirrorWriter(Image, site=site, complete=True) as writer:
        writer.write({f"a{n}": FIELDS for n in range(3)})
        assert writer._background is not None
        writer.write({f"b{n}": {**FIELDS, "status": "active"} for n in range(3)})
        result = writer.finish()
    assert (result.created, result.updated, result.deleted) == (6, 0, 1)
    assert Image.objects.filter(site=site, deleted_at__isnull=True).count() == 6
    assert Image.objects.filter(site=site, status="active").count() == 3
    assert Image.objects.get(openstack_id="old").deleted_at is not None

    with pytest.raises(IntegrityError):
        with mirror.MirrorWriter(Image, site=site, complete=False) as writer:
            writer.write({f"c{n}": {**FIELDS, "name": None} for n in range(3)})  # NOT NULL
            writer.finish()


def test_a_row_without_some_fields_gets_the_models_defaults(people):
    site = people["site"]
    mirror_upsert(Image, site=site, rows={"full": FIELDS, "bare": {"name": "bare"}})
    bare = Image.objects.get(site=site, openstack_id="bare")
    assert (bare.name, bare.status, bare.tags, bare.properties, bare.min_disk) == (
        "bare",
        "",
        [],
        {},
        0,
    )
    mirror_upsert(Image, site=site, rows={"solo": {"name": "solo"}})  # one field only
    assert Image.objects.get(site=site, openstack_id="solo").name == "solo"
