"""Nova's image proxy API (/compute/v2.1/images, up to 2.35) and image metadata (up to 2.38)."""

import re

import pytest

from .conftest import member_api

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
DETAIL_KEYS = {
    "id",
    "name",
    "minRam",
    "minDisk",
    "metadata",
    "created",
    "updated",
    "status",
    "progress",
    "OS-EXT-IMG-SIZE:size",
    "links",
}


def _proxy(api, path="", mv="2.1", **kwargs):
    return api.get(f"/compute/v2.1/images{path}", microversion=mv, **kwargs)


def _snapshot(api):
    """One of alpha's seeded snapshots, as Glance shows it."""
    images = api.get("/image/v2/images", params={"image_type": "snapshot", "limit": 1}).json()
    return images["images"][0]


def _glance_image(api, name="proxy", **fields):
    body = {"name": name, "disk_format": "raw", "container_format": "bare", **fields}
    resp = api.post("/image/v2/images", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_show_snapshot_shape(cloud, alpha):
    glance = _snapshot(alpha)
    resp = _proxy(alpha, f"/{glance['id']}")
    assert resp.status_code == 200, resp.text
    assert resp.headers["OpenStack-API-Version"] == "compute 2.1"
    image = resp.json()["image"]
    assert set(image) == DETAIL_KEYS | {"server"}
    assert image["id"] == glance["id"]
    assert image["name"] == glance["name"]
    assert image["status"] == "ACTIVE"
    assert image["progress"] == 100
    assert image["OS-EXT-IMG-SIZE:size"] == glance["size"]
    assert image["minDisk"] == glance["min_disk"]
    assert image["minRam"] == glance["min_ram"]
    assert ISO.match(image["created"])
    assert ISO.match(image["updated"])
    assert image["created"] == glance["created_at"]
    # metadata holds the custom properties only.
    assert image["metadata"]["image_type"] == "snapshot"
    assert image["metadata"]["instance_uuid"] == glance["instance_uuid"]
    assert not {"size", "status", "visibility", "owner", "tags"} & set(image["metadata"])
    server_id = glance["instance_uuid"]
    assert image["server"] == {
        "id": server_id,
        "links": [
            {"rel": "self", "href": f"{cloud.url}/compute/v2.1/servers/{server_id}"},
            {"rel": "bookmark", "href": f"{cloud.url}/compute/servers/{server_id}"},
        ],
    }
    assert image["links"] == [
        {"rel": "self", "href": f"{cloud.url}/compute/v2.1/images/{glance['id']}"},
        {"rel": "bookmark", "href": f"{cloud.url}/compute/images/{glance['id']}"},
        {
            "rel": "alternate",
            "type": "application/vnd.openstack.image",
            "href": f"{cloud.url}/image/images/{glance['id']}",
        },
    ]


def test_queued_image_is_saving_with_size_zero_and_no_server(alpha):
    image = _glance_image(alpha, auto_disk_config="true")
    try:
        shown = _proxy(alpha, f"/{image['id']}").json()["image"]
        assert set(shown) == DETAIL_KEYS | {"OS-DCF:diskConfig"}
        assert shown["status"] == "SAVING"
        assert shown["progress"] == 25
        assert shown["OS-EXT-IMG-SIZE:size"] == 0
        assert shown["metadata"] == {"auto_disk_config": "true"}
        assert shown["OS-DCF:diskConfig"] == "AUTO"
    finally:
        alpha.delete(f"/image/v2/images/{image['id']}")


def test_list_and_detail(alpha, beta):
    index = _proxy(alpha).json()
    assert "images_links" not in index
    assert all(set(i) == {"id", "name", "links"} for i in index["images"])
    glance_ids = [
        i["id"] for i in alpha.get("/image/v2/images", params={"limit": 1000}).json()["images"]
    ]
    # Same images in the same order (created_at desc) as Glance's default listing.
    assert [i["id"] for i in index["images"]] == glance_ids
    detail = _proxy(alpha, "/detail").json()["images"]
    assert [i["id"] for i in detail] == glance_ids
    assert all(set(i) >= DETAIL_KEYS for i in detail)
    beta_ids = {i["id"] for i in _proxy(beta).json()["images"]}
    private_alpha = {i["id"] for i in detail if "server" in i}
    assert private_alpha
    assert not private_alpha & beta_ids


def test_list_filters_and_pagination(alpha):
    snapshot = _snapshot(alpha)
    server = snapshot["instance_uuid"]
    by_server = _proxy(alpha, "/detail", params={"server": f"http://x/servers/{server}"}).json()
    assert by_server["images"]
    assert all(i["server"]["id"] == server for i in by_server["images"])
    snapshots = _proxy(alpha, "/detail", params={"type": "snapshot"}).json()["images"]
    assert snapshots
    assert all(i["metadata"]["image_type"] == "snapshot" for i in snapshots)
    assert all("server" in i for i in snapshots)
    named = _proxy(alpha, params={"name": "Debian-12"}).json()["images"]
    assert [i["name"] for i in named] == ["Debian-12"]
    assert _proxy(alpha, params={"status": "SAVING", "name": "Debian-12"}).json()["images"] == []
    active = _proxy(alpha, "/detail", params={"status": "ACTIVE"}).json()["images"]
    assert active
    assert all(i["status"] == "ACTIVE" for i in active)
    distro = _proxy(alpha, "/detail", params={"property-os_distro": "debian"}).json()["images"]
    assert distro
    assert all(i["metadata"]["os_distro"] == "debian" for i in distro)
    ram = _proxy(alpha, "/detail", params={"minRam": "4096"}).json()["images"]
    assert ram
    assert all(i["minRam"] == 4096 for i in ram)

    everything = [i["id"] for i in _proxy(alpha).json()["images"]]
    page = _proxy(alpha, params={"limit": 2}).json()
    assert [i["id"] for i in page["images"]] == everything[:2]
    link = page["images_links"][0]
    assert link["rel"] == "next"
    assert link["href"].endswith(f"/compute/v2.1/images?limit=2&marker={everything[1]}")
    second = _proxy(alpha, params={"limit": 2, "marker": everything[1]}).json()
    assert [i["id"] for i in second["images"]] == everything[2:4]
    bad = _proxy(alpha, params={"marker": "00000000-0000-0000-0000-000000000000"})
    assert bad.status_code == 400
    assert "badRequest" in bad.json()


def test_images_served_up_to_2_35(alpha):
    image_id = _snapshot(alpha)["id"]
    for path in ("", "/detail", f"/{image_id}"):
        resp = _proxy(alpha, path, mv="2.35")
        assert resp.status_code == 200, path
        assert resp.headers["OpenStack-API-Version"] == "compute 2.35"


@pytest.mark.parametrize("mv", ["2.36", "2.100"])
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", ""), ("GET", "/detail"), ("GET", "/{id}"), ("DELETE", "/{id}")],
)
def test_images_404_past_2_35(alpha, mv, method, path):
    image_id = _snapshot(alpha)["id"]
    resp = alpha.request(method, "/compute/v2.1/images" + path.format(id=image_id), microversion=mv)
    assert resp.status_code == 404
    assert resp.json() == {
        "itemNotFound": {"code": 404, "message": "The resource could not be found."}
    }
    assert resp.headers["OpenStack-API-Version"] == f"compute {mv}"
    assert alpha.image(image_id).status_code == 200


def test_delete(alpha, beta):
    image = _glance_image(alpha)
    assert beta.delete(f"/compute/v2.1/images/{image['id']}", microversion="2.1").status_code == 404
    resp = alpha.delete(f"/compute/v2.1/images/{image['id']}", microversion="2.1")
    assert resp.status_code == 204
    assert resp.content == b""
    gone = _proxy(alpha, f"/{image['id']}")
    assert gone.status_code == 404
    assert gone.json() == {"itemNotFound": {"code": 404, "message": "Image not found."}}
    assert alpha.image(image["id"]).status_code == 404
    again = alpha.delete(f"/compute/v2.1/images/{image['id']}", microversion="2.1")
    assert again.status_code == 404
    public = alpha.find_image("Debian-12")["id"]
    denied = alpha.delete(f"/compute/v2.1/images/{public}", microversion="2.1")
    assert denied.status_code == 403
    assert denied.json()["forbidden"]["message"] == "You are not allowed to delete the image."


def test_snapshot_at_2_1_seen_through_the_proxy(fresh_cloud):
    # Freeze the upload so the snapshot stays in progress for as long as the test needs.
    cloud = fresh_cloud(
        faults={"stuck_task": {"server_name": "^proxy-", "task_state": "image_uploading"}}
    )
    api = member_api(cloud, "alpha")
    server_id = api.create_server("proxy-1", flavor="de.NBI tiny")
    api.wait_status(server_id, "ACTIVE")
    resp = api.action(server_id, {"createImage": {"name": "snap"}}, microversion="2.1")
    assert resp.status_code == 202
    assert resp.content == b""
    image_id = resp.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    shown = _proxy(api, f"/{image_id}").json()["image"]
    assert shown["status"] == "SAVING"
    assert shown["progress"] in (25, 50)
    assert shown["server"]["id"] == server_id
    assert shown["name"] == "snap"
    second = api.action(server_id, {"createImage": {"name": "again"}}, microversion="2.1")
    assert second.status_code == 409
    assert "conflictingRequest" in second.json()
    # Deleting the image while it is being saved works, as through Glance.
    assert api.delete(f"/compute/v2.1/images/{image_id}", microversion="2.1").status_code == 204
    assert _proxy(api, f"/{image_id}").status_code == 404


def test_image_metadata(alpha, beta):
    image = _glance_image(alpha, color="red", size_hint="small")
    base = f"/compute/v2.1/images/{image['id']}/metadata"
    try:
        got = alpha.get(base, microversion="2.38").json()
        assert got == {"metadata": {"color": "red", "size_hint": "small"}}
        merged = alpha.post(base, json={"metadata": {"shape": "round"}}, microversion="2.1")
        assert merged.json() == {
            "metadata": {"color": "red", "size_hint": "small", "shape": "round"}
        }
        assert alpha.image(image["id"]).json()["shape"] == "round"
        item = alpha.get(f"{base}/color", microversion="2.1").json()
        assert item == {"meta": {"color": "red"}}
        put = alpha.put(f"{base}/color", json={"meta": {"color": "blue"}}, microversion="2.1")
        assert put.status_code == 200
        assert put.json() == {"meta": {"color": "blue"}}
        mismatch = alpha.put(f"{base}/color", json={"meta": {"other": "x"}}, microversion="2.1")
        assert mismatch.status_code == 400
        assert alpha.delete(f"{base}/shape", microversion="2.1").status_code == 204
        assert alpha.get(f"{base}/shape", microversion="2.1").status_code == 404
        assert alpha.delete(f"{base}/shape", microversion="2.1").status_code == 404
        replaced = alpha.put(base, json={"metadata": {"only": "this"}}, microversion="2.1")
        assert replaced.json() == {"metadata": {"only": "this"}}
        glance = alpha.image(image["id"]).json()
        assert glance["only"] == "this"
        assert "color" not in glance
        assert "size_hint" not in glance
        assert alpha.post(base, json={"metadata": {"": "x"}}, microversion="2.1").status_code == 400
        assert alpha.get(base, microversion="2.39").status_code == 404
        assert beta.get(base, microversion="2.1").status_code == 404
        public = alpha.find_image("Debian-12")["id"]
        denied = alpha.post(
            f"/compute/v2.1/images/{public}/metadata",
            json={"metadata": {"x": "y"}},
            microversion="2.1",
        )
        assert denied.status_code == 403
    finally:
        alpha.delete(f"/image/v2/images/{image['id']}")
