"""After an action Nova accepted, the mirror shows the task Nova set, without a show
call: Nova saves the task before it answers 202. At 1,000 jobs each show call was a
cloud call and a mirror write per action. The upload step asks Glance only when the
mirror does not show the image active. Mocks at the gateway only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from instances.models import Server
from instances.services import server_task_began, servers_store
from portal import cloud
from portal.jobs import StepFailed, job_create, step_run_once
from portal.models import Job
from snapshots.jobs import step_snapshot, step_stop_if_running, step_upload
from tests.factories import make_image, make_server
from tests.snapshots.test_upload_step import cloud_image, cloud_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def asked(monkeypatch):
    """The show calls the steps make, by kind; the site watched (the mirror current)."""
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    calls: list[str] = []
    monkeypatch.setattr(cloud, "server_get", lambda site, server_id: calls.append("server"))
    monkeypatch.setattr(cloud, "image_get", lambda site, image_id: calls.append("image"))
    return calls


def _job(people, row, **state) -> Job:
    row.site.watched_at = timezone.now()
    row.site.save()
    job = job_create(
        kind="snapshot.create", actor=people["alice"], project=people["alpha"],
        params={"name": "snap", "restart": True}, target_server_id=row.openstack_id,
    )  # fmt: skip
    job.state.update(state)
    return job


def test_a_stop_nova_accepted_shows_powering_off_without_a_show_call(people, asked, monkeypatch):
    row = make_server(project=people["alpha"])
    monkeypatch.setattr(cloud, "server_stop", lambda site, server_id: None)
    job = _job(people, row, prior_status="ACTIVE")
    assert step_run_once(step_stop_if_running, job) is None
    assert job.state["stopped_by_portal"] is True
    assert asked == []
    row.refresh_from_db()
    assert (row.status, row.task_state) == ("ACTIVE", "powering-off")


def test_a_snapshot_nova_accepted_shows_its_task_without_a_show_call(people, asked, monkeypatch):
    row = make_server(project=people["alpha"], status="SHUTOFF", power_state=4)
    monkeypatch.setattr(cloud, "image_find_by_property", lambda *a, **k: [])
    monkeypatch.setattr(cloud, "server_create_image", lambda site, **kwargs: "img-1")
    job = _job(people, row, prior_status="SHUTOFF")
    assert step_run_once(step_snapshot, job) is None
    assert job.state["image_id"] == "img-1"
    assert asked == []
    row.refresh_from_db()
    assert row.task_state == "image_snapshot_pending"


def test_the_upload_ends_on_an_image_the_mirror_shows_active(people, asked):
    row = make_server(project=people["alpha"], status="SHUTOFF", power_state=4)
    make_image(site=row.site, project=people["alpha"], snapshot=True, openstack_id="img-1")
    job = _job(people, row, prior_status="SHUTOFF", image_id="img-1")
    assert step_run_once(step_upload, job) is None
    assert asked == []


def test_an_image_the_mirror_does_not_show_active_is_asked_of_glance(people, monkeypatch):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    row = make_server(project=people["alpha"], status="SHUTOFF", power_state=4)
    make_image(site=row.site, project=people["alpha"], snapshot=True, openstack_id="img-1",
               status="saving")  # fmt: skip
    killed = cloud_image("img-1", row.project_openstack_id, status="killed")
    monkeypatch.setattr(cloud, "server_get", lambda site, server_id: cloud_server(row))
    monkeypatch.setattr(cloud, "image_get", lambda site, image_id: killed)
    job = _job(people, row, prior_status="SHUTOFF", image_id="img-1")
    with pytest.raises(StepFailed, match="killed"):
        step_run_once(step_upload, job)


def test_a_listing_asked_before_nova_answered_leaves_the_task_in_place(people):
    row = make_server(project=people["alpha"])
    answered = timezone.now()
    server_task_began(row.site, row, task_state="powering-off", answered_at=answered)
    stale = cloud_server(row, status="ACTIVE", vm_state="active", power_state=1)
    servers_store(row.site, [stale], complete=False, observed_at=answered - timedelta(seconds=1))
    assert Server.objects.get(pk=row.pk).task_state == "powering-off"
    servers_store(row.site, [stale], complete=False, observed_at=answered + timedelta(seconds=1))
    assert Server.objects.get(pk=row.pk).task_state == ""


def test_the_first_run_saves_the_job_once_before_it_stops_the_server(people, asked, monkeypatch):
    """What the check recorded (the server was ACTIVE) is saved with the stop's own
    checkpoint, just before the request: not in a write of its own first."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal.jobs import job_advance

    row = make_server(project=people["alpha"])
    job = _job(people, row)
    job.save()
    at_the_stop = {}

    def stop(site, server_id):
        saved = Job.objects.get(pk=job.pk).state
        at_the_stop["state"] = saved
        at_the_stop["writes"] = [
            q["sql"] for q in queries if q["sql"].startswith('UPDATE "portal_job"')
        ]

    monkeypatch.setattr(cloud, "server_stop", stop)
    with CaptureQueriesContext(connection) as queries:
        job_advance(job.pk, job.wake)
    assert at_the_stop["state"]["prior_status"] == "ACTIVE"
    assert at_the_stop["state"]["stop_asked"] is True
    assert len(at_the_stop["writes"]) == 2  # the claim, the checkpoint
