"""The snapshot job's upload wait, as a real cloud shows an upload: Glance silent
until the end, Nova's task the only sign of life. Mocks at the gateway only."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from django.utils import timezone

from portal import cloud
from portal.jobs import StepFailed, Wait, job_create, step_run_once
from portal.models import Job
from portal.texts import english
from snapshots.jobs import step_upload, upload_budget
from tests.factories import make_server

pytestmark = pytest.mark.django_db


def cloud_server(row, **changes) -> cloud.CloudServer:
    values = dict(
        id=row.openstack_id, name=row.name, status=row.status, task_state=None,
        vm_state="stopped", power_state=4, project_id=row.project_openstack_id, user_id="u",
        flavor_name=row.flavor_name, flavor_vcpus=row.flavor_vcpus,
        flavor_ram_mib=row.flavor_ram_mib, flavor_disk_gb=row.flavor_disk_gb,
        image_id="base", addresses=(), metadata={}, created_at=timezone.now(),
        updated_at=timezone.now(),
    )  # fmt: skip
    values.update(changes)
    return cloud.CloudServer(**values)


def cloud_image(image_id, owner, **changes) -> cloud.CloudImage:
    values = dict(
        id=image_id, name="snap", status="saving", visibility="private", owner=owner,
        size=None, min_disk=50, min_ram=0, checksum="", protected=False, tags=(),
        properties={"image_type": "snapshot"}, created_at=timezone.now(),
        updated_at=timezone.now(),
    )  # fmt: skip
    values.update(changes)
    return cloud.CloudImage(**values)


@pytest.fixture
def upload_job(people, monkeypatch):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    row = make_server(project=people["alpha"], status="SHUTOFF", flavor_disk_gb=200)
    job = job_create(
        kind="snapshot.create", actor=people["alice"], project=people["alpha"],
        params={"name": "snap", "restart": True}, target_server_id=row.openstack_id,
    )  # fmt: skip
    job.state["image_id"] = "img-1"
    seen = {"server": cloud_server(row), "image": cloud_image("img-1", row.project_openstack_id)}
    monkeypatch.setattr(cloud, "server_get", lambda site, server_id: seen["server"])
    monkeypatch.setattr(cloud, "image_get", lambda site, image_id: seen["image"])
    return job, seen


def test_while_nova_uploads_the_wait_is_budgeted_by_the_disk(upload_job, settings):
    settings.JOB_UPLOAD_MIN_SECONDS = 1800
    settings.JOB_UPLOAD_SECONDS_PER_GB = 60
    job, seen = upload_job
    seen["server"] = dataclasses.replace(seen["server"], task_state="image_uploading")
    outcome = step_run_once(step_upload, job)
    assert isinstance(outcome, Wait)
    assert outcome.budget == 200 * 60  # a minute per GB of the 200 GB root disk
    assert "Nova was still uploading after 3.3 h" in english(outcome.over_budget)
    # A small disk still gets the floor.
    seen["server"] = dataclasses.replace(seen["server"], flavor_disk_gb=1)
    job.step_cache.pop("server")
    assert step_run_once(step_upload, job).budget == 1800 == upload_budget(job.step_cache["server"])


def test_when_novas_task_ended_and_the_image_is_not_active_it_fails_at_once(upload_job):
    job, seen = upload_job
    seen["server"] = dataclasses.replace(seen["server"], fault_message="Connection to glance lost")
    with pytest.raises(StepFailed) as failed:
        step_run_once(step_upload, job)
    assert english(str(failed.value)) == (
        "Nova finished its snapshot task, but the image is still saving: the upload did not "
        "complete (Connection to glance lost)"
    )


def test_when_novas_task_ended_and_the_image_is_active_the_step_is_done(upload_job):
    job, seen = upload_job
    seen["image"] = dataclasses.replace(seen["image"], status="active", size=123)
    assert step_run_once(step_upload, job) is None


def test_the_engine_fails_a_budgeted_wait_only_after_its_budget(people, settings, monkeypatch):
    """No progress for longer than JOB_NO_PROGRESS_SECONDS is fine within the budget."""
    from portal.jobs import Kind, Step, job_advance

    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    settings.JOB_NO_PROGRESS_SECONDS = 1

    def budgeted(ctx):
        return Wait(progress="uploading", observed="same", budget=100, over_budget="too long")

    class Budgeted(Kind):
        name = "test.budgeted"
        steps = (Step("up", "Uploading", budgeted),)

    job = job_create(kind="test.budgeted", actor=people["alice"], project=people["alpha"])
    job_advance(job.pk)
    job.refresh_from_db()
    # A minute without progress (the limit is 1 s), within the budget: still waiting.
    started = timezone.now() - timedelta(seconds=60)
    job.steps[0]["started_at"] = job.steps[0]["progress_at"] = started.isoformat()
    job.save()
    job_advance(job.pk, job.wake)
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING
    # Past the budget: failed, with the step's own words.
    job.steps[0]["started_at"] = (timezone.now() - timedelta(seconds=101)).isoformat()
    job.save()
    job_advance(job.pk, job.wake)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert english(job.error) == "Uploading: too long"
