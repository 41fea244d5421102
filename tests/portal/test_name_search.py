""" "*text" searches anywhere in the name, answered by a trigram index (pg_trgm on
PostgreSQL, an FTS5 trigram table on SQLite: portal.name_search), with exactly the
case-insensitive "contains" of before; shorter than three characters it is a 400
that says why; and the index follows every mirror write (renames, deletes)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from images.models import Image
from instances.models import Server
from portal.mirror.upsert import mirror_upsert
from portal.name_search import fts_table, name_contains_q
from tests.factories import make_image, make_server

SNAPSHOTS = reverse("snapshots:snapshot-list")
INSTANCES = reverse("instances:instance-list")
LAUNCH = reverse("instances:instance-new")

NAMES = [
    "Gold-Image", "old-gold-2", "the GOLD", "silver", "50%_off", 'say "hi"', "a-(b)-c",
    "x AND y", "net*work", "pre^fix:col", "near-NEAR(x y)", "Über-Straße", "golden",
]  # fmt: skip

# The text after "*", and why it is here. Each must find exactly the names that
# contain it, ignoring case (Python's casefold: what the old scan matched).
TERMS = [
    "gold",  # at the start, in the middle, at the end, in mixed case
    "GOLD-",  # upper case finds lower
    "copper",  # no match
    "0%_",  # LIKE's wildcards, literally
    "o_f",  # "_" is no wildcard: "off" does not match
    "g%e",  # "%" is no wildcard: "Gold-Image" does not match
    '"hi"',  # FTS5's phrase quotes
    '"""',  # nothing but quotes
    "(b)",  # FTS5's grouping
    "x and",  # FTS5's AND, in any case
    "t*w",  # FTS5's prefix star
    "^fix:",  # FTS5's column filter and start anchor
    "near(",  # FTS5's NEAR
    "straße",  # Unicode, folded: ß is "ss"
    "r-strass",
]


def contains(term: str) -> list[str]:
    return sorted(name for name in NAMES if term.casefold() in name.casefold())


@pytest.fixture
def named(people):
    for name in NAMES:
        make_image(
            site=people["site"], project=people["alpha"], snapshot=True, name=name,
            created_by=people["alice"],
        )  # fmt: skip
        make_server(project=people["alpha"], name=name, created_by=people["alice"])
    # Another project's snapshot that matches: a member never sees it.
    make_image(site=people["site"], project=people["beta"], snapshot=True, name="beta-gold")


def listed(response) -> list[str]:
    assert response.status_code == 200, response.content.decode()[:500]
    return sorted(row.record.name for row in response.context["table"].page.object_list)


def launchable(response) -> list[str]:
    assert response.status_code == 200, response.content.decode()[:500]
    return sorted(row["image"].name for row in response.context["snapshots"])


@pytest.mark.parametrize("term", TERMS)
def test_anywhere_in_the_name_finds_what_contains_it_and_nothing_else(client, people, named, term):
    client.force_login(people["bob"])  # a member: alpha's rows only
    wanted = contains(term)
    assert listed(client.get(SNAPSHOTS, {"name": f"*{term}", "per_page": 100})) == wanted
    assert listed(client.get(SNAPSHOTS, {"q": f"*{term}", "per_page": 100})) == wanted
    assert listed(client.get(INSTANCES, {"q": f"*{term}", "per_page": 100})) == wanted
    launch = client.get(LAUNCH, {"project": people["alpha"].pk, "image_q": f"*{term}"})
    assert launchable(launch) == wanted


def test_the_cases_the_terms_cover_do_occur():
    """The table above tests what it says: a term meant to match does match."""
    assert contains("gold") == ["Gold-Image", "golden", "old-gold-2", "the GOLD"]
    assert contains("o_f") == contains("g%e") == contains("copper") == []
    assert contains("r-strass") == ["Über-Straße"]


def test_a_facility_admin_finds_every_projects_rows(client, people, named):
    client.force_login(people["admin"])
    found = listed(client.get(SNAPSHOTS, {"name": "*gold", "per_page": 100}))
    assert found == sorted([*contains("gold"), "beta-gold"])


@pytest.mark.parametrize(
    ("url", "param"),
    [(SNAPSHOTS, "name"), (SNAPSHOTS, "q"), (INSTANCES, "q"), (LAUNCH, "image_q")],
)
@pytest.mark.parametrize("term", ["*a", "*ab", "* ab ", "**ab"])
def test_anywhere_with_fewer_than_three_characters_is_a_400_that_says_why(
    client, people, named, url, param, term
):
    client.force_login(people["bob"])
    response = client.get(url, {param: term, "project": people["alpha"].pk})
    assert response.status_code == 400
    assert "at least 3 characters" in response.content.decode()


def test_a_star_alone_filters_nothing(client, people, named):
    client.force_login(people["bob"])
    every = sorted(NAMES)
    assert listed(client.get(SNAPSHOTS, {"name": "*", "per_page": 100})) == every
    assert listed(client.get(INSTANCES, {"q": "*", "per_page": 100})) == every


def test_the_search_box_says_how_long_anywhere_must_be(client, people, named):
    client.force_login(people["bob"])
    assert "*text (3+ characters): anywhere" in client.get(SNAPSHOTS).content.decode()


# --- The index follows the mirror's writers ------------------------------------

FIELDS = {
    "status": "active", "visibility": "private", "owner_openstack_id": "p-alpha",
    "is_snapshot": True, "tags": [], "properties": {},
}  # fmt: skip


def named_fields(name: str, **fields) -> dict:
    """A row as the sync's builders give it (images.services.image_fields): the
    case-folded name key beside the name."""
    return {**fields, "name": name, "name_key": name.casefold()}


def found(model, term: str) -> list[str]:
    return sorted(model.objects.filter(name_contains_q(model, term)).values_list("name", flat=True))


def indexed_ids(model, term: str) -> list[int]:
    """What the index itself holds for `term`. SQLite: the FTS table, asked directly
    (the search re-checks the name, so a stale entry would not show in `found`).
    PostgreSQL keeps its own index."""
    if connection.vendor != "sqlite":
        return list(model.objects.filter(name_contains_q(model, term)).values_list("pk", flat=True))
    table = fts_table(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT rowid FROM {table} WHERE {table} MATCH %s", [f'"{term}"'])
        return sorted(row[0] for row in cursor.fetchall())


def test_a_synced_rename_is_found_by_its_new_name_only(people):
    site = people["site"]
    mirror_upsert(Image, site=site, rows={"img-1": named_fields("Course-Gold", **FIELDS)})
    row = Image.objects.get(openstack_id="img-1")
    assert found(Image, "gold") == ["Course-Gold"]
    mirror_upsert(Image, site=site, rows={"img-1": named_fields("Course-Silver", **FIELDS)})
    assert found(Image, "gold") == []
    assert indexed_ids(Image, "gold") == []
    assert found(Image, "silver") == ["Course-Silver"]
    assert indexed_ids(Image, "silver") == [row.pk]


def test_a_server_renamed_by_a_sync_is_found_by_its_new_name_only(people):
    site = people["site"]
    fields = {"project_openstack_id": "p-alpha", "status": "ACTIVE", "addresses": {}}
    mirror_upsert(Server, site=site, rows={"vm-1": named_fields("lab-alpha", **fields)})
    mirror_upsert(Server, site=site, rows={"vm-1": named_fields("lab-omega", **fields)})
    assert found(Server, "alpha") == []
    assert indexed_ids(Server, "alpha") == []
    assert found(Server, "omega") == ["lab-omega"]


def test_a_deleted_row_disappears_from_the_search(client, people):
    site = people["site"]
    rows = {"a": named_fields("keep-gold", **FIELDS), "b": named_fields("gone-gold", **FIELDS)}
    mirror_upsert(Image, site=site, rows=rows, complete=True)
    mirror_upsert(Image, site=site, rows={"a": rows["a"]}, complete=True)  # "b" vanished
    client.force_login(people["admin"])
    assert listed(client.get(SNAPSHOTS, {"name": "*gold"})) == ["keep-gold"]
    gone = Image.objects.get(openstack_id="b")
    Image.objects.filter(pk=gone.pk).delete()  # a purge removes the row itself
    assert found(Image, "gone-gold") == []
    assert indexed_ids(Image, "gone-gold") == []


@pytest.mark.django_db(transaction=True)
def test_the_bulk_load_of_a_full_sync_keeps_the_index(monkeypatch):
    """A site sync's big batches go through the set-based bulk load, on a writer
    thread with its own connection (and, on SQLite, its own settings)."""
    from portal.mirror import upsert as mirror
    from portal.models import Site

    site = Site.objects.create(name="devcloud", display_name="Bielefeld")
    monkeypatch.setattr(mirror, "WRITE_CHUNK", 2)  # every batch is "big"
    with mirror.MirrorWriter(Image, site=site, complete=True) as writer:
        writer.write({f"a{n}": named_fields(f"Nightly-{n}", **FIELDS) for n in range(3)})
        assert writer._background is not None
        writer.finish()
    assert found(Image, "nightly-1") == ["Nightly-1"]
    with mirror.MirrorWriter(Image, site=site, complete=True) as writer:
        writer.write({f"a{n}": named_fields(f"Weekly-{n}", **FIELDS) for n in range(3)})
        writer.finish()
    assert found(Image, "nightly") == []
    assert indexed_ids(Image, "nightly") == []
    assert found(Image, "weekly-2") == ["Weekly-2"]


@pytest.mark.django_db
def test_every_named_mirror_table_has_its_trigram_index():
    """SQLite drops a table's triggers with the table, and Django's SQLite schema
    editor rebuilds a table for most column changes: a later migration of these
    tables must install the FTS triggers again (portal.name_search)."""
    tables = ("images_image", "instances_server")
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")
            names = {row[0] for row in cursor.fetchall()}
            wanted = {
                f"{fts_table(t)}{suffix}"
                for t in tables
                for suffix in ("", "_insert", "_delete", "_rename")
            }
        else:
            cursor.execute("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%gin_trgm_ops%'")
            names = {row[0] for row in cursor.fetchall()}
            wanted = {f"{t}_name_trgm" for t in tables}
    assert wanted <= names
