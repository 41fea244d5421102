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
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')


def engine_name(url: str) -> str:
    return "PostgreSQL" if url.startswith(("postgres://", "postgresql://")) else "SQLite"
