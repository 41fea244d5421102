"""Searching anywhere in a mirror table's name ("*text"), answered by a trigram index.

Both databases index the case-folded name (`name_key`) by its three-character
pieces, so "contains this text" reads the few rows that hold the text's pieces
instead of testing every row:

- PostgreSQL: a GIN index with pg_trgm's `gin_trgm_ops` on `name_key`. It answers
  the same `name_key LIKE '%text%'` the ORM writes, so the query is unchanged.
- SQLite: an FTS5 table `<table>_name_fts` with the trigram tokenizer, holding no
  text of its own (external content: it reads `name_key` from the table) and
  kept in step by triggers on insert, delete and a change of `name_key`. Every
  writer (the ORM, the mirror's set-based upsert, a hand-written UPDATE) fires
  them; nothing in Python has to remember the index.

Trigrams need a text of at least MIN_CONTAINS characters (a shorter one has no
piece to look up): portal.filters refuses a shorter "*te" with a message.

SQLite drops a table's triggers with the table, and Django's SQLite schema editor
rebuilds a table (create a copy, drop the old one, rename) for most column
changes: a migration that alters `images_image` or `instances_server` on SQLite
must run `sqlite_name_search_sql(table)` again (without the backfill, the rows
keep their ids). tests/test_name_search.py fails when the triggers are missing.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Q
from django.db.models.expressions import RawSQL

MIN_CONTAINS = 3


def fts_table(db_table: str) -> str:
    return f"{db_table}_name_fts"


def sqlite_name_search_sql(db_table: str, *, backfill: bool = True) -> list[str]:
    """The FTS5 table and the triggers that keep it in step with `db_table`."""
    fts = fts_table(db_table)
    index = f"INSERT INTO {fts}(rowid, name_key) VALUES (new.id, new.name_key);"
    # An external-content FTS5 table forgets a row by being told the old text.
    forget = f"INSERT INTO {fts}({fts}, rowid, name_key) VALUES ('delete', old.id, old.name_key);"
    sql = [
        # case_sensitive 1: name_key is case-folded already, so the match is exact
        # (folding once more could only differ from Python's casefold).
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5(name_key, content='{db_table}', "
        f"content_rowid='id', tokenize='trigram case_sensitive 1')",
        f"CREATE TRIGGER IF NOT EXISTS {fts}_insert AFTER INSERT ON {db_table} BEGIN {index} END",
        f"CREATE TRIGGER IF NOT EXISTS {fts}_delete AFTER DELETE ON {db_table} BEGIN {forget} END",
        # Only a changed name costs an index write: a warm sync rewrites rows
        # whose status changed and leaves their names alone.
        f"CREATE TRIGGER IF NOT EXISTS {fts}_rename AFTER UPDATE OF name_key ON {db_table} "
        f"WHEN old.name_key IS NOT new.name_key BEGIN {forget} {index} END",
    ]
    if backfill:
        sql.append(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")
    return sql


def postgresql_name_search_sql(db_table: str) -> list[str]:
    return [
        # Trusted since PostgreSQL 13: the database's owner may create it.
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
        f"CREATE INDEX IF NOT EXISTS {db_table}_name_trgm ON {db_table} "
        f"USING gin (name_key gin_trgm_ops)",
    ]


def name_search_install(schema_editor, db_table: str) -> None:
    """For a migration's RunPython: the trigram index of `db_table` on this engine."""
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        statements = sqlite_name_search_sql(db_table)
    elif vendor == "postgresql":
        statements = postgresql_name_search_sql(db_table)
    else:
        statements = []
    for statement in statements:
        schema_editor.execute(statement, params=None)


def name_search_uninstall(schema_editor, db_table: str) -> None:
    vendor = schema_editor.connection.vendor
    fts = fts_table(db_table)
    if vendor == "sqlite":
        for suffix in ("insert", "delete", "rename"):
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {fts}_{suffix}", params=None)
        schema_editor.execute(f"DROP TABLE IF EXISTS {fts}", params=None)
    elif vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {db_table}_name_trgm", params=None)


# PostgreSQL: a GIN index queues new entries in a pending list that every "*text"
# search reads through, until a vacuum merges it. At its default limit (4 MB, 250
# pages after a sync of 100,000 rows) that was 4 of a search's 5 ms at 100,000
# snapshots; at 256 kB it is a few pages, and a sync's writes cost ~12 % more in the
# index (measured: 1.49 s against 1.33 s for 100,000 rows). Set by images 0013 and
# instances 0014.
PENDING_LIST_LIMIT_KB = 256


def name_search_pending_list(schema_editor, db_table: str, *, bounded: bool) -> None:
    """For a migration's RunPython: bound the pending list of `db_table`'s trigram
    index (PENDING_LIST_LIMIT_KB), or reset it to PostgreSQL's default."""
    if schema_editor.connection.vendor != "postgresql":
        return
    index = f"{db_table}_name_trgm"
    if bounded:
        statement = f"ALTER INDEX {index} SET (gin_pending_list_limit = {PENDING_LIST_LIMIT_KB})"
    else:
        statement = f"ALTER INDEX {index} RESET (gin_pending_list_limit)"
    schema_editor.execute(statement, params=None)


def name_contains_q(model, text: str) -> Q:
    """Rows of `model` whose case-folded name contains `text` (case-folded here),
    exactly as `name_key__contains` says, found by the trigram index. `text` has
    at least MIN_CONTAINS characters (shorter: no trigram to look up)."""
    key = text.casefold()
    contains = Q(name_key__contains=key)  # LIKE, with % and _ escaped by the ORM
    if connection.vendor != "sqlite":
        return contains  # the GIN trigram index answers the LIKE itself
    fts = fts_table(model._meta.db_table)
    # One FTS5 phrase: inside double quotes every character is literal but the
    # quote itself, written twice. The LIKE stays as the exact check.
    phrase = '"' + key.replace('"', '""') + '"'
    found = RawSQL(f"SELECT rowid FROM {fts} WHERE {fts} MATCH %s", (phrase,))
    return Q(pk__in=found) & contains
