"""The long tail of jobs, through a real worker, Redis and devcloud: every failure
point of the snapshot job leaves the instance as the user had it, a crash during
the cleanup resumes the cleanup, and big launches and deletes run in bounded batches.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from images.models import Image
from images.services import images_sync
from instances.launch import instance_launch_request
from instances.launch_retry import launch_failed_delete_request, launch_retry_request
from instances.launch_rules import launch_check
from instances.models import Flavor, Server
from portal import cloud
from portal.jobs import job_key, jobs_recover_stuck
from portal.models import Job
from portal.texts import english
from snapshots.models import Snapshot
from snapshots.services import snapshot_create_request, snapshot_delete_request
from tests.conftest import sdk_connection, wait_for_job
from tests.integration.test_gateway import wait_until
from tests.integration.test_snapshot_job import actions_sent, boot

pytestmark = pytest.mark.worker


def steps_of(job, phase="undo") -> dict[str, dict]:
    return {s["name"]: s for s in job.steps if s.get("phase", "forward") == phase}


def cloud_status(name_or_id: str) -> str:
    return cloud.server_get("devcloud", server_id=name_or_id).status


def own_images(job) -> list:
    found = cloud.image_find_by_property("devcloud", key="portal_job", value=job_key(job))
    return [i for i in found if i.status not in ("deleted", "pending_delete")]


def test_a_stop_the_cloud_refuses_fails_without_touching_the_instance(live_demo):
    devcloud = live_demo["clouds"]["devcloud"]
    server = boot(live_demo, "fail-at-stop")
    path = f"^/compute/v2.1/servers/{server.openstack_id}/action"
    devcloud.set_faults({"http": [{"method": "POST", "path": path, "status": 409}]})
    try:
        job = snapshot_create_request(
            server=server, actor=live_demo["users"]["alice"], name="fail-at-stop-1"
        )
        job = wait_for_job(job)
    finally:
        devcloud.set_faults({})
    assert job.status == Job.Status.FAILED
    assert english(job.error).startswith("Stop requested:")
    # Only what ran is undone: no snapshot was asked for, so no image is looked for.
    assert "undo_image" not in steps_of(job)
    assert cloud_status(server.openstack_id) == "ACTIVE"
    assert own_images(job) == []


def test_a_snapshot_killed_during_upload_restarts_the_instance(live_demo):
    devcloud = live_demo["clouds"]["devcloud"]
    server = boot(live_demo, "fail-at-upload")
    devcloud.set_faults({"snapshot_killed": {"server_name": "^fail-at-upload$"}})
    try:
        job = snapshot_create_request(
            server=server, actor=live_demo["users"]["alice"], name="fail-at-upload-1", restart=True
        )
        job = wait_for_job(job, timeout=90)
    finally:
        devcloud.set_faults({})
    assert job.status == Job.Status.FAILED, job.steps
    assert english(job.error).startswith("Uploading the image:")
    undo = steps_of(job)
    assert undo["undo_start"]["status"] == "done"
    assert english(undo["undo_wait_active"]["detail"]) == "the instance runs again"
    assert cloud_status(server.openstack_id) == "ACTIVE"
    assert own_images(job) == []


def test_an_instance_left_stopped_is_said_in_the_first_line(live_demo):
    """Nova never finishes the snapshot (a task that hangs): the portal cannot start
    the instance again, and the job, the event log and the email say so first."""
    devcloud = live_demo["clouds"]["devcloud"]
    server = boot(live_demo, "fail-stuck")
    devcloud.set_faults(
        {"stuck_task": {"server_name": "^fail-stuck$", "task_state": "image_snapshot"}}
    )
    try:
        job = snapshot_create_request(
            server=server, actor=live_demo["users"]["alice"], name="fail-stuck-1", restart=True
        )
        job = wait_for_job(job, timeout=120)
    finally:
        devcloud.set_faults({})
    assert job.status == Job.Status.FAILED
    first_line = english(job.error).splitlines()[0]
    assert first_line == "fail-stuck is left SHUTOFF: the portal could not start it again."
    # Said by the last undo step, so the job was never recorded failed without it.
    assert english(steps_of(job)["undo_report"]["detail"]) == "fail-stuck is left SHUTOFF"
    assert "Nova was still snapshotting after 6 s" in english(job.error)
    # Nova still holds the image: the portal never deletes it under Nova's feet.
    assert english(steps_of(job)["undo_image"]["detail"]) == (
        "Nova is still snapshotting the image: it is left to Nova"
    )
    mail = [m.read_text() for m in live_demo["worker"]["mail_dir"].glob("*.log")]
    assert any(
        "fail-stuck is left SHUTOFF: the portal could not start it again." in m for m in mail
    )


def test_a_hundred_seat_workshop_and_its_teardown_run_in_bounded_batches(live_demo):
    alice = live_demo["users"]["alice"]
    alpha = live_demo["projects"]["alpha"]
    site = live_demo["sites"]["devcloud"]
    conn = sdk_connection(live_demo["clouds"])
    conn.compute.update_quota_set(alpha.openstack_id, instances=200, cores=400, ram=4 * 1024 * 1024)
    participants = [f"Teilnehmer {n:03d}" for n in range(100)]
    devcloud = live_demo["clouds"]["devcloud"]
    devcloud.set_faults({"boot_error": {"server_name": "^ws100-teilnehmer-00[37]$"}})
    try:
        from instances.services import project_quota_refresh

        project_quota_refresh(alpha)
        image = Image.objects.get(site=site, name="Ubuntu-22.04-LTS")
        plan = launch_check(
            actor=alice, project=alpha, flavor=Flavor.objects.get(site=site, name="de.NBI tiny"),
            image=image, prefix="ws100", count=100, participants=participants,
        )  # fmt: skip
        job = wait_for_job(instance_launch_request(actor=alice, plan=plan), timeout=240)
    finally:
        devcloud.set_faults({})
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert english(job.result["summary"]).startswith("98 active, 2 failed: ws100-teilnehmer-003")
    assert job.result["failed_seats"] == [3, 7]
    log = live_demo["worker"]["log"].read_text()
    assert "SoftTimeLimitExceeded" not in log
    assert "internal error" not in log

    # Retry just the failed seats (their ERROR machines are removed first).
    retry = wait_for_job(launch_retry_request(job=job, actor=alice), timeout=90)
    assert retry.status == Job.Status.SUCCEEDED, retry.error
    assert retry.params["names"] == ["ws100-teilnehmer-003", "ws100-teilnehmer-007"]
    assert english(retry.result["summary"]) == "2 active."
    assert english(steps_of(retry, "forward")["replace"]["detail"]) == ""
    assert steps_of(retry, "forward")["replace"]["status"] == "done"
    assert Server.objects.filter(name__startswith="ws100-", status="ERROR",
                                 deleted_at__isnull=True).count() == 0  # fmt: skip

    # Tear it all down as one bounded job.
    servers = Server.objects.filter(site=site, name__startswith="ws100-", deleted_at__isnull=True)
    from instances.jobs import BATCH
    from portal.jobs import job_create

    delete = job_create(
        kind="instances.delete", actor=alice, project=alpha, site=site,
        params={"servers": [{"id": s.openstack_id, "name": s.name, "site_id": site.pk}
                            for s in servers], "skipped": []},
    )  # fmt: skip
    delete = wait_for_job(delete, timeout=120)
    assert delete.status == Job.Status.SUCCEEDED, delete.error
    assert english(delete.result["summary"]) == "Deleted 100."
    assert steps_of(delete, "forward")["delete"]["runs"] >= 100 // BATCH  # not one long run
    assert not Server.objects.filter(name__startswith="ws100-", deleted_at__isnull=True).exists()


def test_failed_seats_can_have_their_machines_deleted(live_demo):
    alice = live_demo["users"]["alice"]
    alpha = live_demo["projects"]["alpha"]
    devcloud = live_demo["clouds"]["devcloud"]
    devcloud.set_faults({"boot_error": {"server_name": "^wsdel-b$"}})
    try:
        site = live_demo["sites"]["devcloud"]
        image = Image.objects.get(site=site, name="Ubuntu-22.04-LTS")
        plan = launch_check(
            actor=alice, project=alpha, flavor=Flavor.objects.get(site=site, name="de.NBI tiny"),
            image=image, prefix="wsdel", count=2, participants=["a", "b"],
        )  # fmt: skip
        job = wait_for_job(instance_launch_request(actor=alice, plan=plan), timeout=60)
    finally:
        devcloud.set_faults({})
    assert job.result["failed_seats"] == [1]
    # bob (a member, not the launcher) may not; alice may.
    from portal.errors import ActionRefused

    with pytest.raises(ActionRefused):
        launch_failed_delete_request(job=job, actor=live_demo["users"]["bob"])
    delete = wait_for_job(launch_failed_delete_request(job=job, actor=alice))
    assert english(delete.result["summary"]) == "Deleted 1."
    assert Server.objects.get(name="wsdel-b").deleted_at is not None
    assert Server.objects.get(name="wsdel-a").status == "ACTIVE"


def test_a_two_hundred_snapshot_bulk_delete_runs_in_batches(live_demo):
    site = live_demo["sites"]["devcloud"]
    alpha = live_demo["projects"]["alpha"]
    from portal.cloud.connection import connection_for

    conn = connection_for(site.name, project_id=alpha.openstack_id)  # as alpha, like Nova would
    for n in range(200):
        conn.image.post(
            "/images", json={"name": f"bulk-{n:03d}", "disk_format": "qcow2",
                             "container_format": "bare", "image_type": "snapshot"},
        )  # fmt: skip
    images_sync(site, updated_since=None)
    chosen = Snapshot.objects.filter(site=site, name__startswith="bulk-", deleted_at__isnull=True)
    assert chosen.count() == 200
    job, plan = snapshot_delete_request(snapshots=chosen, actor=live_demo["users"]["alice"])
    assert len(plan.deletable) == 200
    job = wait_for_job(job, timeout=120)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert english(job.result["summary"]) == "Deleted 200."
    assert steps_of(job, "forward")["delete"]["runs"] >= 200 // 20  # 20 per run
    assert not Snapshot.objects.filter(name__startswith="bulk-", deleted_at__isnull=True).exists()


# --- Crashes ------------------------------------------------------------------------


@pytest.fixture
def crashable_worker(live_demo, tmp_path):
    """A second worker of the test's own, to be SIGKILLed; the session worker is paused."""
    from scripts.stack import start_worker, stop_process
    from tests.conftest import _wait_for_worker

    session = live_demo["worker"]["process"]
    os.kill(session.pid, signal.SIGSTOP)  # only our worker takes messages meanwhile
    env = dict(live_demo["worker"]["env"])
    workers = []

    def start():
        log_path = tmp_path / f"worker-{len(workers)}.log"
        process = start_worker(env, concurrency=1, log_path=log_path, include=("tests.job_kinds",))
        _wait_for_worker(live_demo["worker"]["redis_url"], process, log_path)
        workers.append(process)
        return process

    yield start
    for process in workers:
        stop_process(process)
    os.kill(session.pid, signal.SIGCONT)


def test_a_crash_during_the_cleanup_resumes_the_cleanup(live_demo, crashable_worker):
    devcloud = live_demo["clouds"]["devcloud"]
    server = boot(live_demo, "crash-undo")
    devcloud.set_faults({"snapshot_killed": {"server_name": "^crash-undo$"}})
    worker = crashable_worker()
    try:
        job = snapshot_create_request(
            server=server, actor=live_demo["users"]["alice"], name="crash-undo-1", restart=True
        )
        wait_until(lambda: Job.objects.get(pk=job.pk).status == Job.Status.CLEANING_UP, 60)
    finally:
        devcloud.set_faults({})
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    killed_at = time.monotonic()
    crashable_worker()
    # The sweep (beat runs it every few seconds in production) hands the job on.
    deadline = time.monotonic() + 60
    while not Job.objects.get(pk=job.pk).is_finished and time.monotonic() < deadline:
        jobs_recover_stuck()
        time.sleep(1)
    job = wait_for_job(job, timeout=5)
    assert time.monotonic() - killed_at < 40
    assert job.status == Job.Status.FAILED
    assert english(job.error).startswith("Uploading the image:")  # the old error, not a re-run
    forward = steps_of(job, "forward")
    assert forward["upload"]["status"] == "failed"
    assert [s["status"] for s in steps_of(job).values()][-1] in ("done", "skipped")
    assert cloud_status(server.openstack_id) == "ACTIVE"
    assert own_images(job) == []
    assert len(actions_sent(devcloud, server.openstack_id)) >= 3  # stop, createImage, start


def _access_lines(devcloud, server_id) -> list[list[str]]:
    return [line.split() for line in actions_sent(devcloud, server_id)]


def test_the_restart_waits_while_nova_still_shows_the_upload(live_demo):
    """Real Nova clears task_state a while after Glance shows the image active; a
    start sent meanwhile gets a 409. The job waits instead, and never gets one."""
    devcloud = live_demo["clouds"]["devcloud"]
    server = boot(live_demo, "lagging")
    devcloud.set_faults({"task_state_lag": {"server_name": "^lagging$", "seconds": 80}})
    try:
        job = snapshot_create_request(
            server=server, actor=live_demo["users"]["alice"], name="lagging-1", restart=True
        )
        job = wait_for_job(job, timeout=60)
    finally:
        devcloud.set_faults({})
    assert job.status == Job.Status.SUCCEEDED, job.error
    settle = steps_of(job, "forward")["settle"]
    assert settle["runs"] > 1  # it waited for Nova
    statuses = [fields[3] for fields in _access_lines(devcloud, server.openstack_id)]
    assert statuses == ["202", "202", "202"]  # stop, createImage, start: no 409


def test_a_start_that_fails_once_is_asked_again(live_demo):
    devcloud = live_demo["clouds"]["devcloud"]
    server = boot(live_demo, "start-once")
    devcloud.set_faults({"start_error": {"server_name": "^start-once$", "count": 1}})
    try:
        job = snapshot_create_request(
            server=server, actor=live_demo["users"]["alice"], name="start-once-1", restart=True
        )
        job = wait_for_job(job, timeout=60)
    finally:
        devcloud.set_faults({})
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.state["start_attempts"] == 2
    assert cloud_status(server.openstack_id) == "ACTIVE"


def test_a_start_the_cloud_keeps_refusing_keeps_the_snapshot_and_says_so_first(live_demo):
    devcloud = live_demo["clouds"]["devcloud"]
    server = boot(live_demo, "start-never")
    devcloud.set_faults({"start_error": {"server_name": "^start-never$", "message": "host down"}})
    try:
        job = snapshot_create_request(
            server=server, actor=live_demo["users"]["alice"], name="start-never-1", restart=True
        )
        job = wait_for_job(job, timeout=90)
    finally:
        devcloud.set_faults({})
    assert job.status == Job.Status.FAILED
    lines = english(job.error).splitlines()
    assert lines[0].startswith("start-never is left STOPPED: the cloud did not start the instance")
    assert lines[1].startswith("Waiting for ACTIVE:")
    undo = steps_of(job)
    assert english(undo["undo_image"]["detail"]) == "the snapshot is complete and was kept"
    snapshot = cloud.image_get("devcloud", image_id=job.state["image_id"])
    assert snapshot.status == "active"
    assert cloud_status(server.openstack_id) == "SHUTOFF"
    # The event log on the instance page says it first, too.
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(live_demo["users"]["alice"])
    mirrored = Server.objects.get(openstack_id=server.openstack_id)
    page = client.get(reverse("instances:instance-detail", args=[mirrored.pk])).content.decode()
    assert "start-never is left STOPPED" in page
