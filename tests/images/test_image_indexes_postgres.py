"""Every index on the image mirror costs a cold sync a write for each of its
100,000 rows, so PostgreSQL keeps one index per looked-up column, not the pair
(plain and `_like`) that `db_index=True` gives a CharField, and each lookup the
portal makes of those columns is still answered by it (EXPLAIN)."""

from __future__ import annotations

import pytest
from django.db import connection

from images.models import Image
from portal.filters import name_q
from tests.plans import postgres_plan

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL indexes"),
    pytest.mark.django_db,
]


def test_no_column_of_the_image_mirror_has_two_indexes_of_itself_alone():
    # (The name's trigram index, a GIN one, answers what no B-tree can: `*text`.)
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT a.attname, array_agg(c.relname ORDER BY c.relname)
               FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid
               JOIN pg_am m ON m.oid = c.relam AND m.amname = 'btree'
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
               WHERE i.indrelid = 'images_image'::regclass AND i.indnatts = 1
                 AND i.indpred IS NULL
               GROUP BY a.attname HAVING count(*) > 1"""
        )
        twins = cursor.fetchall()
    assert twins == []


def test_the_lookups_of_those_columns_still_use_an_index():
    lookups = [
        Image.objects.filter(name_q("Snap-Al", model=Image)),  # a name's start
        Image.objects.filter(name_key__in=["snap-alpha-1", "snap-alpha-2"]),  # the name check
        Image.objects.filter(source_server_openstack_id="s-1"),
        Image.objects.filter(copied_from_image_id="i-1"),
    ]
    for rows in lookups:
        found = postgres_plan(rows.order_by())
        assert "Index" in found, found
        assert "Seq Scan" not in found, found
