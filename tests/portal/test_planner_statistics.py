"""After a full sync, PostgreSQL's planner has statistics for every mirror table at
once (portal.mirror.sqlite.planner_statistics_refresh), not only after autovacuum's
next round: without them it read all of a site's servers to find a batch's ten."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.mirror.sqlite import (
    _mirror_tables,
    planner_statistics_refresh,
    tables_without_statistics_analyze,
)
from tests.factories import make_server

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's statistics"),
]


def _statistics_of(table: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname, most_common_vals::text FROM pg_stats "
            "WHERE schemaname = current_schema() AND tablename = %s",
            [table],
        )
        return dict(cursor.fetchall())


def test_a_table_without_statistics_is_analyzed_once():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE statistics_probe (id integer, status text)")
        cursor.execute(
            "INSERT INTO statistics_probe SELECT i, CASE WHEN mod(i, 10) = 0 THEN 'ERROR' "
            "ELSE 'ACTIVE' END FROM generate_series(1, 500) AS i"
        )
    assert _statistics_of("statistics_probe") == {}

    assert tables_without_statistics_analyze(["statistics_probe"]) == ["statistics_probe"]
    assert "ACTIVE" in _statistics_of("statistics_probe")["status"]

    # Known now: the next full sync leaves it to autovacuum, and sends no ANALYZE.
    with CaptureQueriesContext(connection) as queries:
        assert tables_without_statistics_analyze(["statistics_probe"]) == []
    assert not any("ANALYZE" in query["sql"] for query in queries.captured_queries)


def test_the_mirror_tables_are_the_ones_looked_at():
    tables = _mirror_tables()
    assert {"instances_server", "images_image"} <= set(tables)
    assert "portal_job" not in tables  # autovacuum's: it grows steadily, never in one go


def test_after_a_full_sync_the_planner_knows_the_servers(people):
    for n in range(3):
        make_server(project=people["alpha"], name=f"known-{n}")
    planner_statistics_refresh()
    assert "name" in _statistics_of("instances_server")
