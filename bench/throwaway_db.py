"""A database a benchmark may fill and drop: a SQLite file in its work folder, or,
when DATABASE_URL names a PostgreSQL database, a fresh database next to it
(`<name>_<suffix>`), dropped afterwards. The benchmarks report both engines."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def throwaway_database(work: Path, suffix: str) -> Iterator[str]:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{work / f'{suffix}.sqlite3'}"
        return
    import psycopg

    base, _, name = url.rpartition("/")
    target = f"{name}_{suffix}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{target}"')
        conn.execute(f'CREATE DATABASE "{target}"')
    try:
        yield f"{base}/{target}"
    finally:
        _drop(url, target)


def _drop(url: str, target: str) -> None:
    """Drop `target`, waiting out an autovacuum worker on it: FORCE may not end a
    superuser's process, and a bench that has just written 100,000 rows often
    finds one there."""
    import time

    import psycopg

    for attempt in range(30):
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
            return
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectInUse):
            if attempt == 29:
                raise
            time.sleep(1)


def engine_name(url: str) -> str:
    return "PostgreSQL" if url.startswith(("postgres://", "postgresql://")) else "SQLite"
