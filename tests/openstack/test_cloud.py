"""Smoke tests of the loopback OpenStack cloud through openstacksdk (not the portal).

They show the real-Nova behaviours the portal depends on: networks="auto",
stop, createImage with a real upload, snapshot properties inherited from the
base image, console logs (and panics), "Multiple possible networks found",
locks, and private flavors.
"""

from __future__ import annotations

import time

import pytest
from openstack import exceptions

from tests.openstack.loopback import wait_for_status

pytestmark = pytest.mark.openstack

TINY = "de.NBI tiny"
UBUNTU = "Ubuntu-22.04-LTS"


def boot(conn, cloud, name, *, flavor=TINY, image=UBUNTU, cleanup=None):
    server = conn.compute.create_server(
        name=name,
        flavor_id=cloud.flavors[flavor],
        image_id=cloud.images[image],
        networks="auto",
    )
    if cleanup is not None:
        cleanup["servers"].append(server.id)
    return wait_for_status(conn, server, "ACTIVE", timeout=60)


@pytest.fixture
def alpha(loopback_openstack):
    """portal-service re-scoped to project alpha (admin role there)."""
    return loopback_openstack.sdk("openstack", project="alpha")


def test_boot_with_auto_network_stop_and_snapshot(
    loopback_openstack, alpha, cleanup, knobs, unique_name
):
    server = boot(alpha, loopback_openstack, unique_name("snap"), cleanup=cleanup)
    assert server.status == "ACTIVE"
    assert list(server.addresses) == ["public-net"]

    alpha.compute.stop_server(server)
    server = wait_for_status(alpha, server, "SHUTOFF", timeout=30)

    # A slow upload, so that the task states can be watched: 1 MiB at 256 KiB/s.
    knobs(upload_bytes_per_second=262144, snapshot_bytes=1048576)
    image = alpha.compute.create_server_image(server, unique_name("image"))
    cleanup["images"].append(image.id)
    seen_tasks, seen_statuses = [], []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        task = alpha.compute.get_server(server.id).task_state
        if task and task not in seen_tasks:
            seen_tasks.append(task)
        image = alpha.image.get_image(image.id)
        if image.status not in seen_statuses:
            seen_statuses.append(image.status)
        if image.status == "active" and task is None:
            break
        assert image.status in ("queued", "saving", "active"), image.status
        time.sleep(0.2)
    assert image.status == "active"
    assert image.size == 1048576
    assert image.checksum
    assert "image_uploading" in seen_tasks, seen_tasks
    assert "saving" in seen_statuses, seen_statuses
    # Nova copies the base image's properties into the snapshot.
    assert image.properties.get("portal_access_url") == "https://{ip}:8787/"
    assert image.os_distro == "ubuntu"
    assert image.properties.get("image_type") == "snapshot"
    assert image.instance_uuid == server.id


def test_console_login_prompt_and_panic(loopback_openstack, alpha, cleanup, knobs, unique_name):
    server = boot(alpha, loopback_openstack, unique_name("console"), cleanup=cleanup)
    output = alpha.compute.get_server_console_output(server)["output"]
    assert output.rstrip().endswith("ubuntu login:"), output[-300:]

    knobs(panic_server_name_regex=r"^ostest-console-")
    output = alpha.compute.get_server_console_output(server)["output"]
    assert "Kernel panic - not syncing: VFS: Unable to mount root fs" in output
    assert "login:" not in output

    knobs(panic_server_name_regex=None, panic_image_name_regex=r"^Ubuntu")
    output = alpha.compute.get_server_console_output(server)["output"]
    assert "Kernel panic - not syncing" in output


def test_two_networks_make_auto_ambiguous(loopback_openstack, cleanup, unique_name):
    # In a project of its own, so that tests running meanwhile in alpha or beta
    # (this session's or another's) keep booting with networks="auto".
    admin = loopback_openstack.sdk("openstack-admin")
    project = admin.identity.create_project(name=unique_name("project"), domain_id="default")
    network = None
    try:
        portal = admin.identity.find_user("portal-service", domain_id="default")
        admin.identity.assign_project_role_to_user(
            project, portal, admin.identity.find_role("admin")
        )
        network = admin.network.create_network(name=unique_name("net"), project_id=project.id)
        cleanup["networks"].append(network.id)
        admin.network.create_subnet(
            network_id=network.id, ip_version=4, cidr="10.30.0.0/24", name=unique_name("subnet")
        )
        scoped = loopback_openstack.sdk("openstack", project=project.name)
        assert sorted(n.name for n in scoped.network.networks()) == sorted(
            ["public-net", network.name]
        )
        # Two statements (PT012): a server made by mistake is still cleaned up.
        with pytest.raises(exceptions.HttpException) as raised:  # noqa: PT012
            server = scoped.compute.create_server(
                name=unique_name("ambiguous"),
                flavor_id=loopback_openstack.flavors[TINY],
                image_id=loopback_openstack.images[UBUNTU],
                networks="auto",
            )
            cleanup["servers"].append(server.id)
        assert raised.value.status_code == 409
        assert "Multiple possible networks found" in str(raised.value)
        # A member of another project still sees the one shared network.
        beta_user = loopback_openstack.sdk("openstack-beta-user")
        assert [n.name for n in beta_user.network.networks()] == ["public-net"]
    finally:
        if network is not None:
            admin.network.delete_network(network.id, ignore_missing=True)
        admin.identity.delete_project(project)


def test_lock_stops_members_but_not_admins(loopback_openstack, alpha, cleanup, unique_name):
    server = boot(alpha, loopback_openstack, unique_name("lock"), cleanup=cleanup)
    admin = loopback_openstack.sdk("openstack-admin")
    admin.compute.lock_server(server, locked_reason="maintenance")
    try:
        member = loopback_openstack.sdk("openstack-alpha-user")
        with pytest.raises(exceptions.ConflictException) as raised:
            member.compute.stop_server(server)
        assert raised.value.status_code == 409
        assert "locked" in str(raised.value)
        # portal-service has the admin role on alpha: Nova lets it through.
        alpha.compute.stop_server(server)
        wait_for_status(alpha, server, "SHUTOFF", timeout=30)
        assert alpha.compute.get_server(server.id).is_locked
    finally:
        admin.compute.unlock_server(server)


def test_private_gpu_flavor(loopback_openstack, cleanup, unique_name):
    gpu = loopback_openstack.flavors["de.NBI gpu"]
    alpha_user = loopback_openstack.sdk("openstack-alpha-user")
    beta_user = loopback_openstack.sdk("openstack-beta-user")
    assert "de.NBI gpu" in {f.name for f in alpha_user.compute.flavors()}
    assert "de.NBI gpu" not in {f.name for f in beta_user.compute.flavors()}
    # Two statements (PT012): a server made by mistake is still cleaned up.
    with pytest.raises(exceptions.HttpException) as raised:  # noqa: PT012
        server = beta_user.compute.create_server(
            name=unique_name("gpu"),
            flavor_id=gpu,
            image_id=loopback_openstack.images[UBUNTU],
            networks="auto",
        )
        cleanup["servers"].append(server.id)
    assert raised.value.status_code in (400, 404)
    assert "could not be found" in str(raised.value)
    server = boot(
        alpha_user, loopback_openstack, unique_name("gpu"), flavor="de.NBI gpu", cleanup=cleanup
    )
    assert server.flavor.name == "de.NBI gpu"


def test_highmem_flavor_is_schedulable(loopback_openstack, cleanup, unique_name):
    beta = loopback_openstack.sdk("openstack", project="beta")
    server = boot(
        beta,
        loopback_openstack,
        unique_name("highmem"),
        flavor="de.NBI highmem",
        image="CentOS-7",
        cleanup=cleanup,
    )
    assert server.flavor.vcpus == 64
    output = beta.compute.get_server_console_output(server)["output"]
    assert output.rstrip().endswith("login:")


def test_seeded_catalog(loopback_openstack):
    cloud = loopback_openstack
    assert set(cloud.projects) == {"alpha", "beta", "portal"}
    assert set(cloud.flavors) == {"de.NBI tiny", "de.NBI small", "de.NBI highmem", "de.NBI gpu"}
    admin = cloud.sdk("openstack-admin")
    for name, image_id in cloud.images.items():
        image = admin.image.get_image(image_id)
        assert (image.name, image.status, image.visibility) == (name, "active", "public")
        assert image.size > 100_000
    ubuntu = admin.image.get_image(cloud.images[UBUNTU])
    assert ubuntu.properties["portal_access_url"] == "https://{ip}:8787/"
    assert ubuntu.os_version == "22.04"
    net = admin.network.get_network(cloud.networks["public-net"])
    assert net.is_shared
    tiny = admin.compute.get_flavor(cloud.flavors[TINY])
    assert (tiny.vcpus, tiny.ram, tiny.disk) == (1, 1024, 10)
