"""Mirror writes: the unique constraint arbitrates concurrent inserts, and a
single-object refresh reads and writes only that object's row."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from images.models import Image
from portal.mirror.rows import row_fingerprint
from portal.mirror.upsert import mirror_upsert

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
    assert rows.count() == 1
    assert rows.get().status == "active"  # …and the row was updated


def test_a_single_object_refresh_reads_only_its_row(people):
    site = people["site"]
    mirror_upsert(Image, site=site, rows={f"img-{n}": FIELDS for n in range(300)}, complete=True)
    with CaptureQueriesContext(connection) as queries:
        mirror_upsert(Image, site=site, rows={"img-7": {**FIELDS, "status": "active"}})
    reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT")]
    assert len(reads) == 1
    assert '"openstack_id" IN' in reads[0]
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

    from portal.mirror import upsert as mirror
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

    def write_rows_without_a_name():
        with mirror.MirrorWriter(Image, site=site, complete=False) as writer:
            writer.write({f"c{n}": {**FIELDS, "name": None} for n in range(3)})  # NOT NULL
            writer.finish()

    with pytest.raises(IntegrityError):
        write_rows_without_a_name()


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


def _rich_fields(n: int, project, user) -> dict:
    from datetime import UTC, datetime

    return {
        "name": f"Übung «{n}»\ttab\nline \\ back",
        "name_key": f"übung {n}",
        "status": "active",
        "visibility": "private",
        "project_id": project.pk,
        "owner_openstack_id": "p-alpha",
        "size": 8_578_481_345 + n,  # beyond 32 bits
        "min_disk": 50,
        "min_ram": 0,
        "checksum": "",
        "protected": n % 2 == 0,
        "tags": ["a", "b c", "ü"],
        "properties": {"os_distro": "ubuntu", "nested": {"x": [1, None, True]}, "quote": '"\\'},
        "is_snapshot": True,
        "source_server_openstack_id": "srv",
        "base_image_openstack_id": "",
        "created_by_id": user.pk if n % 2 else None,
        "created_by_hint": "",
        "created_at": datetime(2026, 11, 27, 7, 2, 19, 123456, tzinfo=UTC),
        "updated_at": None,
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("chunk", [2, 2000])
def test_the_bulk_load_writes_what_the_orm_writes(monkeypatch, chunk):
    """Rows loaded in bulk (SQLite: one JSON document a chunk; PostgreSQL: COPY
    into a temporary table, then one INSERT … SELECT) read back exactly as rows
    the ORM saved: text with tabs, newlines and backslashes, big integers,
    booleans, NULLs, JSON, timestamps. From the writer thread (a sync) and in a
    transaction (a job) alike, new rows and changed ones."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.forms.models import model_to_dict

    from portal.mirror import upsert as mirror
    from portal.models import Project, Site

    monkeypatch.setattr(mirror, "WRITE_CHUNK", chunk)
    site = Site.objects.create(name="devcloud", display_name="Bielefeld")
    project = Project.objects.create(site=site, openstack_id="p-alpha", name="alpha")
    user = get_user_model().objects.create_user("alice")
    rows = {f"img-{n}": _rich_fields(n, project, user) for n in range(5)}
    for openstack_id, fields in rows.items():  # the reference: saved by the ORM
        Image.objects.create(site=site, openstack_id=f"orm-{openstack_id}", **fields)

    def as_written(openstack_id: str) -> dict:
        row = Image.objects.get(site=site, openstack_id=openstack_id)
        return model_to_dict(row, exclude=["id", "openstack_id", "fingerprint"])

    with mirror.MirrorWriter(Image, site=site, complete=False, ids=set(rows)) as writer:
        writer.write(rows)
        writer.finish()
    for openstack_id, fields in rows.items():
        assert as_written(openstack_id) == as_written(f"orm-{openstack_id}")
        assert Image.objects.get(openstack_id=openstack_id).fingerprint == row_fingerprint(fields)

    changed = {i: {**f, "name": f"{f['name']} (renamed)", "tags": []} for i, f in rows.items()}
    with transaction.atomic():
        result = mirror_upsert(Image, site=site, rows=changed)
    assert (result.created, result.updated) == (0, 5)
    for openstack_id, fields in changed.items():
        Image.objects.filter(openstack_id=f"orm-{openstack_id}").update(**fields)
        assert as_written(openstack_id) == as_written(f"orm-{openstack_id}")


def test_a_fingerprint_ignores_the_order_of_keys():
    one = {"name": "a", "properties": {"x": "1", "y": "2"}, "tags": ["t"]}
    other = {"tags": ["t"], "properties": {"y": "2", "x": "1"}, "name": "a"}
    assert row_fingerprint(one) == row_fingerprint(other)
    assert row_fingerprint(one) != row_fingerprint({**one, "tags": ["u"]})


@pytest.mark.django_db(transaction=True)
def test_an_object_a_listing_shows_twice_is_written_once(monkeypatch):
    """A page boundary that moves while a listing is read can show an object on
    two pages, so in two batches. The batches are written side by side (two
    writer threads on PostgreSQL): the object is written once, from the batch
    that listed it first, and counted once."""
    from portal.mirror import upsert as mirror
    from portal.models import Site

    site = Site.objects.create(name="devcloud", display_name="Bielefeld")
    monkeypatch.setattr(mirror, "WRITE_CHUNK", 2)  # every batch is "big": the writer threads
    with mirror.MirrorWriter(Image, site=site, complete=True) as writer:
        writer.write({"a": FIELDS, "b": FIELDS, "c": FIELDS})
        writer.write({"c": {**FIELDS, "status": "active"}, "d": FIELDS, "e": FIELDS})
        result = writer.finish()
    assert (result.created, result.updated, result.deleted) == (5, 0, 0)
    assert Image.objects.filter(site=site).count() == 5
    assert Image.objects.get(openstack_id="c").status == "saving"
