"""Query plans as one line of text, for tests that check a list is answered by an
index (the pages bench times the same queries at 100,000 rows)."""

from __future__ import annotations

from django.db import connection
from django.db.models import QuerySet


def _sql_and_params(query: QuerySet | str, params) -> tuple[str, tuple]:
    if isinstance(query, QuerySet):
        return query.query.sql_with_params()
    return query, tuple(params)


def sqlite_plan(query: QuerySet | str, params=()) -> str:
    """SQLite's EXPLAIN QUERY PLAN of a queryset or of SQL (as captured, its
    parameters filled in, or with `params`): the plan's steps joined by " | "."""
    sql, params = _sql_and_params(query, params)
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return " | ".join(row[-1] for row in cursor.fetchall())


def postgres_plan(query: QuerySet | str, params=()) -> str:
    """PostgreSQL's EXPLAIN of a queryset or of SQL, its lines joined by " | ",
    with sequential scans and sorts priced out: a test's tables are tiny, so this
    asks whether an index that yields the rows in order exists at all. Call it
    inside a transaction (a test's): the settings are LOCAL to it."""
    sql, params = _sql_and_params(query, params)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return " | ".join(row[0] for row in cursor.fetchall())
