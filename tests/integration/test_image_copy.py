"""Copying an image to another site, on the real stack: two devcloud sites over HTTP,
Redis, and a worker of its own consuming the "transfer" queue. The bytes stream
from one Glance to the other; the copy counts only when the checksums match; a
worker killed half-way leaves one image in the end, and a failed copy none."""

from __future__ import annotations

import hashlib
import os
import signal
import time

import psutil
import pytest
from django.urls import reverse

from images.copy import COPIED_FROM_KEY, ImageCopy, image_copy_request
from images.models import Image
from images.services import image_refresh
from portal import cloud
from portal.jobs import JOB_KEY, job_key, jobs_recover_stuck
from portal.models import Job, Project
from portal.texts import english
from tests.conftest import sdk_connection, wait_for_job
from tests.integration.test_gateway import wait_until

pytestmark = pytest.mark.worker
MIB = 1024 * 1024


@pytest.fixture
def transfer_worker(live_demo, tmp_path):
    """Workers of the test's own on the "transfer" queue (the session's worker
    consumes only the default one): start() one, as many as the test needs."""
    from scripts.stack import start_worker, stop_process
    from tests.conftest import _wait_for_worker

    env = dict(live_demo["worker"]["env"])
    workers = []

    def start():
        log_path = tmp_path / f"transfer-{len(workers)}.log"
        process = start_worker(env, concurrency=1, log_path=log_path, queues=("transfer",))
        _wait_for_worker(live_demo["worker"]["redis_url"], process, log_path)
        workers.append(process)
        return process

    yield start
    for process in workers:
        stop_process(process)


def source_image(live_demo, *, name: str, size: int, project="alpha", site="devcloud") -> Image:
    """A snapshot-like image with real bytes in a project, as Nova would leave one:
    its server's properties, a marker of the job that made it."""
    project = Project.objects.get(name=project, site__name=site)
    made = cloud.image_create(
        site, project_id=project.openstack_id, name=name, disk_format="qcow2",
        container_format="bare", min_disk=7, min_ram=512,
        properties={
            "image_type": "snapshot", "instance_uuid": "0f0e0d0c-aaaa-bbbb-cccc-000000000001",
            "base_image_ref": "b" * 8, "boot_roles": "member", "owner_user_name": "alice",
            "os_distro": "ubuntu", "portal_job": "someone-else-job-1", "hw_rng_model": "virtio",
        },
        tags=("rstudio",),
    )  # fmt: skip
    data = bytes(range(256)) * (size // 256)
    conn = sdk_connection(live_demo["clouds"]["pair"], name=site)
    put = conn.image.put(
        f"/images/{made.id}/file", data=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert put.status_code == 204, put.text
    row = image_refresh(project.site, openstack_id=made.id, made_for=project)
    assert row is not None
    assert row.status == "active"
    return row


def own_copies(job: Job) -> list[cloud.CloudImage]:
    return [
        i for i in cloud.image_find_by_property(job.site.name, key=JOB_KEY, value=job_key(job))
        if i.status not in ("deleted", "pending_delete")
    ]  # fmt: skip


@pytest.fixture
def pair(live_demo, devcloud_pair):
    live_demo["clouds"]["pair"] = devcloud_pair
    return devcloud_pair


def test_a_snapshot_is_copied_to_the_other_site_and_back(live_demo, pair, transfer_worker, client):
    transfer_worker()
    alice = live_demo["users"]["alice"]
    original = source_image(live_demo, name="copy-there-and-back", size=6 * MIB)
    gamma = Project.objects.get(name="gamma", site__name="devcloud2")
    job = wait_for_job(image_copy_request(image=original, actor=alice, target=gamma), 60)
    assert job.status == Job.Status.SUCCEEDED, job.error
    copy = cloud.image_get("devcloud2", image_id=job.result["image_id"])
    source = cloud.image_get("devcloud", image_id=original.openstack_id)
    assert (copy.hash_value, copy.size, copy.status) == (source.hash_value, 6 * MIB, "active")
    assert copy.owner == gamma.openstack_id
    assert copy.visibility == "private"
    assert (copy.min_disk, copy.min_ram, copy.disk_format) == (7, 512, "qcow2")
    # Properties of the bytes are carried; those of the source's server and job are not.
    assert copy.properties["image_type"] == "snapshot"
    assert copy.properties["os_distro"] == "ubuntu"
    assert copy.tags == ("rstudio",)  # the tool tag the catalog and the launch page show
    for key in ("instance_uuid", "base_image_ref", "boot_roles", "owner_user_name"):
        assert key not in copy.properties
    assert copy.properties[JOB_KEY] == job_key(job)  # this job's marker, not the source's
    assert copy.properties[COPIED_FROM_KEY] == f"devcloud:{original.openstack_id}"
    row = Image.objects.get(site__name="devcloud2", openstack_id=copy.id)
    assert (row.copied_from_site.name, row.copied_from_image_id) == (
        "devcloud",
        original.openstack_id,
    )
    assert row.is_snapshot
    assert row.project == gamma
    assert row.created_by == alice
    # A workshop (or one machine) at the other site can start from the copy.
    client.force_login(alice)
    new = client.get(reverse("instances:instance-new"), {"project": gamma.pk, "tab": "snapshots"})
    assert new.status_code == 200
    assert f'value="{row.pk}"'.encode() in new.content

    alpha = Project.objects.get(name="alpha", site__name="devcloud")
    back = wait_for_job(image_copy_request(image=row, actor=alice, target=alpha), 60)
    assert back.status == Job.Status.SUCCEEDED, back.error
    returned = cloud.image_get("devcloud", image_id=back.result["image_id"])
    assert returned.hash_value == source.hash_value
    assert returned.properties[COPIED_FROM_KEY] == f"devcloud2:{copy.id}"


def test_a_worker_killed_mid_copy_is_replaced_and_one_image_is_left(
    live_demo, pair, transfer_worker
):
    alice = live_demo["users"]["alice"]
    original = source_image(live_demo, name="copy-killed", size=48 * MIB)
    gamma = Project.objects.get(name="gamma", site__name="devcloud2")
    target_cloud = pair["devcloud2"]
    # The target's store takes 16 MiB/s: the copy streams for about 3 s.
    target_cloud.set_faults(
        {"image_upload": {"image_name": "^copy-killed$", "bytes_per_second": 16 * MIB}}
    )
    session = live_demo["worker"]["process"]
    os.kill(session.pid, signal.SIGSTOP)  # only transfer workers may move the copy
    try:
        worker = transfer_worker()
        job = image_copy_request(image=original, actor=alice, target=gamma)
        wait_until(
            lambda: any(i.status == "saving" for i in own_copies(Job.objects.get(pk=job.pk))), 30
        )
        for child in psutil.Process(worker.pid).children(recursive=True):
            child.kill()
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        job.refresh_from_db()
        assert not job.is_finished
        transfer_worker()
        # The sweep (every few seconds in production) hands the job on once its
        # lease has run out.
        deadline = time.monotonic() + 60
        while not Job.objects.get(pk=job.pk).is_finished and time.monotonic() < deadline:
            jobs_recover_stuck()
            time.sleep(1)
        job = wait_for_job(job, 60)
    finally:
        target_cloud.set_faults({})
        os.kill(session.pid, signal.SIGCONT)
    assert job.status == Job.Status.SUCCEEDED, job.error
    left = own_copies(job)
    assert [i.id for i in left] == [job.result["image_id"]]
    assert left[0].hash_value == hashlib.sha512(bytes(range(256)) * (48 * MIB // 256)).hexdigest()
    assert job.state["attempts"] >= 2


def test_a_checksum_mismatch_fails_the_copy_and_leaves_nothing(live_demo, pair, transfer_worker):
    transfer_worker()
    original = source_image(live_demo, name="copy-corrupt", size=2 * MIB)
    gamma = Project.objects.get(name="gamma", site__name="devcloud2")
    pair["devcloud2"].set_faults(
        {"image_upload": {"image_name": "^copy-corrupt$", "corrupt": True}}
    )
    try:
        job = image_copy_request(image=original, actor=live_demo["users"]["alice"], target=gamma)
        job = wait_for_job(job, 60)
    finally:
        pair["devcloud2"].set_faults({})
    assert job.status == Job.Status.FAILED
    assert "checksum mismatch" in english(job.error)
    assert own_copies(job) == []
    named = [i for i in cloud.image_list("devcloud2") if i.name == "copy-corrupt"]
    assert [i.status for i in named if i.status not in ("deleted",)] == []


def test_a_member_without_a_project_at_another_site_gets_no_choice_and_a_forged_post_no_job(
    demo, client
):
    bob = demo["users"]["bob"]  # alpha (devcloud) only
    original = Image.objects.filter(
        site__name="devcloud", is_snapshot=True, project__name="alpha"
    ).first()
    assert original is not None
    client.force_login(bob)
    url = reverse("images:image-copy", kwargs={"image_id": original.pk})
    page = client.get(url)
    assert page.status_code == 200
    assert b'id="no-copy-targets"' in page.content
    assert b'name="target"' not in page.content
    gamma = Project.objects.get(name="gamma", site__name="devcloud2")
    before = Job.objects.filter(kind=ImageCopy.name).count()
    forged = client.post(url, {"target": gamma.pk})
    assert forged.status_code == 403
    same_site = client.post(url, {"target": original.project.pk})
    assert same_site.status_code in (400, 403)
    assert client.post(url, {"target": "x1"}).status_code == 400
    assert Job.objects.filter(kind=ImageCopy.name).count() == before


def test_a_copy_asked_to_be_boot_tested_starts_the_boot_test_of_the_copy(
    live_demo, pair, transfer_worker
):
    from images.models import BootTest

    transfer_worker()
    alice = live_demo["users"]["alice"]
    original = source_image(live_demo, name="copy-then-boot", size=1 * MIB)
    gamma = Project.objects.get(name="gamma", site__name="devcloud2")
    job = image_copy_request(image=original, actor=alice, target=gamma, boot_test=True)
    job = wait_for_job(job, 60)
    assert job.status == Job.Status.SUCCEEDED, job.error
    # Started once the copy has ended (Kind.on_finished), a moment after "succeeded".
    wait_until(lambda: "boot_test" in Job.objects.get(pk=job.pk).result, 10)
    job.refresh_from_db()
    assert english(job.result["boot_test"]).startswith("job #"), job.result
    verify = Job.objects.get(pk=int(english(job.result["boot_test"]).removeprefix("job #")))
    assert verify.target_image_id == job.result["image_id"]
    assert verify.site.name == "devcloud2"
    verify = wait_for_job(verify, 120)
    assert BootTest.objects.filter(
        site__name="devcloud2", openstack_id=job.result["image_id"]
    ).exists()


def test_a_seeded_snapshot_of_the_demo_copies_with_what_its_download_holds(
    live_demo, pair, transfer_worker
):
    """The demo's snapshots (devcloud seeds them with a plausible size of GBs and a
    short stand-in for data) copy as a user would try it: the copy holds what the
    source's download announced and sent, with the source's hash."""
    transfer_worker()
    alice = live_demo["users"]["alice"]
    # Any seeded snapshot of alpha the session's earlier tests left (all are GBs).
    seeded = Image.objects.filter(
        site__name="devcloud", project__name="alpha", is_snapshot=True, status="active",
        deleted_at__isnull=True, size__gt=64 * MIB,
    ).first()  # fmt: skip
    assert seeded is not None
    assert seeded.size > 64 * MIB  # a plausible size, more than devcloud's data holds
    gamma = Project.objects.get(name="gamma", site__name="devcloud2")
    job = wait_for_job(image_copy_request(image=seeded, actor=alice, target=gamma), 60)
    assert job.status == Job.Status.SUCCEEDED, job.error
    copy = cloud.image_get("devcloud2", image_id=job.result["image_id"])
    source = cloud.image_get("devcloud", image_id=seeded.openstack_id)
    download = sdk_connection(pair, name="devcloud").image.get(
        f"/images/{seeded.openstack_id}/file"
    )
    assert copy.hash_value == source.hash_value
    assert copy.size == len(download.content)
