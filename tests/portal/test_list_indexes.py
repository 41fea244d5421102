"""The list pages' queries are answered by indexes (EXPLAIN), so they cost the
same at 100,000 snapshots as at 100 (bench/pages_bench.py times them)."""

from __future__ import annotations

import pytest
from django.db import connection

from images.models import Image
from instances.models import Server
from instances.selectors import image_names_for
from portal.filters import id_prefix_q, name_q
from portal.mirror.sqlite import planner_statistics_refresh
from snapshots.selectors import snapshot_list
from tests.factories import make_image, make_server
from tests.plans import sqlite_plan

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite plans")


@pytest.fixture
def mirror(people):
    server = make_server(project=people["alpha"])
    for _ in range(30):
        make_server(project=people["beta"])
    for n in range(30):
        make_image(site=people["site"], project=people["alpha"], snapshot=True, name=f"s-{n}")
        make_image(site=people["site"], project=people["beta"], snapshot=True, name=f"t-{n}")
    planner_statistics_refresh()
    return server


def test_snapshot_list_walks_the_partial_index_newest_first(people, mirror):
    rows = snapshot_list(user=people["admin"]).order_by("-created_at")[:25]
    assert "image_snap_created" in sqlite_plan(rows)
    assert "TEMP B-TREE" not in sqlite_plan(rows)


def test_a_project_snapshot_list_walks_its_project_index(people, mirror):
    rows = snapshot_list(user=people["alice"], project=people["alpha"]).order_by("-created_at")
    assert "image_snap_project" in sqlite_plan(rows[:25])


def test_name_and_id_filters_are_prefix_searches_on_an_index(people, mirror):
    by_name = Image.objects.filter(name_q("S-1", model=Image))
    assert "name_key" in sqlite_plan(by_name)
    assert "SCAN images_image" not in sqlite_plan(by_name)
    by_id = Image.objects.filter(id_prefix_q("ABCDEF"))
    assert "image_openstack_id" in sqlite_plan(by_id)
    assert set(Image.objects.filter(name_q("S-1", model=Image)).values_list("name", flat=True)) == {
        "s-1",
        *(f"s-{n}" for n in range(10, 20)),
    }
    # "*": anywhere in the name
    assert Image.objects.filter(name_q("*-29", model=Image)).count() == 2


def test_image_names_look_ids_up_in_the_id_index(people, mirror):
    rows = Image.objects.filter(openstack_id__in=["a", "b"]).order_by()
    assert "image_openstack_id" in sqlite_plan(rows)
    assert image_names_for([mirror]) == {}


def test_the_overview_walks_the_live_servers_index(people, mirror):
    rows = Server.objects.filter(deleted_at__isnull=True).order_by("-created_at", "name")[:25]
    # Either created_at index: rows come in date order, never all sorted first.
    assert "created" in sqlite_plan(rows)
    assert "TEMP B-TREE FOR ORDER BY" not in sqlite_plan(rows)


def test_the_quick_search_looks_names_and_ids_up_in_their_indexes(people, mirror):
    """`?q=` on snapshots: name prefix, id prefix and project name. The projects
    are looked up first; the snapshot query then ORs two index ranges (and the
    matching projects' ids, if any) instead of walking a whole site's snapshots."""
    from django.http import QueryDict

    from snapshots.filters import SnapshotFilterSet

    def search(user, value):
        snapshots = snapshot_list(user=user)
        rows = SnapshotFilterSet(QueryDict(f"q={value}"), queryset=snapshots).qs
        return rows.order_by("-created_at")[:25]

    from django.test.utils import CaptureQueriesContext

    for user in (people["admin"], people["alice"]):
        with CaptureQueriesContext(connection) as captured:
            rows = search(user, "s-1")  # the matching ids are read here, first
        (first,) = [q["sql"] for q in captured.captured_queries if "images_image" in q["sql"]]
        found = sqlite_plan(first)
        assert "MULTI-INDEX OR" in found, found
        assert "openstack_id>?" in found
        assert "name_key>?" in found
        assert "SCAN images_image" not in found
        # ...then the page asks for those rows by id.
        found = sqlite_plan(rows)
        assert "INTEGER PRIMARY KEY" in found, found
        assert "SCAN images_image" not in found
    assert {s.name for s in search(people["alice"], "S-2")} == {"s-2", "s-20", "s-21", "s-22",
        "s-23", "s-24", "s-25", "s-26", "s-27", "s-28", "s-29"}  # fmt: skip
    # A project's name still finds its snapshots (alpha's, not beta's).
    by_project = search(people["admin"], people["alpha"].name)
    assert {s.project_id for s in by_project} == {people["alpha"].pk}


def test_a_status_filter_walks_the_status_index_in_the_overviews_order(people, mirror):
    from django.http import QueryDict

    from instances.selectors import servers_shown
    from portal.access import projects_visible_to

    for user in (people["admin"], people["alice"]):
        _, rows = servers_shown(
            user=user, data=QueryDict("status=SHUTOFF&filtered=1"),
            projects=projects_visible_to(user),
        )  # fmt: skip
        found = sqlite_plan(rows.order_by("-created_at", "name")[:10])
        # The status index, or (a member's one project) that project's index.
        assert "server_live_status" in found or "server_live_project" in found, found
        assert "TEMP B-TREE" not in found, found


def table_orders(table_class, rows, **kwargs):
    """(sort, the table's ordered queryset) for every `?sort=` its headers offer,
    both directions: what the page reads, before its LIMIT."""
    names = [c.name for c in table_class([], **kwargs).columns if c.orderable]
    for sort in [s for name in names for s in (name, f"-{name}")]:
        table = table_class(rows, **kwargs)
        table.order_by = sort
        yield sort, table.data.data


def test_every_sort_the_snapshot_table_offers_is_walked_from_an_index(people, mirror):
    """A sort read in index order stops after a page; one that is not sorts every
    snapshot the user may see on each view (300 ms at 100,000)."""
    from snapshots.tables import SnapshotTable

    for user in (people["admin"], people["alice"]):
        for sort, rows in table_orders(SnapshotTable, snapshot_list(user=user)):
            found = sqlite_plan(rows[:25])
            assert "TEMP B-TREE" not in found, (user, sort, found)


def test_every_sort_the_overview_offers_is_walked_from_an_index(people, mirror):
    from django.http import QueryDict

    from instances.selectors import servers_shown
    from instances.tables import ServerTable
    from portal.access import projects_visible_to

    for user in (people["admin"], people["alice"]):
        _, shown = servers_shown(user=user, data=QueryDict(""), projects=projects_visible_to(user))
        for sort, rows in table_orders(ServerTable, shown):
            found = sqlite_plan(rows[:25])
            assert "TEMP B-TREE" not in found, (user, sort, found)
