"""The portal's own flows on the stock OpenStack services (Keystone, Glance, Placement,
Nova, Neutron from PyPI, `make openstack`), through the real stack: the services of
the portal, the test database, Redis and a Celery worker with beat whose clock runs
20 s ahead of the cloud's. What devcloud lets pass but a real cloud does not shows
here."""

from __future__ import annotations

import csv
import io

import pytest

from images.models import BootTest, Image
from images.selectors import image_catalog_property
from instances.launch import instance_launch_request
from instances.launch_rules import launch_check
from instances.models import Flavor, Server
from instances.services import server_delete_request, server_power_request, server_refresh
from operations.sync import site_sync
from portal import cloud
from portal.errors import ActionRefused
from portal.models import Job
from portal.texts import english
from snapshots.models import Snapshot
from snapshots.services import (
    snapshot_create_many_request,
    snapshot_create_request,
    snapshot_delete_request,
    snapshot_verify_request,
)
from tests.conftest import wait_for_job
from tests.integration.test_gateway import wait_until
from tests.openstack.portal_stack import SITE
from workshops.models import Workshop
from workshops.services import (
    seat_rows,
    workshop_access_url_set,
    workshop_csv,
    workshop_teardown,
)

JOB_TIMEOUT = 240


def boot(os_portal, suffix: str, *, flavor: str = "de.NBI tiny", project: str = "alpha") -> Server:
    """A fresh ACTIVE server made by the portal's service account, mirrored."""
    site = os_portal["site"]
    made = cloud.server_create(
        SITE, project_id=os_portal["projects"][project].openstack_id,
        name=f"{os_portal['prefix']}-{suffix}",
        flavor_id=Flavor.objects.get(site=site, name=flavor).openstack_id,
        image_id=Image.objects.get(site=site, name="Ubuntu-22.04-LTS").openstack_id,
        metadata={"portal_user": "alice"},
    )  # fmt: skip
    wait_until(lambda: cloud.server_get(SITE, server_id=made.id).status == "ACTIVE", 120)
    return server_refresh(site, openstack_id=made.id)


def snapshot(os_portal, server: Server, suffix: str, **options) -> Job:
    job = snapshot_create_request(
        server=server, actor=os_portal["users"]["alice"],
        name=f"{os_portal['prefix']}-{suffix}", **{"restart": True, **options},
    )  # fmt: skip
    return wait_for_job(job, JOB_TIMEOUT)


def test_a_snapshot_with_restart_and_boot_test(os_portal):
    server = boot(os_portal, "web")
    job = snapshot(os_portal, server, "gold", verify=True)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.state["stopped_by_portal"] is True
    made = Snapshot.objects.get(openstack_id=job.state["image_id"])
    assert made.status == "active"
    assert made.size
    assert made.created_by == os_portal["users"]["alice"]
    assert BootTest.objects.get(openstack_id=made.openstack_id).outcome == "verified"
    assert cloud.server_get(SITE, server_id=server.openstack_id).status == "ACTIVE"
    # Real Nova copied the base image's properties into the snapshot; the portal
    # takes the access URL from the public catalog image it descends from.
    assert made.properties.get("portal_access_url") == "https://{ip}:8787/"
    assert image_catalog_property(made, "portal_access_url") == "https://{ip}:8787/"
    test_servers = [s for s in cloud.server_list(SITE) if s.name.startswith("boot-test-")]
    assert [
        s for s in test_servers if s.metadata.get("portal_boot_test") == made.openstack_id
    ] == []


def test_a_kernel_panic_is_the_boot_tests_verdict(os_portal, knobs):
    server = boot(os_portal, "panics")
    knobs(panic_image_name_regex=f"^{os_portal['prefix']}-broken$")
    job = snapshot(os_portal, server, "broken", verify=True)
    assert job.status == Job.Status.SUCCEEDED, job.error  # the snapshot itself is fine
    verdict = BootTest.objects.get(openstack_id=job.state["image_id"])
    assert verdict.outcome == "failed"
    assert verdict.reason.startswith("Kernel panic")
    assert cloud.server_get(SITE, server_id=server.openstack_id).status == "ACTIVE"


def test_a_silent_upload_longer_than_the_no_progress_limit_completes(os_portal, knobs):
    """Glance shows the image `saving`, no size, the same updated_at, for the whole
    upload; only Nova's task says it runs. 80 s of upload against the worker's 60 s
    no-progress limit: the upload's budget (90 s here) decides, not the silence."""
    knobs(upload_bytes_per_second=100_000, snapshot_bytes=8_000_000)
    server = boot(os_portal, "slow")
    job = snapshot(os_portal, server, "slow-1")
    assert job.status == Job.Status.SUCCEEDED, job.error
    upload = next(s for s in job.steps if s["name"] == "upload")
    assert upload["status"] == "done"
    image = cloud.image_get(SITE, image_id=job.state["image_id"])
    assert image.status == "active"
    assert image.size == 8_000_000


def test_boot_from_a_snapshot_as_a_workshop_of_three_with_csv_and_teardown(os_portal):
    alice, site = os_portal["users"]["alice"], os_portal["site"]
    gold = snapshot(os_portal, boot(os_portal, "course"), "course-gold")
    assert gold.status == Job.Status.SUCCEEDED, gold.error
    plan = launch_check(
        actor=alice, project=os_portal["projects"]["alpha"],
        flavor=Flavor.objects.get(site=site, name="de.NBI tiny"),
        image=Image.objects.get(site=site, openstack_id=gold.state["image_id"]),
        prefix=f"{os_portal['prefix']}-ws", count=3,
        participants=["Anna <anna@example.org>", "Ben", "Jürgen Groß"],
    )  # fmt: skip
    job = wait_for_job(instance_launch_request(actor=alice, plan=plan), JOB_TIMEOUT)
    assert job.status == Job.Status.SUCCEEDED, job.error
    workshop = Workshop.objects.get(launch_job=job)
    rows = seat_rows(workshop)
    assert [(r.seat.machine_name, r.status) for r in rows] == [
        (f"{os_portal['prefix']}-ws-anna", "ACTIVE"),
        (f"{os_portal['prefix']}-ws-ben", "ACTIVE"),
        (f"{os_portal['prefix']}-ws-juergen-gross", "ACTIVE"),
    ]
    table = list(csv.reader(io.StringIO(workshop_csv(workshop))))
    assert table[0] == ["participant", "email", "machine", "status", "ip", "access"]
    # The image's link is only proposed: no link until the organiser confirms it.
    assert workshop.access_url_template == "https://{ip}:8787/"
    assert [row[5] for row in table[1:]] == ["", "", ""]
    workshop_access_url_set(workshop=workshop, actor=alice, template=workshop.access_url_template)
    table = list(csv.reader(io.StringIO(workshop_csv(workshop))))
    assert [row[5] for row in table[1:]] == [f"https://{r.ip}:8787/" for r in rows]
    assert all(r.ip for r in rows)
    teardown = wait_for_job(workshop_teardown(workshop=workshop, actor=alice), JOB_TIMEOUT)
    assert english(teardown.result["summary"]) == "Deleted 3."
    gone = {s.seat.server_openstack_id for s in rows}
    # Nova deletes asynchronously: the servers are `deleting` a moment, then gone.
    wait_until(lambda: not [s for s in cloud.server_list(SITE) if s.id in gone], 60)


def test_snapshot_selected_then_verify_now(os_portal):
    alice = os_portal["users"]["alice"]
    servers = [boot(os_portal, "many-1"), boot(os_portal, "many-2")]
    jobs, plan = snapshot_create_many_request(
        servers=servers, actor=alice, pattern="{instance}-end"
    )
    assert len(jobs) == 2
    assert not plan.skipped
    done = [wait_for_job(job, JOB_TIMEOUT) for job in jobs]
    assert [j.status for j in done] == [Job.Status.SUCCEEDED] * 2, [j.error for j in done]
    made = Snapshot.objects.get(openstack_id=done[0].state["image_id"])
    assert made.name == f"{servers[0].name}-end"
    verify = wait_for_job(snapshot_verify_request(snapshot=made, actor=alice), JOB_TIMEOUT)
    assert verify.status == Job.Status.SUCCEEDED, verify.error
    assert BootTest.objects.get(openstack_id=made.openstack_id).outcome == "verified"


def test_stop_and_start(os_portal):
    alice = os_portal["users"]["alice"]
    server = boot(os_portal, "power")
    stop = wait_for_job(server_power_request(server=server, actor=alice, action="stop"))
    assert stop.status == Job.Status.SUCCEEDED, stop.error
    server.refresh_from_db()
    assert server.status == "SHUTOFF"
    start = wait_for_job(server_power_request(server=server, actor=alice, action="start"))
    assert start.status == Job.Status.SUCCEEDED, start.error
    assert cloud.server_get(SITE, server_id=server.openstack_id).status == "ACTIVE"


def test_both_bulk_deletes(os_portal):
    alice = os_portal["users"]["alice"]
    servers = [boot(os_portal, "del-1"), boot(os_portal, "del-2")]
    made = snapshot(os_portal, servers[0], "del-snap", restart=False)
    assert made.status == Job.Status.SUCCEEDED, made.error
    job, _plan = snapshot_delete_request(
        snapshots=[Snapshot.objects.get(openstack_id=made.state["image_id"])], actor=alice
    )
    assert wait_for_job(job, JOB_TIMEOUT).status == Job.Status.SUCCEEDED, job.error
    with pytest.raises(cloud.NotFound):
        cloud.image_get(SITE, image_id=made.state["image_id"])
    job, _plan = server_delete_request(servers=servers, actor=alice)
    assert wait_for_job(job, JOB_TIMEOUT).status == Job.Status.SUCCEEDED
    ids = {s.openstack_id for s in servers}
    wait_until(lambda: not [s for s in cloud.server_list(SITE) if s.id in ids], 60)


def test_a_server_locked_by_the_operators_is_refused(os_portal):
    """Nova lets the portal's admin token through a lock; the portal refuses itself."""
    server = boot(os_portal, "locked")
    admin = os_portal["cloud"].sdk("openstack-admin")
    admin.compute.lock_server(server.openstack_id, locked_reason="forensics")
    try:
        server = server_refresh(os_portal["site"], openstack_id=server.openstack_id)
        assert server.locked
        assert server.locked_reason == "forensics"
        with pytest.raises(ActionRefused, match="is locked \\(forensics\\)"):
            server_power_request(server=server, actor=os_portal["users"]["alice"], action="stop")
        with pytest.raises(ActionRefused, match="is locked"):
            snapshot_create_request(server=server, actor=os_portal["users"]["alice"], name="x")
    finally:
        admin.compute.unlock_server(server.openstack_id)


def test_with_two_networks_the_launch_asks_and_boots_on_the_chosen_one(os_portal):
    """Nova answers `networks: auto` with 409 "Multiple possible networks found" once
    a project sees two networks: the portal asks instead, and boots on the choice."""
    alice, site, alpha = (
        os_portal["users"]["alice"],
        os_portal["site"],
        os_portal["projects"]["alpha"],
    )
    admin = os_portal["cloud"].sdk("openstack-admin")
    net = admin.network.create_network(
        name=f"{os_portal['prefix']}-lab", project_id=alpha.openstack_id
    )
    admin.network.create_subnet(
        network_id=net.id, ip_version=4, cidr="10.77.0.0/24", project_id=alpha.openstack_id
    )
    try:
        site_sync(site, full=True)
        rule = dict(
            actor=alice, project=alpha, flavor=Flavor.objects.get(site=site, name="de.NBI tiny"),
            image=Image.objects.get(site=site, name="Ubuntu-22.04-LTS"),
            prefix=f"{os_portal['prefix']}-lab-vm", count=1, participants=[],
        )  # fmt: skip
        with pytest.raises(ActionRefused, match="Choose a network"):
            launch_check(**rule)
        plan = launch_check(**rule, network_ids=[net.id])
        job = wait_for_job(instance_launch_request(actor=alice, plan=plan), JOB_TIMEOUT)
        assert job.status == Job.Status.SUCCEEDED, job.error
        (made,) = [s for s in cloud.server_list(SITE) if s.name == f"{os_portal['prefix']}-lab-vm"]
        shown = admin.compute.get_server(made.id)
        assert list(shown.addresses) == [net.name]
        admin.compute.delete_server(made.id)
        admin.compute.wait_for_delete(shown, wait=60)
    finally:
        for port in admin.network.ports(network_id=net.id):
            admin.network.delete_port(port.id)
        admin.network.delete_network(net.id)


def test_a_private_flavor_is_only_for_the_projects_on_its_list(os_portal):
    """de.NBI gpu is shared with alpha only. Nova refuses it to beta's users, but not
    to the portal's service account (admin inside beta): the portal must refuse it.
    beta is never offered it, and a job for beta that names it fails its check
    before Nova is asked."""
    from portal.jobs import job_create

    site, carol = os_portal["site"], os_portal["users"]["carol"]
    gpu = Flavor.objects.get(site=site, name="de.NBI gpu")
    image = Image.objects.get(site=site, name="Ubuntu-22.04-LTS")
    as_service_in_beta = os_portal["cloud"].sdk("openstack", project="beta")
    bypass = as_service_in_beta.compute.post(
        "/servers", microversion="2.73",
        json={"server": {"name": f"{os_portal['prefix']}-bypass", "flavorRef": gpu.openstack_id,
                         "imageRef": image.openstack_id, "networks": "auto"}},
    )  # fmt: skip
    assert bypass.status_code == 202  # what the portal must not rely on Nova to stop
    assert gpu.access_project_ids == [os_portal["projects"]["alpha"].openstack_id]
    with pytest.raises(ActionRefused, match="not available in project beta"):
        launch_check(
            actor=carol, project=os_portal["projects"]["beta"], flavor=gpu, image=image,
            prefix=f"{os_portal['prefix']}-gpu", count=1, participants=[],
        )  # fmt: skip
    job = job_create(
        kind="instances.launch", actor=carol, project=os_portal["projects"]["beta"],
        params={"flavor_pk": gpu.pk, "image_pk": image.pk, "flavor_id": gpu.openstack_id,
                "image_id": image.openstack_id, "names": [f"{os_portal['prefix']}-gpu"],
                "prefix": f"{os_portal['prefix']}-gpu", "participants": []},
    )  # fmt: skip
    job = wait_for_job(job, JOB_TIMEOUT)
    assert job.status == Job.Status.FAILED
    assert "not available in project beta" in english(job.error)
    assert not [s for s in cloud.server_list(SITE) if s.name == f"{os_portal['prefix']}-gpu"]
    # alpha may use it, on the real Nova too.
    alice = os_portal["users"]["alice"]
    plan = launch_check(
        actor=alice, project=os_portal["projects"]["alpha"], flavor=gpu, image=image,
        prefix=f"{os_portal['prefix']}-gpu-a", count=1, participants=[],
    )  # fmt: skip
    launched = wait_for_job(instance_launch_request(actor=alice, plan=plan), JOB_TIMEOUT)
    assert launched.status == Job.Status.SUCCEEDED, launched.error
