"""The job list and the table rows' "is a job running on it?" read a few jobs from
an index, however many jobs the portal ran before (bench/pages_bench.py seeds one
per snapshot: 100,000 at its big size)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from images.models import Image
from portal.mirror.sqlite import planner_statistics_refresh
from portal.models import Job
from portal.selectors import jobs_newest
from tests.factories import make_image, make_server
from tests.plans import postgres_plan, sqlite_plan

sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite plans")


def job_queries(call) -> list[str]:
    """The SQL of the job queries `call()` makes, parameters filled in."""
    with CaptureQueriesContext(connection) as captured:
        call()
    return [q["sql"] for q in captured.captured_queries if '"portal_job"' in q["sql"]]


@pytest.fixture
def history(people):
    """What a facility has behind it: many finished jobs (alpha's, beta's, and bulk
    actions without a project), two running ones, and what they worked on."""
    now = timezone.now()
    server = make_server(project=people["alpha"])
    snapshot = make_image(site=people["site"], project=people["alpha"], snapshot=True)
    rows = []
    for i in range(300):
        project = people["alpha"] if i % 3 == 0 else people["beta"]
        rows.append(Job(
            kind="snapshot.delete" if i % 10 == 9 else "snapshot.create",
            status="failed" if i % 7 == 0 else "succeeded", site=people["site"],
            project=None if i % 10 == 9 else project,
            actor=people["alice"] if i % 2 else people["carol"],
            target_server_id=f"server-{i}", target_image_id=f"image-{i}",
            # Pairs of jobs started in the same second: the id orders them.
            created_at=now - timedelta(seconds=i // 2),
        ))  # fmt: skip
    Job.objects.bulk_create(rows)
    Job.objects.create(
        kind="snapshot.create", status="running", site=people["site"], project=people["alpha"],
        actor=people["alice"], target_server_id=server.openstack_id,
        target_image_id=snapshot.openstack_id,
    )  # fmt: skip
    Job.objects.create(
        kind="snapshot.delete", status="pending", site=people["site"], actor=people["alice"],
        params={"snapshots": [{"id": snapshot.openstack_id, "site_id": people["site"].pk}]},
    )  # fmt: skip
    planner_statistics_refresh()
    return {"server": server, "snapshot": snapshot}


def old_job_list(user) -> list[int]:
    """What the job list showed before it read project by project."""
    from portal.selectors import job_list

    return list(job_list(user=user).order_by("-created_at", "-id").values_list("pk", flat=True))


def test_the_job_list_shows_the_newest_jobs_a_user_may_see_in_order(client, people, history):
    """Each user's projects' jobs and their own jobs without a project, newest first,
    jobs of one moment by id: the same rows, in the same order, as one query gave."""
    for name in ("alice", "bob", "carol", "eve", "admin"):
        user = people[name]
        shown = [job.pk for job in jobs_newest(user=user, limit=100)]
        assert shown == old_job_list(user)[:100], name
    bob = [job.pk for job in jobs_newest(user=people["bob"], limit=100)]
    assert set(Job.objects.filter(pk__in=bob).values_list("project", flat=True)) == {
        people["alpha"].pk
    }
    client.force_login(people["carol"])
    body = client.get(reverse("job-list")).content.decode()
    newest = old_job_list(people["carol"])[0]
    assert reverse("job-detail", args=[newest]) in body


@sqlite_only
def test_a_members_job_list_walks_each_scope_from_its_index(people, history):
    queries = job_queries(lambda: jobs_newest(user=people["alice"], limit=100))
    scopes, rows = queries[:-1], queries[-1]
    assert len(scopes) == 2  # alpha's jobs, and alice's own without a project
    for sql in scopes:
        found = sqlite_plan(sql)
        assert "job_project_newest" in found or "job_projectless_newest" in found, found
        assert "TEMP B-TREE" not in found, found
    assert "INTEGER PRIMARY KEY" in sqlite_plan(rows)


@sqlite_only
def test_a_tables_running_jobs_are_read_from_the_unfinished_jobs(people, history):
    """The overview's and the snapshot table's busy rows, the snapshots being made,
    and a delete's skip rules: each asks only the unfinished jobs, never walks all."""
    from portal.bulk.matching import being_deleted_q, busy_q
    from portal.jobs import busy_pks
    from snapshots.selectors import snapshot_jobs_for

    server, snapshot = history["server"], history["snapshot"]
    calls = {
        "busy servers": lambda: busy_pks([server], target="server"),
        "busy images": lambda: busy_pks([snapshot], target="image"),
        "being made": lambda: snapshot_jobs_for([snapshot]),
        "busy, as a filter": lambda: busy_q(target="image"),
        "being deleted": lambda: being_deleted_q(
            kind="snapshot.delete", key="snapshots", pending=lambda job: Job.objects.none()
        ),
    }
    for what, call in calls.items():
        for sql in job_queries(call):
            found = sqlite_plan(sql)
            assert "SCAN portal_job" not in found, (what, found)
            assert "TEMP B-TREE" not in found, (what, found)
    assert busy_pks([server], target="server") == {server.pk}
    assert busy_pks([snapshot], target="image") == {snapshot.pk}
    assert list(snapshot_jobs_for([snapshot])) == [(people["site"].pk, snapshot.openstack_id)]
    deleting = being_deleted_q(
        kind="snapshot.delete", key="snapshots", pending=lambda job: Job.objects.none()
    )
    assert list(Image.objects.filter(deleting)) == [snapshot]


postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL plans")


@postgres_only
def test_postgres_reads_the_job_lists_scopes_and_the_unfinished_jobs_from_indexes(people, history):
    from portal.jobs import busy_pks
    from snapshots.selectors import snapshot_jobs_for

    scopes = job_queries(lambda: jobs_newest(user=people["alice"], limit=100))[:-1]
    for sql in scopes:
        found = postgres_plan(sql)
        assert "job_project_newest" in found or "job_projectless_newest" in found, found
        assert "Sort" not in found, found
    unfinished = job_queries(lambda: busy_pks([history["server"]], target="server"))
    unfinished += job_queries(lambda: snapshot_jobs_for([history["snapshot"]]))
    for sql in unfinished:
        assert "Seq Scan" not in postgres_plan(sql), sql
