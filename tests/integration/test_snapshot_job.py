"""The stop-then-snapshot job end to end: real worker, Redis, openstacksdk, devcloud."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from images.models import Image
from instances.models import Flavor, Server
from instances.services import server_refresh
from portal import cloud
from portal.jobs import job_key, step_run_once
from portal.models import Job
from portal.texts import english
from snapshots.models import Snapshot
from snapshots.services import snapshot_create_request, snapshot_delete_request
from tests.conftest import wait_for_job
from tests.integration.test_gateway import wait_until

pytestmark = pytest.mark.worker


def boot(demo, name, *, user="alice") -> Server:
    """A fresh alpha instance, ACTIVE, mirrored, created through the portal by `user`."""
    site = demo["sites"]["devcloud"]
    image = Image.objects.get(site=site, name="Ubuntu-22.04-LTS")
    flavor = Flavor.objects.get(site=site, name="de.NBI tiny")
    made = cloud.server_create(
        site.name, project_id=demo["projects"]["alpha"].openstack_id, name=name,
        flavor_id=flavor.openstack_id, image_id=image.openstack_id, metadata={"portal_user": user},
    )  # fmt: skip
    wait_until(lambda: cloud.server_get(site.name, server_id=made.id).status == "ACTIVE")
    return server_refresh(site, openstack_id=made.id)


def actions_sent(devcloud, server_id) -> list[str]:
    """What the portal asked Nova to do with this server, from devcloud's access log."""
    with open(devcloud.access_log_path) as log:
        return [line for line in log if f"/servers/{server_id}/action" in line]


def test_a_running_instance_is_stopped_snapshotted_and_started_again(live_demo):
    alice = live_demo["users"]["alice"]
    server = boot(live_demo, "snap-running")
    job = snapshot_create_request(
        server=server, actor=alice, name="snap-running-gold", restart=True
    )
    job = wait_for_job(job)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert [s["status"] for s in job.steps] == ["done"] * 8 + ["skipped"] * 4  # no boot test
    assert job.state["prior_status"] == "ACTIVE"
    assert job.state["stopped_by_portal"] is True
    assert all(s["started_at"] and s["finished_at"] for s in job.steps)

    snapshot = Snapshot.objects.get(openstack_id=job.state["image_id"])
    assert snapshot.status == "active"
    assert snapshot.name == "snap-running-gold"
    assert snapshot.project == live_demo["projects"]["alpha"]
    assert snapshot.created_by == alice
    assert snapshot.source_server_openstack_id == server.openstack_id
    assert job.target_image_id == snapshot.openstack_id

    server.refresh_from_db()
    assert server.status == "ACTIVE"
    sent = actions_sent(live_demo["clouds"]["devcloud"], server.openstack_id)
    assert len(sent) == 3  # os-stop, createImage, os-start: each exactly once

    mail = list(live_demo["worker"]["mail_dir"].glob("*.log"))
    assert any("“snap-running-gold” is active and can be used" in m.read_text() for m in mail)


def test_a_stopped_instance_stays_stopped(live_demo):
    alice = live_demo["users"]["alice"]
    site = live_demo["sites"]["devcloud"]
    server = boot(live_demo, "snap-stopped")
    cloud.server_stop(site.name, server_id=server.openstack_id)
    wait_until(
        lambda: cloud.server_get(site.name, server_id=server.openstack_id).status == "SHUTOFF"
    )
    server = server_refresh(site, openstack_id=server.openstack_id)

    job = wait_for_job(
        snapshot_create_request(server=server, actor=alice, name="snap-stopped-1", restart=True)
    )
    assert job.status == Job.Status.SUCCEEDED, job.error
    statuses = {s["name"]: s["status"] for s in job.steps}
    assert statuses["stop"] == statuses["wait_stopped"] == "skipped"
    assert statuses["restart"] == statuses["wait_restarted"] == "skipped"
    server.refresh_from_db()
    assert server.status == "SHUTOFF"


def test_a_duplicate_delivery_makes_no_second_image(live_demo):
    from operations.tasks import job_advance_task

    alice = live_demo["users"]["alice"]
    server = boot(live_demo, "snap-dup")
    job = snapshot_create_request(server=server, actor=alice, name="snap-dup-1", restart=False)
    # The broker delivers the first message twice (and once more a moment later).
    job_advance_task.apply_async((job.pk, job.wake))
    job_advance_task.apply_async((job.pk, job.wake), countdown=0.3)
    job = wait_for_job(job)
    assert job.status == Job.Status.SUCCEEDED, job.error
    made = cloud.image_find_by_property("devcloud", key="portal_job", value=job_key(job))
    assert len(made) == 1
    sent = actions_sent(live_demo["clouds"]["devcloud"], server.openstack_id)
    assert len(sent) == 2  # one os-stop, one createImage; no restart asked


def test_a_retried_snapshot_step_finds_its_own_image(live_demo):
    """A worker that died after createImage but before saving: the re-run adopts the image."""
    from snapshots.jobs import step_snapshot

    alice = live_demo["users"]["alice"]
    site = live_demo["sites"]["devcloud"]
    server = boot(live_demo, "snap-retry")
    job = Job.objects.create(
        kind="snapshot.create", actor=alice, project=server.project, site=site,
        target_server_id=server.openstack_id, params={"name": "snap-retry-1", "restart": False},
    )  # fmt: skip
    step_run_once(step_snapshot, job)
    first = job.state["image_id"]
    job = Job.objects.get(pk=job.pk)  # the worker died: only what it saved remains
    assert "image_id" not in job.state
    assert job.state["snapshot_asked"]
    wait_until(lambda: not cloud.server_get(site.name, server_id=server.openstack_id).task_state)
    step_run_once(step_snapshot, job)
    assert job.state["image_id"] == first
    assert len(cloud.image_find_by_property(site.name, key="portal_job", value=job_key(job))) == 1


def test_a_failure_midway_restarts_the_instance_and_removes_the_image(live_demo):
    alice = live_demo["users"]["alice"]
    devcloud = live_demo["clouds"]["devcloud"]
    server = boot(live_demo, "snap-doomed")
    devcloud.set_faults({"snapshot_killed": {"server_name": "^snap-doomed$"}})
    try:
        job = wait_for_job(
            snapshot_create_request(server=server, actor=alice, name="snap-doomed-1", restart=True)
        )
    finally:
        devcloud.set_faults({})
    assert job.status == Job.Status.FAILED
    assert "could not save the snapshot" in english(job.error) or "discarded" in english(job.error)
    undo = {s["name"]: s for s in job.steps if s["phase"] == "undo"}
    assert undo["undo_start"]["status"] == "done", job.steps
    assert english(undo["undo_wait_active"]["detail"]) == "the instance runs again", job.steps
    wait_until(
        lambda: cloud.server_get("devcloud", server_id=server.openstack_id).status == "ACTIVE"
    )
    leftovers = cloud.image_find_by_property("devcloud", key="portal_job", value=job_key(job))
    assert [i for i in leftovers if i.status not in ("deleted", "killed")] == []
    mail = list(live_demo["worker"]["mail_dir"].glob("*.log"))
    assert any("“snap-doomed-1” could not be created" in m.read_text() for m in mail)


def test_bulk_delete_through_the_worker_reports_one_combined_result(live_demo):
    site = live_demo["sites"]["devcloud"]
    bob = live_demo["users"]["bob"]
    alpha = live_demo["projects"]["alpha"]
    snaps = list(Snapshot.objects.filter(site=site, project=alpha, deleted_at__isnull=True)[:3])
    # bob may delete the first one (make it his), not the others (not his).
    Snapshot.objects.filter(pk=snaps[0].pk).update(created_by=bob)
    snaps[0].created_by = bob
    job, plan = snapshot_delete_request(snapshots=snaps, actor=bob)
    assert len(plan.deletable) == 1
    assert len(plan.skipped) == 2
    job = wait_for_job(job)
    assert job.status == Job.Status.SUCCEEDED
    assert english(job.result["summary"]).startswith("Deleted 1, skipped 2:")
    assert "members may delete only snapshots they created" in english(job.result["summary"])
    snaps[0].refresh_from_db()
    assert snaps[0].deleted_at is not None
    with pytest.raises(cloud.NotFound):
        cloud.image_get(site.name, image_id=snaps[0].openstack_id)


def test_with_the_status_watcher_the_job_reads_the_mirror_instead_of_polling(live_demo):
    """The watcher (here run by the test, as beat runs it) lists what changed on the
    site; the job wakes on those changes and asks the cloud about its server only
    right after acting on it: after the stop, the snapshot request and the start."""
    from operations.watch import site_watch

    alice = live_demo["users"]["alice"]
    devcloud = live_demo["clouds"]["devcloud"]
    server = boot(live_demo, "snap-watched")
    server_site = server.site
    type(server_site).objects.filter(pk=server_site.pk).update(last_sync_at=timezone.now())

    with open(devcloud.access_log_path) as log:
        before = sum(1 for _ in log)
    job = snapshot_create_request(server=server, actor=alice, name="snap-watched-gold")
    deadline = time.monotonic() + 60
    while not job.is_finished and time.monotonic() < deadline:
        site_watch(server_site.pk)
        time.sleep(0.3)
        job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error

    with open(devcloud.access_log_path) as log:
        calls = [line for line in list(log)[before:] if "changes-since" not in line]
    reads = [line for line in calls if f" /compute/v2.1/servers/{server.openstack_id} " in line]
    # One refresh per action (stop, snapshot, start), and one look of the first step
    # if the worker ran it before the watcher's first round; no polling (~12 without).
    assert len(reads) <= 4, reads
    assert any(w["status"] == "done" for w in job.steps if w["name"] == "wait_restarted")
