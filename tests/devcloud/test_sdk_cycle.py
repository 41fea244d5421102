"""The whole server/snapshot cycle through openstacksdk, as the portal drives it."""

import openstack
import pytest


@pytest.fixture
def conn(fresh_cloud):
    cloud = fresh_cloud()
    connection = openstack.connect(**cloud.admin_credentials)
    yield connection
    connection.close()


def test_sdk_full_cycle_as_admin_scoped_to_alpha(conn):
    alpha = conn.connect_as_project("alpha")
    alpha_id = alpha.current_project_id
    server = alpha.compute.find_server("alpha-worker-01", ignore_missing=False)

    alpha.compute.stop_server(server)
    server = alpha.compute.wait_for_server(server, status="SHUTOFF", interval=0.05, wait=20)
    assert server.vm_state == "stopped"
    assert server.power_state == 4
    alpha.compute.start_server(server)
    server = alpha.compute.wait_for_server(server, status="ACTIVE", interval=0.05, wait=20)

    image = alpha.compute.create_server_image(
        server, "sdk-snap", metadata={"k": "v"}, wait=True, timeout=30
    )
    image = alpha.image.get_image(image.id)
    assert image.status == "active"
    assert image.owner == alpha_id
    assert image.properties["image_type"] == "snapshot"
    assert image.instance_uuid == server.id
    assert image.properties["k"] == "v"
    assert image.visibility == "private"

    flavor = alpha.compute.find_flavor("de.NBI small", ignore_missing=False)
    created = alpha.compute.create_server(
        name="sdk-vm", image_id=image.id, flavor_id=flavor.id, networks="auto"
    )
    created = alpha.compute.wait_for_server(created, status="ACTIVE", interval=0.05, wait=20)
    assert created.project_id == alpha_id
    assert created.image.id == image.id

    alpha.compute.delete_server(created)
    alpha.compute.wait_for_delete(created, interval=0.05, wait=20)
    assert alpha.compute.find_server("sdk-vm") is None

    alpha.image.delete_image(image)
    with pytest.raises(openstack.exceptions.NotFoundException):
        alpha.image.get_image(image.id)


def test_cloud_layer_create_server_body_is_accepted(conn):
    alpha = conn.connect_as_project("alpha")
    server = alpha.create_server(
        "cloud-layer", image="Debian-12", flavor="de.NBI small", wait=False, auto_ip=False
    )
    try:
        server = alpha.compute.wait_for_server(server, status="ACTIVE", interval=0.05, wait=20)
        assert server.addresses["private"][0]["version"] == 4
    finally:
        alpha.compute.delete_server(server.id)


def test_snapshot_booted_server_inherits_disk_use(conn):
    alpha = conn.connect_as_project("alpha")
    web = alpha.compute.find_server("alpha-web-01", ignore_missing=False)
    first = alpha.compute.create_server_image(web, "gen1")
    first = alpha.image.wait_for_status(first, "active", interval=0.05, wait=20)
    flavor = alpha.compute.find_flavor("de.NBI small", ignore_missing=False)
    child = alpha.compute.create_server(
        name="gen1-vm", image_id=first.id, flavor_id=flavor.id, networks="auto"
    )
    child = alpha.compute.wait_for_server(child, status="ACTIVE", interval=0.05, wait=20)
    second = alpha.compute.create_server_image(child, "gen2")
    second = alpha.image.wait_for_status(second, "active", interval=0.05, wait=20)
    first, second = alpha.image.get_image(first.id), alpha.image.get_image(second.id)
    assert second.size == first.size
    assert second.properties["base_image_ref"] == first.id


def test_console_output_through_the_sdk(sdk_alpha):
    server = sdk_alpha.compute.find_server("alpha-web-01", ignore_missing=False)
    full = sdk_alpha.compute.get_server_console_output(server)["output"]
    assert "Cloud-init v. " in full
    assert full.endswith("\nalpha-web-01 login: ")
    tail = sdk_alpha.compute.get_server_console_output(server, length=5)
    assert tail == {"output": "\n".join(full.split("\n")[-5:])}
    # The cloud layer, as `openstack console log show` and Ansible use it.
    assert sdk_alpha.get_server_console("alpha-web-01", length=5) == tail["output"]
    missing = sdk_alpha.compute.get_server_console_output
    with pytest.raises(openstack.exceptions.NotFoundException):
        missing("00000000-0000-0000-0000-000000000000")
