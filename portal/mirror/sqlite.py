"""SQLite's settings while a writer writes many rows, and the planner's statistics
(SQLite's and PostgreSQL's)."""

from __future__ import annotations

from typing import ClassVar

from django.apps import apps
from django.db import connection

from portal.mirror.rows import MirrorRow


class SqliteBulkSettings:
    """SQLite settings of the connection while a writer writes many rows, put
    back when it is done.

    The page cache: its default (2 MB) is far smaller than the twenty indexes
    of 100,000 images a cold sync fills, and the pages it kept spilling made
    the write twice as slow. Only memory. (Commits skip their fsync on every
    connection: synchronous=NORMAL, see settings.)
    """

    SETTINGS: ClassVar[dict[str, int]] = {"cache_size": -64 * 1024}

    def __init__(self, connection) -> None:
        self.connection = connection
        self.before: dict[str, int] | None = None

    def apply(self) -> None:
        if self.connection.vendor != "sqlite" or self.before is not None:
            return
        self.before = {}
        with self.connection.cursor() as cursor:
            for name, value in self.SETTINGS.items():
                cursor.execute(f"PRAGMA {name}")
                (self.before[name],) = cursor.fetchone()
                cursor.execute(f"PRAGMA {name} = {int(value)}")

    def restore(self) -> None:
        if self.before is None:
            return
        with self.connection.cursor() as cursor:
            for name, value in self.before.items():
                cursor.execute(f"PRAGMA {name} = {int(value)}")
        self.before = None


def planner_statistics_refresh() -> None:
    """Let the database's planner know the mirror's shape (after a full sync).

    Without statistics SQLite prefers any index with an equality, e.g. the one on
    `deleted_at` (IS NULL matches nearly every row) over the partial indexes the
    lists are written for, and a page at 100,000 snapshots sorts them all. A full
    ANALYZE costs ~0.2 s at 100,000 images (a sampled one misjudges that index);
    full syncs run every 5 minutes.

    PostgreSQL's autovacuum keeps its statistics current, but a table that just
    filled (a new portal's first sync, a site added) waits for its next round,
    a minute or more on a busy server. Meanwhile the planner guessed: during the
    1,000-job bench on a freshly synced mirror it found a batch's ten servers
    through the (site, OpenStack id) index by the site alone, reading all of the
    site's rows (1.3 ms a read instead of 0.05). So a mirror table without
    statistics is analyzed at once; the rest stays autovacuum's.
    """
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    elif connection.vendor == "postgresql":
        tables_without_statistics_analyze(_mirror_tables())


def _mirror_tables() -> list[str]:
    return sorted(
        {
            model._meta.db_table
            for model in apps.get_models()
            if issubclass(model, MirrorRow) and not model._meta.proxy
        }
    )


def tables_without_statistics_analyze(tables: list[str]) -> list[str]:
    """PostgreSQL: ANALYZE those of `tables` (in the current schema) the planner has
    no statistics for; returns them. An empty table gets none from ANALYZE either,
    and costs next to nothing to look at again. SKIP_LOCKED: a table autovacuum is
    working on gets its statistics from it, and the sync does not wait."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM unnest(%s::text[]) AS name WHERE NOT EXISTS ("
            "SELECT 1 FROM pg_stats s WHERE s.schemaname = current_schema() "
            "AND s.tablename = name)",
            [tables],
        )
        missing = [name for (name,) in cursor.fetchall()]
        for name in missing:
            cursor.execute(f"ANALYZE (SKIP_LOCKED) {connection.ops.quote_name(name)}")
    return missing
