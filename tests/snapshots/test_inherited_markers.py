"""A real Nova copies the base image's properties into each snapshot, so the
`portal_job` marker of a job's image reappears on every snapshot of a machine
booted from it. A job that looks for its own image must not take such a copy."""

from __future__ import annotations

from instances.models import Server
from portal import cloud
from portal.jobs import JOB_KEY, job_create, job_key, step_run_once
from snapshots.jobs import step_snapshot
from tests.integration.test_gateway import wait_until


def test_a_job_looking_for_its_image_ignores_one_that_only_inherited_its_marker(demo, monkeypatch):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    site, alpha = demo["sites"]["devcloud"], demo["projects"]["alpha"]
    own = Server.objects.get(site=site, name="alpha-analysis-02")  # SHUTOFF: no stop step
    other = Server.objects.get(site=site, name="alpha-web-01")
    job = job_create(
        kind="snapshot.create", actor=demo["users"]["alice"], project=alpha,
        params={"name": "own-1", "restart": False}, target_server_id=own.openstack_id,
    )  # fmt: skip
    # A snapshot of another machine carrying this job's marker, as one made from a
    # machine booted from this job's image would.
    copy_id = cloud.server_create_image(
        site.name, project_id=alpha.openstack_id, server_id=other.openstack_id,
        name="inherited", metadata={JOB_KEY: job_key(job)},
    )  # fmt: skip
    wait_until(lambda: cloud.image_get(site.name, image_id=copy_id).status == "active", 60)
    # The job crashed after asking Nova (the marker is saved before the request)...
    job.state.update({"snapshot_asked": True, "prior_status": "SHUTOFF"})
    step_run_once(step_snapshot, job)
    # ...and finds no image of its own server, so it asks for one: not the copy.
    assert job.state["image_id"] != copy_id
    made = cloud.image_get(site.name, image_id=job.state["image_id"])
    assert made.properties["instance_uuid"] == own.openstack_id
