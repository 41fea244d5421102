"""A long snapshot upload, as real clouds show it: Glance keeps the image `saving`
with no size and an unchanged updated_at until the end, and only Nova's task on
the server (`image_uploading`) says the upload runs. The job waits for it on a
budget by the disk's size, not on a no-progress limit; when the budget runs out it
fails without deleting the image Nova is still uploading."""

from __future__ import annotations

import time

import pytest

from instances.services import server_refresh
from portal import cloud
from portal.jobs import job_advance
from portal.models import Job
from portal.texts import english
from snapshots.services import snapshot_create_request

SPEED = 100.0  # 50 GB at devcloud's 100 MB/s: 500 s of upload take 5 s
NO_PROGRESS = 2  # seconds: far less than the upload takes
PER_GB = 0.2  # seconds of budget per GB of root disk: 10 s for de.NBI small's 50 GB


@pytest.fixture
def fast_cloud(tmp_path, settings, db):
    from devcloud.launcher import DevcloudProcess
    from operations.demo import demo_seed

    devcloud = DevcloudProcess(tmp_path / "dc", profile="primary", speed=SPEED).start()
    clouds_yaml = tmp_path / "clouds.yaml"
    clouds_yaml.write_text("clouds:\n" + devcloud.clouds_yaml(name="devcloud", entries_only=True))
    settings.OS_CLIENT_CONFIG_FILE = str(clouds_yaml)
    settings.PORTAL_SITES = "devcloud=Bielefeld"
    settings.JOB_NO_PROGRESS_SECONDS = NO_PROGRESS
    settings.JOB_UPLOAD_MIN_SECONDS = 1
    settings.JOB_UPLOAD_SECONDS_PER_GB = PER_GB
    settings.JOB_POLL_MIN_SECONDS = 0.05
    settings.JOB_POLL_MAX_SECONDS = 0.2
    cloud.connections_reset()
    demo_seed()
    yield devcloud
    cloud.connections_reset()
    devcloud.stop()


def run_job(job: Job, timeout: float) -> Job:
    """Advance the job in this process, as a worker would, message by message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_finished:
            return job
        countdown = job_advance(job.pk, job.wake)
        time.sleep(countdown or 0)
    raise AssertionError(f"job still {job.status}: {job.progress}")


def test_a_long_silent_upload_completes(
    fast_cloud, monkeypatch, django_capture_on_commit_callbacks
):
    from django.contrib.auth import get_user_model

    from images.models import Image
    from instances.models import Flavor
    from portal.models import Project

    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    alpha = Project.objects.get(name="alpha")
    site = alpha.site
    made = cloud.server_create(
        site.name, project_id=alpha.openstack_id, name="big-disk",
        flavor_id=Flavor.objects.get(site=site, name="de.NBI small").openstack_id,
        image_id=Image.objects.get(site=site, name="Ubuntu-22.04-LTS").openstack_id,
        metadata={"portal_user": "alice"},
    )  # fmt: skip
    active_at(site, made.id)
    fast_cloud.set_server(made.id, disk_used_bytes=50 * 1000**3)
    server = server_refresh(site, openstack_id=made.id)
    assert server.status == "ACTIVE"
    alice = get_user_model().objects.get(username="alice")
    with django_capture_on_commit_callbacks(execute=True):
        job = snapshot_create_request(server=server, actor=alice, name="big-disk-1", restart=True)
    started = time.monotonic()
    job = run_job(job, timeout=60)
    took = time.monotonic() - started
    assert job.status == Job.Status.SUCCEEDED, job.error
    upload = next(s for s in job.steps if s["name"] == "upload")
    assert upload["runs"] > 10
    assert took > 2 * NO_PROGRESS  # far longer than the no-progress limit, and fine
    image = cloud.image_get(site.name, image_id=job.state["image_id"])
    assert image.status == "active"
    assert image.size == 50 * 1000**3


@pytest.mark.slow  # waits out an upload budget on the fake cloud (about 15 s)
def test_an_upload_past_its_budget_fails_and_leaves_the_image_to_nova(
    fast_cloud, monkeypatch, django_capture_on_commit_callbacks
):
    from django.contrib.auth import get_user_model

    from images.models import Image
    from instances.models import Flavor
    from portal.models import Project

    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    alpha = Project.objects.get(name="alpha")
    site = alpha.site
    made = cloud.server_create(
        site.name, project_id=alpha.openstack_id, name="stalls",
        flavor_id=Flavor.objects.get(site=site, name="de.NBI small").openstack_id,
        image_id=Image.objects.get(site=site, name="Ubuntu-22.04-LTS").openstack_id,
        metadata={"portal_user": "alice"},
    )  # fmt: skip
    active_at(site, made.id)
    fast_cloud.set_server(made.id, disk_used_bytes=50 * 1000**3)
    fast_cloud.set_faults(
        {"stuck_task": {"server_name": "^stalls$", "task_state": "image_uploading"}}
    )
    server = server_refresh(site, openstack_id=made.id)
    alice = get_user_model().objects.get(username="alice")
    with django_capture_on_commit_callbacks(execute=True):
        job = snapshot_create_request(server=server, actor=alice, name="stalls-1", restart=True)
    started = time.monotonic()
    job = run_job(job, timeout=60)
    assert job.status == Job.Status.FAILED
    assert time.monotonic() - started > 10  # the budget, not the 2 s no-progress limit
    assert (
        "Uploading the image: Nova was still uploading after 10 s (the limit for a 50 GB "
        "disk); the image is left to Nova" in english(job.error)
    )
    undo = {s["name"]: s for s in job.steps if s["phase"] == "undo"}
    assert (
        english(undo["undo_image"]["detail"])
        == "Nova is still uploading the image: it is left to Nova"
    )
    # Never deleted while Nova uploads: the image is still there, still saving.
    image = cloud.image_get(site.name, image_id=job.state["image_id"])
    assert image.status == "saving"
    # Nova still works on the server, so it cannot be started: the first line says so.
    assert (
        english(job.error).splitlines()[0]
        == "stalls is left SHUTOFF: the portal could not start it again."
    )


def active_at(site, server_id: str, within: float = 30.0) -> None:
    """Wait until the fake cloud has booted the server (a tenth of a second when the
    machine is idle; far longer under load, when a snapshot would meet "spawning")."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        server = cloud.server_get(site.name, server_id=server_id)
        if server.status == "ACTIVE" and not server.task_state:
            return
        time.sleep(0.1)
    raise AssertionError(f"{server_id} not ACTIVE within {within:g} s")
