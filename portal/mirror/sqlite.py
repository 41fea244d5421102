"""SQLite's settings while a writer writes many rows, and the planner's statistics."""

from __future__ import annotations

from typing import ClassVar


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
    full syncs run every 5 minutes. PostgreSQL's autovacuum keeps its own statistics.
    """
    from django.db import connection

    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
