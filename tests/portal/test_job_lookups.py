"""The job table holds every job the portal ever ran. The engine's own lookups (the
watcher round's compare of every parked job, a wake-up and the jobs it woke, the
recovery sweep, a site answering again) ask among the unfinished jobs, by an index,
on both databases: none reads the table. And a release or a wake-up changes no
indexed column, so that PostgreSQL can write it without touching the indexes
(tests/portal/test_hot_updates.py)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from instances.models import Server
from instances.services import server_wait_state
from portal.jobs import jobs_recover_stuck, parked_wake, sending
from portal.jobs.outages import site_answers
from portal.models import Job
from tests.factories import make_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(people):
    """A table the size of a portal's history, with its statistics: a plan for a few
    rows in a tiny table says nothing."""
    old = [
        Job(kind="server.stop", status=Job.Status.SUCCEEDED, actor=people["alice"],
            project=people["alpha"], site=people["alpha"].site, target_server_id=f"old-{n}",
            wake=f"w{n}", due_at=timezone.now() - timedelta(days=1))
        for n in range(3000)
    ]  # fmt: skip
    Job.objects.bulk_create(old, batch_size=500)


@pytest.fixture
def sent(monkeypatch):
    woken = []
    monkeypatch.setattr(sending, "send_now", lambda jobs: woken.extend(job for _, job, _ in jobs))
    return woken


def _analyzed():
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE portal_job" if connection.vendor == "postgresql" else "ANALYZE")


def _reads_of_the_job_table(captured) -> list[tuple[str, str]]:
    """Each captured statement on the job table, with its plan."""
    found = []
    with connection.cursor() as cursor:
        for query in captured:
            sql = query["sql"]
            if '"portal_job"' not in sql or sql.startswith(("SAVEPOINT", "RELEASE")):
                continue
            if connection.vendor == "sqlite":
                cursor.execute("EXPLAIN QUERY PLAN " + sql)
                plan = " | ".join(str(row[-1]) for row in cursor.fetchall())
            else:
                cursor.execute("EXPLAIN " + sql)
                plan = " | ".join(row[0] for row in cursor.fetchall())
            found.append((sql, plan))
    return found


def _reads_among_every_job(plan: str) -> bool:
    """Whether the plan reads the job table whole, or through an index of every job
    (SQLite walks one for a read's order, or for a range every old job is in): only
    the primary key, the unfinished jobs' indexes (a partial one, a search of the
    status index) and an object's own (target_server_id, target_image_id) find a
    few rows among all."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name, sql LIKE '%WHERE%' FROM sqlite_master "
                "WHERE type = 'index' AND tbl_name = 'portal_job'"
            )
        else:
            cursor.execute(
                "SELECT indexname, indexdef LIKE '%WHERE%' OR indexname = 'portal_job_pkey' "
                "FROM pg_indexes WHERE tablename = 'portal_job'"
            )
        indexes = dict(cursor.fetchall())
    # A search of the status index for the unfinished statuses finds only those.
    few = {name for name, partial in indexes.items() if partial or "target_" in name}
    few |= {name for name in indexes if "status" in name}
    used = {name for name in indexes if re.search(rf"\b{re.escape(name)}\b", plan)}
    if connection.vendor == "sqlite":
        scans = [step for step in plan.split("|") if "SCAN portal_job" in step]
        partial = {name for name, is_partial in indexes.items() if is_partial}
        whole = any(not any(f"INDEX {name}" in step for name in partial) for step in scans)
        by_key = "INTEGER PRIMARY KEY" in plan
    else:
        whole, by_key = "Seq Scan on portal_job" in plan, False
    return whole or bool(used - few) or not (used or by_key)


def _parked_job(people, **fields) -> Job:
    server = make_server(project=people["alpha"])
    job = Job.objects.create(
        kind="server.stop", status=Job.Status.RUNNING, actor=people["alice"],
        project=people["alpha"], site=server.site, target_server_id=server.openstack_id,
        wake="old", due_at=timezone.now() + timedelta(seconds=30), **fields,
    )  # fmt: skip
    return job


def test_a_round_wakes_parked_jobs_without_reading_every_job(people, history, sent):
    jobs = [
        _parked_job(people, waits_for="server", parked_on=server_wait_state("ACTIVE", "", None))
        for _ in range(3)
    ]
    for job in jobs:  # the servers stopped since the jobs parked
        Server.objects.filter(openstack_id=job.target_server_id).update(status="SHUTOFF")
    _analyzed()
    with CaptureQueriesContext(connection) as captured:
        woken = parked_wake(people["alpha"].site, "server")
    assert sorted(woken) == sorted(sent) == sorted(job.pk for job in jobs)
    statements = _reads_of_the_job_table(captured)
    assert len(statements) == 3  # the parked jobs, the wake-up, the woken read back
    for sql, plan in statements:
        assert not _reads_among_every_job(plan), (sql, plan)


def test_the_sweep_finds_overdue_jobs_without_reading_every_job(people, history, sent):
    due = _parked_job(people, waits_for="server", parked_on="ACTIVE")
    Job.objects.filter(pk=due.pk).update(due_at=timezone.now() - timedelta(seconds=1))
    _analyzed()
    with CaptureQueriesContext(connection) as captured:
        jobs_recover_stuck()
    assert sent == [due.pk]
    statements = _reads_of_the_job_table(captured)
    assert statements
    for sql, plan in statements:
        assert not _reads_among_every_job(plan), (sql, plan)


def test_a_site_answering_again_wakes_its_waiting_jobs_without_reading_every_job(
    people, history, sent
):
    site = people["alpha"].site
    waiting = _parked_job(people, waits_for="site")
    site.silent_since = timezone.now()
    site.save()
    _analyzed()
    with CaptureQueriesContext(connection) as captured:
        woken = site_answers(site.pk)
    assert woken == sent == [waiting.pk]
    statements = _reads_of_the_job_table(captured)
    assert len(statements) == 3  # the waiting jobs, the wake-up, the woken read back
    for sql, plan in statements:
        assert not _reads_among_every_job(plan), (sql, plan)
