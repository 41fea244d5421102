"""A job adopts after a cut-off create, and its cleanup deletes, only what is
provably its own (portal.jobs.made_by_job): a server the portal's service account
made in the job's project after the job asked, carrying the job's marker; an image
of the job's project and server. The marker alone is no proof: anyone with API
access in the project can put it on a server of the seat's name.

"Anyone" here is alpha's member user on devcloud, through the gateway with the
member's clouds.yaml entry (`devcloud-alpha`): a real Nova records that user as the
server's creator, and so does devcloud."""

from __future__ import annotations

import time
from datetime import timedelta

from django.utils import timezone

from instances.jobs import step_launch_create, step_launch_wait
from instances.models import Server
from portal import cloud
from portal.cloud.connection import connection_for
from portal.jobs import JOB_KEY, Skipped, Wait, job_create, job_key, step_run_once
from snapshots.jobs import undo_image
from tests.integration.test_launch_job import _delete_all, _lands_late, _launch_job

MEMBER_OF_ALPHA = "devcloud-alpha"  # clouds.yaml entry of alpha's member user


def _made_by_member(job, plan):
    """A server with the seat's name and the job's marker, made by another user of the project."""
    return cloud.server_create(
        MEMBER_OF_ALPHA, project_id=plan.project.openstack_id, name=plan.names[0],
        flavor_id=plan.flavor.openstack_id, image_id=plan.image.openstack_id,
        metadata={JOB_KEY: job_key(job), "portal_index": "0"},
    )  # fmt: skip


def _exists(server_id: str) -> bool:
    try:
        return not cloud.server_get("devcloud", server_id=server_id).is_deleted
    except cloud.NotFound:
        return False


def test_a_launch_does_not_adopt_a_server_another_member_made_with_its_name_and_marker(demo):
    plan, job = _launch_job(demo, "lure")
    stranger = _made_by_member(job, plan)
    # The job's request was cut off just now: it looks for what it may have made.
    job.state = {"servers": {}, "outcomes": {}, "asked": {"0": timezone.now().isoformat()}}
    # It waits for its own, adopts nothing.
    assert isinstance(step_run_once(step_launch_create, job), Wait)
    assert job.state["servers"] == {}
    landed = _lands_late(job, plan)  # its own request lands after all
    assert landed.user_id != stranger.user_id
    assert step_run_once(step_launch_create, job) is None
    assert job.state["servers"] == {"0": landed.id}
    _delete_all(plan)


def test_a_launch_does_not_adopt_its_own_kind_of_server_made_before_it_asked(demo, settings):
    settings.JOB_ADOPT_SKEW_SECONDS = 0
    plan, job = _launch_job(demo, "early")
    earlier = _lands_late(job, plan)  # the portal's account, the job's marker, but before
    time.sleep(2.0)  # Nova shows whole seconds
    job.state = {"servers": {}, "outcomes": {}, "asked": {"0": timezone.now().isoformat()}}
    assert isinstance(step_run_once(step_launch_create, job), Wait)
    assert job.state["servers"] == {}
    assert _exists(earlier.id)
    _delete_all(plan)


def test_the_launch_cleanup_never_deletes_another_members_server_with_its_marker(demo, settings):
    """The wait step deletes the servers a twice-asked seat got twice: only the job's own."""
    plan, job = _launch_job(demo, "keep")
    long_ago = (
        timezone.now() - timedelta(seconds=settings.JOB_CREATE_LAND_SECONDS + 1)
    ).isoformat()
    job.state = {"servers": {}, "outcomes": {}, "asked": {"0": long_ago}}
    job.started_at = timezone.now()
    # Asked again: nothing of its own had landed.
    assert step_run_once(step_launch_create, job) is None
    stranger = _made_by_member(job, plan)
    settings.JOB_CREATE_LAND_SECONDS = 0
    deadline = time.monotonic() + 60
    while step_run_once(step_launch_wait, job) is not None:
        assert time.monotonic() < deadline, job.state
        time.sleep(0.5)
    assert job.state.get("extras_deleted", []) == []
    assert _exists(stranger.id)
    assert job.state["servers"]["0"] != stranger.id
    _delete_all(plan)


def test_a_snapshot_job_neither_adopts_nor_deletes_another_projects_image_with_its_marker(
    demo, monkeypatch
):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    site, alpha, beta = (
        demo["sites"]["devcloud"],
        demo["projects"]["alpha"],
        demo["projects"]["beta"],
    )
    own = Server.objects.get(site=site, name="alpha-analysis-02")
    job = job_create(
        kind="snapshot.create", actor=demo["users"]["alice"], project=alpha,
        params={"name": "own-2", "restart": False}, target_server_id=own.openstack_id,
    )  # fmt: skip
    # The job asked Nova for its snapshot, and the answer never came...
    job.state.update(snapshot_asked=True, snapshot_asked_at=timezone.now().isoformat())
    # ...and meanwhile someone in another project made an image that looks like it.
    response = connection_for(site.name, project_id=beta.openstack_id).image.post(
        "/images", json={"name": "lure", "disk_format": "qcow2", "container_format": "bare",
                         JOB_KEY: job_key(job), "instance_uuid": own.openstack_id},
    )  # fmt: skip
    lure = response.json()
    assert lure["owner"] == beta.openstack_id
    # The undo finds no image of its own, and leaves the other project's alone.
    assert step_run_once(undo_image, job) == Skipped("no image was made")
    assert cloud.image_get(site.name, image_id=lure["id"]).status == "queued"
    assert "image_id" not in job.state
    cloud.image_delete(site.name, image_id=lure["id"])
