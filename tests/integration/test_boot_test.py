"""Snapshots known to boot, through a real worker on devcloud: a boot test starts a
throwaway instance from the snapshot, reads its console, and deletes it again,
whatever the outcome, also after a worker crash in the middle. Only what the image
does says "does not boot"; when the test itself cannot tell (the cloud refuses or
cannot schedule the instance, a slow build, a silent console) the verdict is "not
tested", and the snapshot job succeeds."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
from django.urls import reverse

from images.models import BootTest
from instances.models import Server
from portal import cloud
from portal.jobs import jobs_recover_stuck
from portal.models import Job
from portal.texts import english
from snapshots.models import Snapshot
from snapshots.services import snapshot_create_request, snapshot_verify_request
from tests.conftest import wait_for_job
from tests.integration.test_gateway import wait_until
from tests.integration.test_job_failures import crashable_worker  # noqa: F401  (fixture)
from tests.integration.test_snapshot_job import boot

pytestmark = pytest.mark.worker


def instances_named(name: str) -> list:
    return [s for s in cloud.server_list("devcloud") if s.name == name and not s.is_deleted]


def page_text(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


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
    assert test.outcome == "verified"
    assert test.flavor_name == "de.NBI tiny"
    assert test.boot_seconds is not None
    assert "login:" in test.console_tail
    assert english(steps(job)["verify_console"]["detail"]).startswith("the system came up in")
    assert english(job.result["boot_test"]) == "boots"
    assert instances_named(f"boot-test-{job.pk}") == []
    # The throwaway instance was the portal's own, and is marked deleted in the mirror.
    made = Server.objects.get(name=f"boot-test-{job.pk}")
    assert made.deleted_at is not None
    assert made.created_by == alice


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
        assert english(test.reason).startswith("the test instance went to ERROR")
    assert english(job.result["boot_test"]).startswith("does not boot — ")
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


def snapshot_with_boot_test(demo, name: str, faults: dict, *, timeout: float = 90) -> Job:
    """Snapshot a fresh instance as `name`-1 with a boot test, under these devcloud faults."""
    devcloud = demo["clouds"]["devcloud"]
    server = boot(demo, name)
    devcloud.set_faults(faults)
    try:
        job = snapshot_create_request(
            server=server, actor=demo["users"]["alice"], name=f"{name}-1", restart=True,
            verify=True,
        )  # fmt: skip
        return wait_for_job(job, timeout=timeout)
    finally:
        devcloud.set_faults({})
        # alpha's quota is shared by the session's tests (a browser test's workshop)
        cloud.server_delete("devcloud", server_id=server.openstack_id)


def assert_not_tested(job: Job, *reason_parts: str) -> None:
    """The job succeeded with a good snapshot; the verdict says why it was not tested."""
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert Snapshot.objects.get(openstack_id=job.state["image_id"]).status == "active"
    test = BootTest.objects.get(openstack_id=job.state["image_id"])
    assert test.outcome == "skipped"
    for part in reason_parts:
        assert part in english(test.reason)
    assert english(job.result["boot_test"]) == f"not tested — {english(test.reason)}"
    assert instances_named(f"boot-test-{job.pk}") == []


QUOTA_403 = "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"


@pytest.mark.parametrize(
    ("name", "faults", "reason_parts"),
    [
        (
            "verify-refused",
            {"http": [{"method": "POST", "path": r"^/compute/v2\.1/servers$", "status": 403,
                       "message": QUOTA_403, "count": 1}]},
            ("the cloud refused to create a test instance", QUOTA_403),
        ),
        (
            "verify-no-host",
            {"boot_error": {"server_name": "^boot-test-"}},
            ("went to ERROR", "No valid host was found"),
        ),
    ],
)  # fmt: skip
def test_a_boot_test_the_cloud_refuses_is_not_tested_and_the_job_succeeds(
    live_demo, client, name, faults, reason_parts
):
    job = snapshot_with_boot_test(live_demo, name, faults)
    assert_not_tested(job, *reason_parts)
    # The job page, the snapshot's row and the email say so, with the reason.
    said = f"Boot test: {english(job.result['boot_test'])}"
    client.force_login(live_demo["users"]["alice"])
    assert said in page_text(client.get(reverse("job-detail", args=[job.pk])))
    listed = client.get(reverse("snapshots:snapshot-list"), {"name": job.params["name"]})
    assert said in page_text(listed)
    mail = "".join(m.read_text() for m in live_demo["worker"]["mail_dir"].glob("*.log"))
    ready = mail[mail.index(f"Your snapshot “{job.params['name']}” is active") :]
    assert said in ready.split("-" * 79)[0]  # that mail


@pytest.fixture
def impatient_worker(live_demo, tmp_path):
    """A worker of the test's own whose boot tests give up after 8 s: longer than its
    no-progress limit (6 s), shorter than the session worker's 10 min (paused meanwhile)."""
    from scripts.stack import start_worker, stop_process
    from tests.conftest import _wait_for_worker

    session = live_demo["worker"]["process"]
    os.kill(session.pid, signal.SIGSTOP)
    env = {**live_demo["worker"]["env"], "JOB_BOOT_TEST_SECONDS": "8"}
    log_path = tmp_path / "impatient-worker.log"
    process = start_worker(env, concurrency=1, log_path=log_path, include=("tests.job_kinds",))
    try:
        _wait_for_worker(live_demo["worker"]["redis_url"], process, log_path)
        yield process
    finally:
        stop_process(process)
        os.kill(session.pid, signal.SIGCONT)


def test_an_image_with_an_empty_serial_console_is_not_tested(live_demo, impatient_worker):
    faults = {"boot_panic": {"image_name": "^verify-silent-1$", "mode": "silent"}}
    job = snapshot_with_boot_test(live_demo, "verify-silent", faults)
    assert_not_tested(job, "the serial console stayed empty for 8 s after ACTIVE")


def test_a_build_slower_than_the_limit_is_not_tested(live_demo, impatient_worker):
    faults = {"stuck_task": {"server_name": "^boot-test-", "task_state": "spawning"}}
    job = snapshot_with_boot_test(live_demo, "verify-slow", faults)
    assert_not_tested(job, "the test instance was not ACTIVE within 8 s", "BUILD, spawning")
