"""Neutron networks, and what Nova demands of them (and of private flavors) at boot."""

import openstack
import openstack.exceptions
import pytest

from devcloud.neutron import DEFAULT_NETWORK_ID

from .conftest import admin_api, member_api


def _server(api, name, *, networks="auto", flavor="de.NBI small"):
    return {
        "server": {
            "name": name,
            "imageRef": api.find_image("Ubuntu-22.04-LTS")["id"],
            "flavorRef": api.flavor_id(flavor),
            "networks": networks,
        }
    }


@pytest.fixture
def cloud2(fresh_cloud):
    """A private cloud: these tests add networks that would change every boot."""
    return fresh_cloud()


def test_every_project_sees_the_shared_default_network(cloud, sdk_alpha):
    (network,) = list(sdk_alpha.network.networks())
    assert network.id == DEFAULT_NETWORK_ID
    assert network.name == "private"
    assert network.is_shared
    assert not network.is_router_external
    assert network.status == "ACTIVE"


def test_networks_are_listed_filtered_created_and_deleted(cloud2):
    admin = openstack.connect(**cloud2.admin_credentials)
    alpha = openstack.connect(**cloud2.member_credentials("alpha"))
    beta = openstack.connect(**cloud2.member_credentials("beta"))
    try:
        own = alpha.network.create_network(name="alpha-net")
        assert own.project_id == alpha.current_project_id
        assert not own.is_shared
        beta_id = beta.current_project_id
        theirs = admin.network.create_network(name="beta-net", project_id=beta_id)
        external = admin.network.create_network(name="public", is_router_external=True)

        assert {n.name for n in alpha.network.networks()} == {"private", "alpha-net", "public"}
        assert {n.name for n in beta.network.networks()} == {"private", "beta-net", "public"}
        everything = {n.name for n in admin.network.networks()}
        assert everything == {"private", "alpha-net", "beta-net", "public"}
        assert [n.name for n in admin.network.networks(project_id=beta_id)] == ["beta-net"]
        assert [n.name for n in admin.network.networks(is_shared=True)] == ["private"]
        assert [n.name for n in alpha.network.networks(is_router_external=True)] == ["public"]
        assert [n.id for n in admin.network.networks(name="alpha-net")] == [own.id]
        assert [n.name for n in admin.network.networks(id=theirs.id)] == ["beta-net"]

        with pytest.raises(openstack.exceptions.NotFoundException):
            alpha.network.get_network(theirs.id)
        with pytest.raises(openstack.exceptions.ForbiddenException):
            alpha.network.create_network(name="sneaky", project_id=beta_id)
        alpha.network.delete_network(own, ignore_missing=False)
        with pytest.raises(openstack.exceptions.NotFoundException):
            alpha.network.get_network(own.id)
        admin.network.delete_network(external, ignore_missing=False)
    finally:
        for conn in (admin, alpha, beta):
            conn.close()


def test_auto_needs_exactly_one_network_and_a_list_picks_one(cloud2):
    alpha = member_api(cloud2, "alpha")
    beta = member_api(cloud2, "beta")
    net = alpha.post("/networking/v2.0/networks", json={"network": {"name": "lab"}})
    assert net.status_code == 201, net.text
    lab = net.json()["network"]
    foreign = beta.post("/networking/v2.0/networks", json={"network": {"name": "b"}}).json()

    ambiguous = alpha.post("/compute/v2.1/servers", json=_server(alpha, "auto-two"))
    assert ambiguous.status_code == 409
    assert ambiguous.json()["conflictingRequest"]["message"] == (
        "Multiple possible networks found, use a Network ID to be more specific."
    )
    hidden = alpha.post(
        "/compute/v2.1/servers",
        json=_server(alpha, "other-net", networks=[{"uuid": foreign["network"]["id"]}]),
    )
    assert hidden.status_code == 400
    assert hidden.json()["badRequest"]["message"] == (
        f"Network {foreign['network']['id']} could not be found."
    )

    chosen = alpha.post(
        "/compute/v2.1/servers", json=_server(alpha, "on-lab", networks=[{"uuid": lab["id"]}])
    )
    assert chosen.status_code == 202, chosen.text
    none = alpha.post("/compute/v2.1/servers", json=_server(alpha, "no-net", networks="none"))
    assert none.status_code == 202, none.text
    booted = alpha.wait_status(chosen.json()["server"]["id"], "ACTIVE")
    assert list(booted["addresses"]) == ["lab"]
    assert alpha.wait_status(none.json()["server"]["id"], "ACTIVE")["addresses"] == {}
    # A network with a server on it stays.
    assert alpha.delete(f"/networking/v2.0/networks/{lab['id']}").status_code == 409


def test_auto_without_any_network_cannot_allocate_one(cloud2):
    admin = admin_api(cloud2)
    assert admin.delete(f"/networking/v2.0/networks/{DEFAULT_NETWORK_ID}").status_code == 204
    alpha = member_api(cloud2, "alpha")
    refused = alpha.post("/compute/v2.1/servers", json=_server(alpha, "lonely"))
    assert refused.status_code == 400
    assert refused.json()["badRequest"]["message"] == (
        f"Unable to automatically allocate a network for project {alpha.project_id}"
    )
    assert (
        alpha.post(
            "/compute/v2.1/servers", json=_server(alpha, "lonely", networks="none")
        ).status_code
        == 202
    )


def test_a_private_flavor_boots_only_in_projects_on_its_access_list_but_admins_pass(cloud, sdk):
    """As in Nova: a project's own users are refused a private flavor
    shared with another project; an admin token (the portal's service account) boots
    it anyway, so the portal must check flavor access itself."""
    gpu = next(f for f in sdk.compute.flavors(is_public=None) if f.name == "de.NBI gpu")
    assert not gpu.is_public
    as_beta_member = member_api(cloud, "beta")
    body = _server(as_beta_member, "gpu-b")
    body["server"]["flavorRef"] = gpu.id  # not listed to beta's users, known by id
    refused = as_beta_member.post("/compute/v2.1/servers", json=body)
    assert refused.status_code == 400
    assert refused.json()["badRequest"]["message"] == f"Flavor {gpu.id} could not be found."

    as_beta_admin = admin_api(cloud, "beta")
    passed = as_beta_admin.post(
        "/compute/v2.1/servers", json=_server(as_beta_admin, "gpu-b", flavor="de.NBI gpu")
    )
    assert passed.status_code == 202, passed.text
    as_beta_admin.delete(f"/compute/v2.1/servers/{passed.json()['server']['id']}")

    as_alpha = admin_api(cloud, "alpha")
    allowed = as_alpha.post(
        "/compute/v2.1/servers", json=_server(as_alpha, "gpu-a", flavor="de.NBI gpu")
    )
    assert allowed.status_code == 202, allowed.text
    as_alpha.delete(f"/compute/v2.1/servers/{allowed.json()['server']['id']}")
