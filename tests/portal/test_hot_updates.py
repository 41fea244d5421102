"""On PostgreSQL, a job's claim and a server's task written by a job leave the
tables' indexes alone (a "HOT" update), also on pages the rows filled when they
were written: the tables keep room on each page (portal 0021, instances 0015).
At 1,000 jobs at once every index entry written is database CPU taken from the
workers on the same cores."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.utils import timezone

from instances.services import server_task_began
from portal.jobs import jobs_claim
from portal.models import Job
from tests.factories import make_server

pytestmark = [
    # Committed one by one, as the workers write: a page's old row versions are
    # pruned once no transaction can see them, which room on the page makes HOT.
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's HOT updates"),
]


def _committed(table: str, write) -> tuple[int, int]:
    """Rows `write()` updated in `table` in a transaction of its own, and how many
    of them were HOT (the backend's counts not yet reported, before and after)."""
    with transaction.atomic():
        before = _updates(table)
        write()
        after = _updates(table)
    return after[0] - before[0], after[1] - before[1]


def _updates(table: str) -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = %s",
            [table],
        )
        row = cursor.fetchone()
    return (row[0], row[1]) if row else (0, 0)


def test_claims_of_jobs_on_full_pages_touch_no_index(people):
    jobs = [
        Job.objects.create(
            kind="server.stop", status=Job.Status.RUNNING, actor=people["alice"],
            project=people["alpha"], site=people["alpha"].site, target_server_id=f"s-{n}",
            wake=f"token-{n}", due_at=timezone.now(), steps=[{"name": "x" * 200}] * 3,
        )
        for n in range(120)
    ]  # fmt: skip
    counts = [
        _committed(
            "portal_job", lambda n=n: jobs_claim([(job.pk, job.wake) for job in jobs[n : n + 1]])
        )
        for n in range(len(jobs))
    ]
    assert sum(updated for updated, _ in counts) == len(jobs)
    assert sum(hot for _, hot in counts) == len(jobs)


def test_tasks_jobs_write_on_servers_on_full_pages_touch_no_index(people):
    servers = [make_server(project=people["alpha"]) for _ in range(80)]
    counts = [
        _committed(
            "instances_server",
            lambda server=server: server_task_began(
                server.site, server, task_state="powering-off", answered_at=timezone.now()
            ),
        )
        for server in servers
    ]
    assert sum(updated for updated, _ in counts) == len(servers)
    assert sum(hot for _, hot in counts) == len(servers)
