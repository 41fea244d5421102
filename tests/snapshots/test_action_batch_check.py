"""Snapshot jobs that start together (a "Snapshot selected" of many) run their
check in the batches the workers take them in: the check's rules are asked again
for every job, and what they read (the actor's roles, the names in use) is read
once for a batch, not once per job. The Celery and cloud boundaries are mocked."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from operations import tasks
from portal import cloud
from portal.models import Job
from snapshots.services import snapshot_create_request
from tests.factories import make_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def stopped(monkeypatch, people):
    """The servers the jobs asked Nova to stop; the site watched, messages dropped."""
    site = people["site"]
    site.watched_at = timezone.now()  # the watcher keeps the mirror current
    site.save()
    monkeypatch.setattr("config.celery.app.send_task", lambda *args, **kwargs: None)
    asked: list[str] = []
    monkeypatch.setattr(cloud, "server_stop", lambda site_name, server_id: asked.append(server_id))
    return asked


def _jobs(people, names: list[str]) -> list[Job]:
    servers = [make_server(project=people["alpha"], created_by=people["bob"]) for _ in names]
    return [
        snapshot_create_request(server=server, actor=people["bob"], name=name)
        for server, name in zip(servers, names, strict=True)
    ]


def test_a_batch_checks_every_job_with_one_read_of_roles_and_names(people, stopped):
    jobs = _jobs(people, ["gold-1", "gold-2", "gold-3"])
    with CaptureQueriesContext(connection) as queries:
        tasks.jobs_advance_task([[job.pk, job.wake] for job in jobs])
    assert len(stopped) == 3  # every job passed its check (none counts its own name)
    reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT")]
    assert len([sql for sql in reads if 'FROM "portal_membership"' in sql]) == 1
    assert len([sql for sql in reads if '"images_image"."name_key" IN' in sql]) == 1
    assert len([sql for sql in reads if '"portal_job"."name_key" IN' in sql]) == 1


def test_a_batch_still_refuses_a_name_another_job_took_meanwhile(people, stopped):
    """Guard: the name read for the batch is the rule, job by job."""
    first, second = _jobs(people, ["gold", "silver"])
    Job.objects.create(
        kind="snapshot.create", status=Job.Status.RUNNING, actor=people["alice"],
        project=people["alpha"], site=people["site"], name_key="gold",
    )  # fmt: skip
    tasks.jobs_advance_task([[first.pk, first.wake], [second.pk, second.wake]])
    first.refresh_from_db()
    second.refresh_from_db()
    assert "already has a snapshot named" in first.error
    assert first.status in (Job.Status.FAILED, Job.Status.CLEANING_UP)
    assert stopped == [second.target_server_id]


def test_a_batch_refuses_a_job_whose_actor_left_the_project(people, stopped):
    """Guard: the roles read once for the batch are the actor's now, not at submission."""
    from portal.models import Membership

    jobs = _jobs(people, ["gold-1", "gold-2"])
    Membership.objects.filter(user=people["bob"], project=people["alpha"]).delete()
    tasks.jobs_advance_task([[job.pk, job.wake] for job in jobs])
    for job in jobs:
        job.refresh_from_db()
        assert "may no longer act" in job.error
    assert stopped == []
