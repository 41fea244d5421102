"""PostgreSQL's GIN index queues new entries in a pending list that every "*text"
search reads through until a vacuum merges them: at the default limit (4 MB) a
sync of 100,000 snapshots left 250 pages there, 4 of a search's 5 ms. The name
search indexes keep it short (images 0013, instances 0014)."""

from __future__ import annotations

import pytest
from django.db import connection

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL indexes")


@pytest.mark.django_db
@pytest.mark.parametrize("table", ["images_image", "instances_server"])
def test_the_name_search_index_keeps_a_short_pending_list(table):
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [f"{table}_name_trgm"])
        (options,) = cursor.fetchone()
    assert "gin_pending_list_limit=256" in (options or []), options
