"""Nova: discovery, microversions, server listing/filters/pagination, create, flavors, limits."""

import time

import pytest
import requests

from devcloud import clock


def test_compute_discovery_documents(cloud):
    root = requests.get(f"{cloud.url}/compute/")
    assert root.status_code == 200
    versions = root.json()["versions"]
    assert [v["id"] for v in versions if v["status"] == "CURRENT"] == ["v2.1"]
    doc = requests.get(f"{cloud.url}/compute/v2.1").json()["version"]
    assert doc["version"] == "2.100"
    assert doc["min_version"] == "2.1"
    assert doc["status"] == "CURRENT"
    assert doc["links"][0]["href"] == f"{cloud.url}/compute/v2.1/"


def test_microversion_is_echoed_and_defaults_to_2_1(alpha):
    resp = alpha.get("/compute/v2.1/servers/detail", microversion="2.100")
    assert resp.headers["OpenStack-API-Version"] == "compute 2.100"
    assert resp.headers["X-OpenStack-Nova-API-Version"] == "2.100"
    assert "OpenStack-API-Version" in resp.headers["Vary"]
    server = resp.json()["servers"][0]
    assert set(server["flavor"]) == {
        "vcpus",
        "ram",
        "disk",
        "ephemeral",
        "swap",
        "original_name",
        "extra_specs",
    }
    alpha.microversion = None
    try:
        old = alpha.get("/compute/v2.1/servers/detail")
    finally:
        alpha.microversion = "2.100"
    assert old.headers["OpenStack-API-Version"] == "compute 2.1"
    old_server = old.json()["servers"][0]
    assert set(old_server["flavor"]) == {"id", "links"}
    assert "locked" not in old_server
    assert "description" not in old_server


@pytest.mark.parametrize(
    ("version", "status"),
    [("2.101", 406), ("3.0", 406), ("2.0", 406), ("bogus", 400), ("latest", 200)],
)
def test_microversion_range_is_enforced(alpha, version, status):
    resp = alpha.get("/compute/v2.1/servers", microversion=version)
    assert resp.status_code == status
    if status == 406:
        assert "is not supported by the API" in resp.json()["computeFault"]["message"]
    if version == "latest":
        assert resp.headers["OpenStack-API-Version"] == "compute 2.100"


def test_server_body_has_the_2_100_shape(alpha):
    server = alpha.find_server("alpha-web-01")
    for key in (
        "id",
        "name",
        "status",
        "tenant_id",
        "user_id",
        "created",
        "updated",
        "addresses",
        "metadata",
        "locked",
        "key_name",
        "OS-EXT-AZ:availability_zone",
        "OS-EXT-STS:vm_state",
        "OS-EXT-STS:task_state",
        "OS-EXT-STS:power_state",
        "links",
        "hostId",
        "description",
        "tags",
        "locked_reason",
        "pinned_availability_zone",
        "scheduler_hints",
        "os-extended-volumes:volumes_attached",
    ):
        assert key in server, key
    assert server["status"] == "ACTIVE"
    assert server["OS-EXT-STS:power_state"] == 1
    assert server["tenant_id"] == alpha.project_id
    assert server["flavor"]["original_name"] == "de.NBI small"
    assert server["flavor"]["ram"] == 4096
    assert server["flavor"]["vcpus"] == 2
    assert set(server["image"]) == {"id", "links"}
    (address,) = server["addresses"]["private"]
    assert address["version"] == 4
    assert address["addr"].startswith("192.168.")
    assert server["created"].endswith("Z")
    assert len(server["created"]) == 20
    assert server["locked"] is False
    # Non-admins do not get the host attributes.
    assert "OS-EXT-SRV-ATTR:host" not in server


def test_error_server_shows_fault(alpha):
    server = alpha.find_server("alpha-broken-01")
    assert server["status"] == "ERROR"
    assert server["fault"]["code"] == 500
    assert "No valid host" in server["fault"]["message"]
    assert server["addresses"] == {}


def test_list_is_scoped_to_the_token_project(alpha, beta, admin, admin_alpha):
    alpha_names = {s["name"] for s in alpha.get("/compute/v2.1/servers").json()["servers"]}
    assert "alpha-web-01" in alpha_names
    assert not any(n.startswith("beta") for n in alpha_names)
    summary = alpha.get("/compute/v2.1/servers").json()["servers"][0]
    assert set(summary) == {"id", "name", "links"}
    assert admin.get("/compute/v2.1/servers").json()["servers"] == []
    everything = admin.get("/compute/v2.1/servers/detail", params={"all_tenants": "1"}).json()
    assert {s["tenant_id"] for s in everything["servers"]} == {alpha.project_id, beta.project_id}
    only_beta = admin.get(
        "/compute/v2.1/servers/detail",
        params={"all_tenants": "True", "project_id": beta.project_id},
    ).json()
    assert {s["tenant_id"] for s in only_beta["servers"]} == {beta.project_id}
    # Like Nova, project_id without all_tenants is ignored: the token scope wins.
    ignored = admin_alpha.get(
        "/compute/v2.1/servers/detail", params={"project_id": beta.project_id}
    ).json()
    assert {s["tenant_id"] for s in ignored["servers"]} == {alpha.project_id}


def test_all_tenants_is_forbidden_for_members(alpha):
    resp = alpha.get("/compute/v2.1/servers/detail", params={"all_tenants": "1"})
    assert resp.status_code == 403
    assert resp.json()["forbidden"]["code"] == 403


def test_name_is_a_regex_and_status_filters(alpha):
    names = [
        s["name"]
        for s in alpha.get(
            "/compute/v2.1/servers/detail", params={"name": "^alpha-w(eb|orker)-01$"}
        ).json()["servers"]
    ]
    assert sorted(names) == ["alpha-web-01", "alpha-worker-01"]
    shutoff = alpha.get("/compute/v2.1/servers/detail", params={"status": "SHUTOFF"}).json()
    assert shutoff["servers"]
    assert {s["status"] for s in shutoff["servers"]} == {"SHUTOFF"}
    assert (
        alpha.get("/compute/v2.1/servers/detail", params={"status": "NOPE"}).json()["servers"] == []
    )
    flavor = alpha.flavor_id("de.NBI highmem 2xlarge")
    big = alpha.get("/compute/v2.1/servers/detail", params={"flavor": flavor}).json()["servers"]
    assert [s["name"] for s in big] == ["alpha-bigmem-01"]
    web = alpha.find_server("alpha-web-01")
    by_ip = alpha.get(
        "/compute/v2.1/servers/detail", params={"ip": web["addresses"]["private"][0]["addr"] + "$"}
    ).json()
    assert [s["name"] for s in by_ip["servers"]] == ["alpha-web-01"]


def test_default_sort_is_created_desc_and_sort_keys_work(alpha):
    servers = alpha.get("/compute/v2.1/servers/detail").json()["servers"]
    created = [s["created"] for s in servers]
    assert created == sorted(created, reverse=True)
    by_name = alpha.get(
        "/compute/v2.1/servers/detail", params={"sort_key": "display_name", "sort_dir": "asc"}
    ).json()["servers"]
    names = [s["name"] for s in by_name]
    assert names == sorted(names)
    bad = alpha.get("/compute/v2.1/servers/detail", params={"sort_key": "favourite_colour"})
    assert bad.status_code == 400
    assert "badRequest" in bad.json()


def test_limit_marker_and_servers_links(cloud, alpha):
    everything = [s["id"] for s in alpha.get("/compute/v2.1/servers/detail").json()["servers"]]
    assert len(everything) >= 7
    seen = []
    resp = alpha.get("/compute/v2.1/servers/detail", params={"limit": 3}).json()
    while True:
        page = [s["id"] for s in resp["servers"]]
        seen += page
        links = resp.get("servers_links")
        if len(page) < 3:
            assert links is None
        if not links:
            break
        (link,) = links
        assert link["rel"] == "next"
        assert link["href"] == (
            f"{cloud.url}/compute/v2.1/servers/detail?limit=3&marker={page[-1]}"
        )
        resp = alpha.session.get(
            link["href"],
            headers={"X-Auth-Token": alpha.token, "OpenStack-API-Version": "compute 2.100"},
        ).json()
    assert seen == everything
    missing = alpha.get("/compute/v2.1/servers/detail", params={"marker": "nope"})
    assert missing.status_code == 400
    assert missing.json()["badRequest"]["message"] == "marker [nope] not found"


def test_sdk_paginates_servers_to_the_end(sdk_alpha, alpha):
    expected = {s["id"] for s in alpha.get("/compute/v2.1/servers").json()["servers"]}
    got = [s.id for s in sdk_alpha.compute.servers(limit=2)]
    assert len(got) == len(set(got))
    assert set(got) == expected


def test_flavors_visibility_and_fields(admin, alpha, beta):
    flavors = {
        f["name"]: f
        for f in admin.get("/compute/v2.1/flavors/detail", params={"is_public": "None"}).json()[
            "flavors"
        ]
    }
    assert set(flavors) == {
        "de.NBI tiny",
        "de.NBI small",
        "de.NBI medium",
        "de.NBI large",
        "de.NBI highmem xlarge",
        "de.NBI highmem 2xlarge",
        "de.NBI gpu",
    }
    assert flavors["de.NBI highmem 2xlarge"]["ram"] == 524288
    assert flavors["de.NBI highmem xlarge"]["ram"] == 262144
    assert flavors["de.NBI tiny"]["disk"] == 20
    assert flavors["de.NBI tiny"]["vcpus"] == 1
    assert flavors["de.NBI gpu"]["os-flavor-access:is_public"] is False
    assert "extra_specs" in flavors["de.NBI gpu"]
    public_only = {f["name"] for f in admin.get("/compute/v2.1/flavors/detail").json()["flavors"]}
    assert "de.NBI gpu" not in public_only
    alpha_names = {
        f["name"]
        for f in alpha.get("/compute/v2.1/flavors/detail", params={"is_public": "None"}).json()[
            "flavors"
        ]
    }
    beta_names = {
        f["name"]
        for f in beta.get("/compute/v2.1/flavors/detail", params={"is_public": "None"}).json()[
            "flavors"
        ]
    }
    assert "de.NBI gpu" in alpha_names
    assert "de.NBI gpu" not in beta_names
    gpu = flavors["de.NBI gpu"]["id"]
    assert beta.get(f"/compute/v2.1/flavors/{gpu}").status_code == 404
    shown = alpha.get(f"/compute/v2.1/flavors/{gpu}", microversion="2.60").json()["flavor"]
    assert "extra_specs" not in shown
    assert alpha.get("/compute/v2.1/flavors/de.NBI%20small").status_code == 404
    summary = alpha.get("/compute/v2.1/flavors").json()["flavors"][0]
    assert set(summary) == {"id", "name", "links", "description"}


def test_sdk_flavor_lookup_by_name(sdk_alpha):
    flavor = sdk_alpha.compute.find_flavor("de.NBI highmem 2xlarge", ignore_missing=False)
    assert flavor.ram == 524288
    assert flavor.vcpus == 56


def test_limits_and_quota_sets(admin, alpha, beta):
    absolute = alpha.get("/compute/v2.1/limits").json()["limits"]["absolute"]
    servers = alpha.get("/compute/v2.1/servers/detail").json()["servers"]
    assert absolute["totalInstancesUsed"] == len(servers)
    assert absolute["totalCoresUsed"] == sum(s["flavor"]["vcpus"] for s in servers)
    assert absolute["totalRAMUsed"] == sum(s["flavor"]["ram"] for s in servers)
    assert absolute["maxTotalInstances"] >= absolute["totalInstancesUsed"] + 5
    for_beta = admin.get("/compute/v2.1/limits", params={"tenant_id": beta.project_id}).json()
    assert for_beta["limits"]["absolute"]["maxTotalCores"] == 64
    assert (
        alpha.get("/compute/v2.1/limits", params={"tenant_id": beta.project_id}).status_code == 403
    )
    quota = alpha.get(f"/compute/v2.1/os-quota-sets/{alpha.project_id}").json()["quota_set"]
    assert quota["instances"] == absolute["maxTotalInstances"]


def _server_body(api, name, **extra):
    body = {
        "name": name,
        "imageRef": api.find_image("Ubuntu-22.04-LTS")["id"],
        "flavorRef": api.flavor_id("de.NBI small"),
        "networks": "auto",
    }
    body.update(extra)
    return {"server": body}


def test_create_validation_errors(alpha, beta):
    def create(body, mv="2.100", api=alpha):
        return api.post("/compute/v2.1/servers", json=body, microversion=mv)

    body = _server_body(alpha, "v1")
    del body["server"]["networks"]
    resp = create(body)
    assert resp.status_code == 400
    assert "networks" in resp.json()["badRequest"]["message"]
    body = _server_body(alpha, "v2", flavorRef="does-not-exist")
    message = create(body).json()["badRequest"]["message"]
    assert message == "Flavor does-not-exist could not be found."
    body = _server_body(alpha, "v3", imageRef="0b4b0a9c-0000-4000-8000-000000000000")
    assert create(body).status_code == 400
    rstudio = alpha.find_image("RStudio-Ubuntu-22.04")
    body = _server_body(
        alpha, "v4", imageRef=rstudio["id"], flavorRef=alpha.flavor_id("de.NBI tiny")
    )
    resp = create(body)
    assert resp.status_code == 400
    assert "memory is too small" in resp.json()["badRequest"]["message"]
    gpu = alpha.flavor_id("de.NBI gpu")
    body = _server_body(beta, "v5", flavorRef=gpu)
    message = create(body, api=beta).json()["badRequest"]["message"]
    assert message == f"Flavor {gpu} could not be found."


def test_create_rejects_inactive_and_too_big_images(alpha):
    queued = alpha.post(
        "/image/v2/images",
        json={"name": "not-yet", "disk_format": "qcow2", "container_format": "bare"},
    ).json()
    try:
        resp = alpha.post(
            "/compute/v2.1/servers", json=_server_body(alpha, "x", imageRef=queued["id"])
        )
        assert resp.status_code == 400
        assert resp.json()["badRequest"]["message"] == f"Image {queued['id']} is not active."
        alpha.patch(
            f"/image/v2/images/{queued['id']}",
            headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
            json=[{"op": "replace", "path": "/min_disk", "value": 60}],
        )
        assert (
            alpha.put(
                f"/image/v2/images/{queued['id']}/file",
                data=b"x" * 10,
                headers={"Content-Type": "application/octet-stream"},
            ).status_code
            == 204
        )
        resp = alpha.post(
            "/compute/v2.1/servers", json=_server_body(alpha, "x", imageRef=queued["id"])
        )
        assert resp.status_code == 400
        assert "minimum size" in resp.json()["badRequest"]["message"]
    finally:
        alpha.delete(f"/image/v2/images/{queued['id']}")


def test_quota_exceeded_is_403_in_nova_shape(beta):
    big = _server_body(beta, "too-big", flavorRef=beta.flavor_id("de.NBI highmem 2xlarge"))
    resp = beta.post("/compute/v2.1/servers", json=big)
    assert resp.status_code == 403
    assert resp.json()["forbidden"]["message"].startswith("Quota exceeded for cores:")
    many = _server_body(
        beta, "many", flavorRef=beta.flavor_id("de.NBI tiny"), min_count=30, max_count=30
    )
    resp = beta.post("/compute/v2.1/servers", json=many)
    assert resp.status_code == 403
    assert resp.json()["forbidden"]["message"].startswith("Quota exceeded for instances:")
    assert (
        beta.get("/compute/v2.1/servers", params={"name": "^(too-big|many)"}).json()["servers"]
        == []
    )


def test_create_batch_delete_and_changes_since(alpha):
    before = clock.db_to_api(clock.now_db())
    time.sleep(1.05)  # changes-since has second resolution in the query we send
    resp = alpha.post(
        "/compute/v2.1/servers",
        json=_server_body(alpha, "batch", min_count=1, max_count=3, metadata={"purpose": "test"}),
    )
    assert resp.status_code == 202
    created = resp.json()["server"]
    assert created["adminPass"]
    assert created["links"][0]["rel"] == "self"
    assert resp.headers["Location"].endswith(created["id"])
    batch = alpha.get("/compute/v2.1/servers/detail", params={"name": "^batch-"}).json()["servers"]
    assert sorted(s["name"] for s in batch) == ["batch-1", "batch-2", "batch-3"]
    assert all(s["metadata"] == {"purpose": "test"} for s in batch)
    for server in batch:
        alpha.wait_status(server["id"], "ACTIVE")
    victim = batch[0]["id"]
    assert alpha.delete(f"/compute/v2.1/servers/{victim}").status_code == 204
    assert alpha.get(f"/compute/v2.1/servers/{victim}").status_code == 404
    assert alpha.delete(f"/compute/v2.1/servers/{victim}").status_code == 404
    listed = {s["id"] for s in alpha.get("/compute/v2.1/servers").json()["servers"]}
    assert victim not in listed
    changed = alpha.get("/compute/v2.1/servers/detail", params={"changes-since": before}).json()[
        "servers"
    ]
    states = {s["id"]: s["status"] for s in changed}
    assert states[victim] == "DELETED"
    assert {states[s["id"]] for s in batch[1:]} == {"ACTIVE"}
    assert "alpha-web-01" not in {s["name"] for s in changed}
    for server in batch[1:]:
        assert alpha.delete(f"/compute/v2.1/servers/{server['id']}").status_code == 204


def test_networks_none_and_list(alpha):
    ids = []
    try:
        for networks in ("none", [{"uuid": "7d2c9a43-5f9e-4b59-9c2b-6e1d2f0a9b11"}]):
            resp = alpha.post(
                "/compute/v2.1/servers", json=_server_body(alpha, "netcheck", networks=networks)
            )
            assert resp.status_code == 202, resp.text
            ids.append(resp.json()["server"]["id"])
        none_server = alpha.wait_status(ids[0], "ACTIVE")
        listed_server = alpha.wait_status(ids[1], "ACTIVE")
        assert none_server["addresses"] == {}
        assert list(listed_server["addresses"]) == ["private"]
        bad = alpha.post(
            "/compute/v2.1/servers",
            json=_server_body(alpha, "netcheck", networks=[{"uuid": "nope"}]),
        )
        assert bad.status_code == 400
    finally:
        for server_id in ids:
            alpha.delete(f"/compute/v2.1/servers/{server_id}")


def test_server_metadata_endpoints(alpha):
    server = alpha.find_server("alpha-worker-01")
    base = f"/compute/v2.1/servers/{server['id']}/metadata"
    try:
        assert alpha.post(base, json={"metadata": {"a": "1"}}).json() == {"metadata": {"a": "1"}}
        assert alpha.put(f"{base}/b", json={"meta": {"b": "2"}}).status_code == 200
        assert alpha.get(base).json()["metadata"] == {"a": "1", "b": "2"}
        assert alpha.delete(f"{base}/a").status_code == 204
        assert alpha.get(f"{base}/a").status_code == 404
    finally:
        alpha.put(base, json={"metadata": {}})
    assert alpha.get(base).json()["metadata"] == {}


def test_small_endpoints_the_clients_ask_for(alpha):
    assert isinstance(alpha.get("/compute/v2.1/os-keypairs").json()["keypairs"], list)
    zones = alpha.get("/compute/v2.1/os-availability-zone").json()["availabilityZoneInfo"]
    assert zones[0]["zoneName"] == "nova"


def test_admin_quota_update_is_enforced(fresh_cloud):
    from .conftest import admin_api, member_api

    cloud = fresh_cloud()
    admin, alpha = admin_api(cloud), member_api(cloud, "alpha")
    used = alpha.get("/compute/v2.1/limits").json()["limits"]["absolute"]["totalInstancesUsed"]
    assert (
        alpha.put(
            f"/compute/v2.1/os-quota-sets/{alpha.project_id}",
            json={"quota_set": {"instances": used + 1}},
        ).status_code
        == 403
    )
    resp = admin.put(
        f"/compute/v2.1/os-quota-sets/{alpha.project_id}",
        json={"quota_set": {"instances": used + 1}},
    )
    assert resp.json()["quota_set"]["instances"] == used + 1
    detail = alpha.get(f"/compute/v2.1/os-quota-sets/{alpha.project_id}/detail").json()
    assert detail["quota_set"]["instances"] == {"limit": used + 1, "in_use": used, "reserved": 0}
    alpha.create_server("last-one")
    resp = alpha.post("/compute/v2.1/servers", json=_server_body(alpha, "one-too-many"))
    assert resp.status_code == 403
    assert resp.json()["forbidden"]["message"] == (
        f"Quota exceeded for instances: Requested 1, but already used {used + 1} of "
        f"{used + 1} instances"
    )


def test_admins_see_host_attributes_and_fault_details(admin_alpha):
    web = admin_alpha.find_server("alpha-web-01")
    assert web["OS-EXT-SRV-ATTR:host"] == "devcloud-compute-1"
    assert web["host_status"] == "UP"
    broken = admin_alpha.find_server("alpha-broken-01")
    assert broken["fault"]["details"]
    assert broken["OS-EXT-SRV-ATTR:host"] is None
