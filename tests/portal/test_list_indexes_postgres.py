"""PostgreSQL answers the prefix searches from an index (EXPLAIN): an id pasted
in part (`?openstack_id=`, `?q=`) and a name's start. With a plain index on the
id, `LIKE 'abc%'` cannot use it under a non-C collation, and the quick search
read all 100,000 snapshots. (SQLite's plans: test_list_indexes.py.)"""

from __future__ import annotations

import pytest
from django.db import connection

from images.models import Image
from instances.models import Server
from portal.filters import id_prefix_q, name_q

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL plans")


def plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: is an index usable?
        cursor.execute(f"EXPLAIN {sql}", params)
        return " | ".join(row[0] for row in cursor.fetchall())


@pytest.mark.django_db
def test_id_prefixes_and_name_starts_use_an_index():
    by_id = plan(Image.objects.filter(id_prefix_q("ABCDEF")))
    assert "image_openstack_id" in by_id
    assert "Seq Scan" not in by_id
    either = plan(Image.objects.filter(id_prefix_q("abc") | name_q("abc", model=Image)))
    assert "Seq Scan" not in either, either
    # Unordered: in an empty table any index that yields the list's order costs the
    # same as the selective one, so the planner's pick among them says nothing.
    servers = plan(Server.objects.filter(id_prefix_q("abc")).order_by())
    assert "server_openstack_id" in servers, servers
    assert "Seq Scan" not in servers, servers


def sorted_plan(queryset) -> str:
    """The plan with sorting made as costly as it gets: a Sort node remains only
    where no index yields the order."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
    return plan(queryset)


def table_orders(table_class, rows, **kwargs):
    names = [c.name for c in table_class([], **kwargs).columns if c.orderable]
    for sort in [s for name in names for s in (name, f"-{name}")]:
        table = table_class(rows, **kwargs)
        table.order_by = sort
        yield sort, table.data.data


def test_every_sort_the_tables_offer_is_walked_from_an_index(people):
    """A sort read in index order stops after a page; one that is not sorts every
    row the user may see on each view."""
    from django.http import QueryDict

    from instances.selectors import servers_shown
    from instances.tables import ServerTable
    from portal.access import projects_visible_to
    from snapshots.selectors import snapshot_list
    from snapshots.tables import SnapshotTable

    for user in (people["admin"], people["alice"]):
        for sort, rows in table_orders(SnapshotTable, snapshot_list(user=user)):
            found = sorted_plan(rows[:25])
            assert "Sort" not in found, (user, sort, found)
        _, shown = servers_shown(user=user, data=QueryDict(""), projects=projects_visible_to(user))
        for sort, rows in table_orders(ServerTable, shown):
            found = sorted_plan(rows[:25])
            assert "Sort" not in found, (user, sort, found)
