"""The names of unfinished snapshot jobs are held by an indexed column of the job
(Job.name_key), so the name check costs the same at 1,000 jobs as at one."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.db import connection

from portal.errors import ActionRefused
from portal.models import Job
from snapshots.services import (
    snapshot_create_check,
    snapshot_create_many_request,
    snapshot_create_request,
    snapshot_name_taken,
)
from tests.factories import make_server
from tests.plans import sqlite_plan


def test_a_job_records_its_casefolded_name_in_the_column(
    people, django_capture_on_commit_callbacks
):
    vm = make_server(project=people["alpha"], created_by=people["bob"])
    job = snapshot_create_request(server=vm, actor=people["bob"], name="Nightly Gold")
    assert Job.objects.get(pk=job.pk).name_key == "nightly gold"


def test_a_batch_jobs_name_is_refused_to_a_second_request(
    people, django_capture_on_commit_callbacks
):
    first, second = (
        make_server(project=people["alpha"], created_by=people["bob"], name=n) for n in "ab"
    )
    jobs, _ = snapshot_create_many_request(
        servers=[first], actor=people["bob"], pattern="{instance}-gold"
    )
    assert Job.objects.get(pk=jobs[0].pk).name_key == "a-gold"
    with pytest.raises(ActionRefused, match="already has"):
        snapshot_create_check(server=second, actor=people["bob"], name="A-Gold")
    # The job's own check (step_check) does not refuse the job its own name.
    assert not snapshot_name_taken(server=first, name="a-gold", exclude_job_id=jobs[0].pk)


def test_a_finished_jobs_name_is_free_again(people, django_capture_on_commit_callbacks):
    vm = make_server(project=people["alpha"], created_by=people["bob"])
    job = snapshot_create_request(server=vm, actor=people["bob"], name="gold")
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED)
    assert not snapshot_name_taken(server=vm, name="gold")


def test_an_unfinished_job_from_before_the_column_keeps_its_name(
    people, django_capture_on_commit_callbacks
):
    """The migration gives the jobs still running their name from params."""
    vm = make_server(project=people["alpha"], created_by=people["bob"])
    job = snapshot_create_request(server=vm, actor=people["bob"], name="gold")
    Job.objects.filter(pk=job.pk).update(name_key="")  # as the job was recorded before
    migration = importlib.import_module("portal.migrations.0019_job_name_key")
    migration.fill_name_key(apps, connection.schema_editor())
    other = make_server(project=people["alpha"], created_by=people["bob"])
    assert snapshot_name_taken(server=other, name="GOLD")


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite plans")
def test_the_check_asks_the_name_index_not_every_pending_job(
    people, django_capture_on_commit_callbacks
):
    from django.test.utils import CaptureQueriesContext

    from portal.mirror.sqlite import planner_statistics_refresh

    servers = [make_server(project=people["alpha"], created_by=people["bob"]) for _ in range(40)]
    snapshot_create_many_request(servers=servers, actor=people["bob"], pattern="{instance}-x")
    planner_statistics_refresh()
    with CaptureQueriesContext(connection) as queries:
        snapshot_name_taken(server=servers[0], name="new name")
    (job_query,) = [q["sql"] for q in queries if '"portal_job"' in q["sql"]]
    assert "job_name_key" in sqlite_plan(job_query)
