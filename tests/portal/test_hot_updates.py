"""On PostgreSQL, the job table and the server mirror keep room on each page
(portal 0021, instances 0015), so that a job's claim, its checkpoint, its release,
its wake-ups (portal 0022) and the task an action began, which change no indexed
column, are written as "HOT" updates that touch none of the tables' indexes. At
1,000 jobs at once every index entry written is database CPU taken from the workers
on the same cores.

Whether an update is HOT also depends on the server pruning old row versions, which
any open snapshot in the database (an autovacuum's analyze) holds up: so what is
tested is the room each table keeps, and that the writes change no indexed column."""

from __future__ import annotations

import pytest
from django.db import connection

from instances.models import Server
from portal.models import Job
from portal.prepared import PAGE_FILL_PERCENT

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's HOT updates"),
]


def _fillfactor(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [table])
        (options,) = cursor.fetchone()
    found = [int(o.split("=")[1]) for o in options or [] if o.startswith("fillfactor=")]
    return found[0] if found else 100


def _indexed_columns(table: str) -> set[str]:
    """Every column an index of `table` covers, in its key or its condition."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
            "WHERE c.relname = %s AND (a.attnum = ANY(i.indkey) "
            "OR pg_get_expr(i.indpred, i.indrelid) LIKE '%%' || a.attname || '%%')",
            [table],
        )
        return {name for (name,) in cursor.fetchall()}


@pytest.mark.parametrize("model", [Job, Server])
def test_the_tables_jobs_write_most_keep_room_on_each_page(model):
    assert _fillfactor(model._meta.db_table) == PAGE_FILL_PERCENT < 100


def test_a_claim_a_checkpoint_a_release_and_a_wake_up_change_no_indexed_column_of_a_job():
    """What every run writes. Only a job's start and end (its status) and the image
    it made (once) change an indexed column."""
    indexed = _indexed_columns(Job._meta.db_table)
    assert {"status", "target_image_id", "kind"} <= indexed
    claim = {"lease_until", "heartbeat_at"}
    checkpoint = {"state", "steps", "step_index", "progress", "result"}
    release_and_wake = {"wake", "due_at", "waits_for", "parked_on", "polls", "error"}
    for name in claim | checkpoint | release_and_wake:
        assert Job._meta.get_field(name).column not in indexed, name


def test_the_task_an_action_began_changes_no_indexed_column_of_a_server():
    indexed = _indexed_columns(Server._meta.db_table)
    assert {"status", "deleted_at", "name"} <= indexed
    for name in ("task_state", "fingerprint", "synced_at"):
        assert Server._meta.get_field(name).column not in indexed
