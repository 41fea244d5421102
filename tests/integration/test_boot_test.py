"""Snapshots known to boot, through a real worker on devcloud: a boot test starts a
throwaway instance from the snapshot, reads its console, and deletes it again,
whatever the outcome, also after a worker crash in the middle."""

from __future__ import annotations

import os
import signal
import time

import pytest

from images.models import BootTest
from instances.models import Server
from portal import cloud
from portal.jobs import jobs_recover_stuck
from portal.models import Job
from snapshots.models import Snapshot
from snapshots.services import snapshot_create_request, snapshot_verify_request
from tests.conftest import wait_for_job
from tests.integration.test_gateway import wait_until
from tests.integration.test_job_failures import crashable_worker  # noqa: F401  (fixture)
from tests.integration.test_snapshot_job import boot

pytestmark = pytest.mark.worker


def instances_named(name: str) -> list:
    return [s for s in cloud.server_list("devcloud") if s.name == name and not s.is_deleted]


def steps(job) -> dict[str, dict]:
    return {s["name"]: s for s in job.steps if s.get("phase", "forward") == "forward"}


def test_a_snapshot_that_boots_is_verified_and_the_test_instance_is_gone(live_demo):
    alice = live_demo["users"]["alice"]
    server = boot(live_demo, "verify-ok")
    job = snapshot_create_request(
        server=server, actor=alice, name="verify-ok-1", restart=True, verify=True
    )
    job = wait_for_job(job, timeout=90)
    assert job.status == Job.Status.SUCCEEDED, job.error
    test = BootTest.objects.get(openstack_id=job.state["image_id"])
    assert test.outcome == "verified" and test.flavor_name == "de.NBI tiny"
    assert test.boot_seconds is not None and "login:" in test.console_tail
    assert steps(job)["verify_console"]["detail"].startswith("the system came up in")
    assert job.result["boot_test"] == "the snapshot boots"
    assert instances_named(f"boot-test-{job.pk}") == []
    # The throwaway instance was the portal's own, and is marked deleted in the mirror.
    made = Server.objects.get(name=f"boot-test-{job.pk}")
    assert made.deleted_at is not None and made.created_by == alice


@pytest.mark.parametrize("mode", ["panic", "error"])
def test_a_snapshot_that_does_not_boot_is_marked_and_cleaned_up(live_demo, mode):
    alice = live_demo["users"]["alice"]
    devcloud = live_demo["clouds"]["devcloud"]
    server = boot(live_demo, f"verify-bad-{mode}")
    devcloud.set_faults({"boot_panic": {"image_name": f"^verify-bad-{mode}-1$", "mode": mode}})
    try:
        job = snapshot_create_request(
            server=server, actor=alice, name=f"verify-bad-{mode}-1", restart=True, verify=True
        )
        job = wait_for_job(job, timeout=90)
    finally:
        devcloud.set_faults({})
    assert job.status == Job.Status.SUCCEEDED, job.error  # the snapshot itself is fine
    test = BootTest.objects.get(openstack_id=job.state["image_id"])
    assert test.outcome == "failed"
    if mode == "panic":
        assert test.reason.startswith("Kernel panic - not syncing")
        assert "Kernel panic" in test.console_tail
    else:
        assert test.reason.startswith("the test instance went to ERROR")
    assert job.result["boot_test"].startswith("it does not boot")
    assert instances_named(f"boot-test-{job.pk}") == []
    assert cloud.server_get("devcloud", server_id=server.openstack_id).status == "ACTIVE"


def test_the_test_instance_is_gone_after_a_worker_crash_mid_test(
    live_demo,
    crashable_worker,  # noqa: F811
):
    alice = live_demo["users"]["alice"]
    snapshot = Snapshot.objects.filter(
        project=live_demo["projects"]["alpha"], status="active", deleted_at__isnull=True,
        min_disk__lte=50,
    ).first()  # fmt: skip
    worker = crashable_worker()
    job = snapshot_verify_request(snapshot=snapshot, actor=alice)
    wait_until(lambda: Job.objects.get(pk=job.pk).state.get("boot_test", {}).get("server_id"), 60)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    crashable_worker()
    deadline = time.monotonic() + 90
    while not Job.objects.get(pk=job.pk).is_finished and time.monotonic() < deadline:
        jobs_recover_stuck()
        time.sleep(1)
    job = wait_for_job(job, timeout=5)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert BootTest.objects.get(openstack_id=snapshot.openstack_id).outcome == "verified"
    assert instances_named(f"boot-test-{job.pk}") == []
