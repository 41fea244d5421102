"""Glance v2: listing, filters, sorting, links, validation, CRUD, data, patch, visibility."""

import hashlib
import struct
import urllib.parse

import pytest
import requests

PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
CORE_KEYS = {
    "id",
    "name",
    "status",
    "visibility",
    "owner",
    "size",
    "virtual_size",
    "min_disk",
    "min_ram",
    "disk_format",
    "container_format",
    "protected",
    "os_hidden",
    "tags",
    "created_at",
    "updated_at",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "self",
    "file",
    "schema",
}


@pytest.fixture(scope="module")
def bulk(alpha):
    """30 queued images in alpha with tags and a custom property, removed afterwards."""
    ids = []
    for i in range(30):
        tags = ["bulk"] + (["even"] if i % 2 == 0 else []) + (["third"] if i % 3 == 0 else [])
        resp = alpha.post(
            "/image/v2/images",
            json={
                "name": f"bulk-{i:02d}",
                "disk_format": "qcow2",
                "container_format": "bare",
                "tags": tags,
                "bulk_index": str(i),
            },
        )
        assert resp.status_code == 201
        ids.append(resp.json()["id"])
    yield ids
    for image_id in ids:
        alpha.delete(f"/image/v2/images/{image_id}")


def _list(api, **params):
    resp = api.get("/image/v2/images", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_image_discovery_is_300(cloud):
    resp = requests.get(f"{cloud.url}/image")
    assert resp.status_code == 300
    current = [v for v in resp.json()["versions"] if v["status"] == "CURRENT"]
    assert current[0]["id"].startswith("v2.")
    assert current[0]["links"][0]["href"] == f"{cloud.url}/image/v2/"


def test_default_page_is_25_with_relative_links(alpha, bulk):
    body = _list(alpha)
    assert len(body["images"]) == 25
    assert body["first"] == "/v2/images"
    assert body["schema"] == "/v2/schemas/images"
    assert body["next"] == f"/v2/images?marker={body['images'][-1]['id']}"
    created = [(i["created_at"], i["id"]) for i in body["images"]]
    assert created == sorted(created, reverse=True)


def test_links_keep_the_query_and_next_appears_on_a_full_last_page(alpha, bulk):
    body = _list(alpha, tag="bulk", limit=10)
    assert body["first"] == "/v2/images?tag=bulk&limit=10"
    seen = [i["id"] for i in body["images"]]
    pages = 1
    while "next" in body:
        assert body["next"] == "/v2/images?tag=bulk&limit=10&marker=" + seen[-1]
        query = urllib.parse.urlsplit(body["next"]).query
        body = alpha.get("/image/v2/images?" + query).json()
        seen += [i["id"] for i in body["images"]]
        pages += 1
    # 30 images at 10 a page: the third page is full, so a fourth (empty) page is fetched.
    assert pages == 4
    assert body["images"] == []
    assert sorted(seen) == sorted(bulk)


def test_sdk_paginates_images_to_the_end(sdk_alpha, alpha, bulk):
    expected = {i["id"] for i in _list(alpha, limit=1000)["images"]}
    got = [i.id for i in sdk_alpha.image.images(limit=7)]
    assert len(got) == len(set(got))
    assert set(got) == expected


def test_filters(alpha, bulk):
    assert {i["name"] for i in _list(alpha, name="Debian-12")["images"]} == {"Debian-12"}
    private = _list(alpha, visibility="private", limit=100)["images"]
    assert private
    assert all(i["owner"] == alpha.project_id for i in private)
    assert all(i["image_type"] == "snapshot" for i in private)
    snapshots = _list(alpha, image_type="snapshot", limit=100)["images"]
    assert {i["id"] for i in snapshots} == {i["id"] for i in private}
    debian = _list(alpha, os_distro="debian")["images"]
    assert "Debian-12" in {i["name"] for i in debian}
    assert all(i["os_distro"] == "debian" for i in debian)
    both = _list(alpha, tag=["even", "third"], limit=100)["images"]
    assert sorted(i["name"] for i in both) == [f"bulk-{i:02d}" for i in range(0, 30, 6)]
    queued = _list(alpha, status="in:queued,saving", limit=100)["images"]
    assert set(bulk) <= {i["id"] for i in queued}
    assert _list(alpha, status="bogus")["images"] == []
    assert _list(alpha, limit=0)["images"] == []
    big = _list(alpha, size_min=str(4 * 1024**3), limit=100)["images"]
    assert big
    assert all(i["size"] >= 4 * 1024**3 for i in big)
    rstudio = _list(alpha, tag="rstudio")["images"]
    assert [i["name"] for i in rstudio] == ["RStudio-Ubuntu-22.04"]
    bulk_3 = _list(alpha, bulk_index="3")["images"]
    assert [i["name"] for i in bulk_3] == ["bulk-03"]
    old = _list(alpha, created_at="lt:" + bulk_3[0]["created_at"], tag="bulk")["images"]
    assert "bulk-03" not in {i["name"] for i in old}
    assert not _list(alpha, protected="true")["images"]


def test_sorting(alpha, bulk):
    names = [
        i["name"]
        for i in _list(alpha, tag="bulk", sort_key="name", sort_dir="asc", limit=100)["images"]
    ]
    assert names == sorted(names)
    assert len(names) == 30
    by_sort = [i["name"] for i in _list(alpha, tag="bulk", sort="name:desc", limit=100)["images"]]
    assert by_sort == sorted(names, reverse=True)
    sized = _list(alpha, sort="size:desc,name:asc", limit=100)["images"]
    sizes = [i["size"] or -1 for i in sized]
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "-1"},
        {"limit": "ten"},
        {"marker": "0b4b0a9c-0000-4000-8000-000000000000"},
        {"visibility": "everyone"},
        {"sort_key": "min_ram"},
        {"sort_dir": "sideways"},
        {"sort": "name:asc", "sort_key": "name"},
        {"created_at": "around:2024-01-01T00:00:00Z"},
        {"created_at": "gt:yesterday"},
        {"protected": "maybe"},
    ],
)
def test_list_validation_errors_are_400_in_glance_shape(alpha, params):
    resp = alpha.get("/image/v2/images", params=params)
    assert resp.status_code == 400
    body = resp.json()
    assert body["code"] == "400 Bad Request"
    assert body["title"] == "Bad Request"
    assert body["message"]


def test_create_returns_every_core_key(cloud, alpha):
    resp = alpha.post("/image/v2/images", json={"name": "fresh", "color": "blue"})
    assert resp.status_code == 201
    image = resp.json()
    try:
        assert set(image) >= CORE_KEYS
        assert image["status"] == "queued"
        assert image["visibility"] == "shared"
        assert image["owner"] == alpha.project_id
        for key in (
            "size",
            "virtual_size",
            "checksum",
            "os_hash_algo",
            "os_hash_value",
            "disk_format",
            "container_format",
        ):
            assert image[key] is None, key
        assert image["color"] == "blue"
        assert resp.headers["Location"] == f"{cloud.url}/image/v2/images/{image['id']}"
        assert image["self"] == f"/v2/images/{image['id']}"
    finally:
        alpha.delete(f"/image/v2/images/{image['id']}")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "x", "status": "active"}, 403),
        ({"name": "x", "visibility": "public"}, 403),
        ({"name": "x", "disk_format": "floppy"}, 400),
        ({"name": "x", "min_disk": -1}, 400),
        ({"name": "x", "custom": 5}, 400),
    ],
)
def test_create_validation(alpha, body, status):
    resp = alpha.post("/image/v2/images", json=body)
    assert resp.status_code == status
    assert resp.json()["code"].startswith(str(status))


def test_upload_download_and_second_upload(alpha):
    image = alpha.post(
        "/image/v2/images", json={"name": "data", "disk_format": "raw", "container_format": "bare"}
    ).json()
    payload = b"devcloud" * 1000
    try:
        assert alpha.get(f"/image/v2/images/{image['id']}/file").status_code == 204
        put = alpha.put(
            f"/image/v2/images/{image['id']}/file",
            data=payload,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert put.status_code == 204
        assert put.content == b""
        shown = alpha.image(image["id"]).json()
        assert shown["status"] == "active"
        assert shown["size"] == len(payload)
        assert shown["checksum"] == hashlib.md5(payload).hexdigest()
        assert shown["os_hash_algo"] == "sha512"
        assert shown["os_hash_value"] == hashlib.sha512(payload).hexdigest()
        again = alpha.put(
            f"/image/v2/images/{image['id']}/file",
            data=payload,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert again.status_code == 409
        down = alpha.get(f"/image/v2/images/{image['id']}/file")
        assert down.status_code == 200
        assert down.content == payload
        assert down.headers["Content-Type"] == "application/octet-stream"
    finally:
        alpha.delete(f"/image/v2/images/{image['id']}")


def test_sdk_create_image_with_data(sdk_alpha):
    image = sdk_alpha.image.create_image(
        name="sdk-upload", data=b"abc" * 100, disk_format="qcow2", container_format="bare"
    )
    try:
        image = sdk_alpha.image.get_image(image.id)
        assert image.status == "active"
        assert image.size == 300
        assert image.checksum == hashlib.md5(b"abc" * 100).hexdigest()
    finally:
        sdk_alpha.image.delete_image(image.id)


def test_patch_semantics(alpha):
    image = alpha.post("/image/v2/images", json={"name": "patchme", "keep": "x"}).json()
    url = f"/image/v2/images/{image['id']}"
    try:
        wrong = alpha.patch(
            url,
            json=[{"op": "replace", "path": "/name", "value": "y"}],
            headers={"Content-Type": "application/json"},
        )
        assert wrong.status_code == 415
        resp = alpha.patch(
            url,
            headers=PATCH,
            json=[
                {"op": "replace", "path": "/name", "value": "patched"},
                {"op": "add", "path": "/extra", "value": "1"},
                {"op": "remove", "path": "/keep"},
                {"op": "replace", "path": "/tags", "value": ["a", "b"]},
                {"op": "replace", "path": "/protected", "value": True},
            ],
        )
        assert resp.status_code == 200
        patched = resp.json()
        assert patched["name"] == "patched"
        assert patched["extra"] == "1"
        assert "keep" not in patched
        assert patched["tags"] == ["a", "b"]
        assert patched["protected"] is True
        assert set(patched) >= CORE_KEYS
        v20 = alpha.patch(
            url,
            json=[{"replace": "/extra", "value": "2"}],
            headers={"Content-Type": "application/openstack-images-v2.0-json-patch"},
        )
        assert v20.json()["extra"] == "2"
        assert (
            alpha.patch(url, headers=PATCH, json=[{"op": "remove", "path": "/nothing"}]).status_code
            == 409
        )
        assert (
            alpha.patch(
                url, headers=PATCH, json=[{"op": "replace", "path": "/status", "value": "active"}]
            ).status_code
            == 403
        )
        protected = alpha.delete(url)
        assert protected.status_code == 403
        assert (
            protected.json()["message"]
            == f"Image {image['id']} is protected and cannot be deleted."
        )
    finally:
        alpha.patch(
            url, headers=PATCH, json=[{"op": "replace", "path": "/protected", "value": False}]
        )
        alpha.delete(url)


def test_delete_then_404_twice(alpha):
    image = alpha.post("/image/v2/images", json={"name": "doomed"}).json()
    url = f"/image/v2/images/{image['id']}"
    assert alpha.delete(url).status_code == 204
    missing = alpha.get(url)
    assert missing.status_code == 404
    assert missing.json() == {
        "message": f"No image found with ID {image['id']}",
        "code": "404 Not Found",
        "title": "Not Found",
    }
    assert alpha.delete(url).status_code == 404


def test_members_cannot_delete_public_images(alpha):
    ubuntu = alpha.find_image("Ubuntu-22.04-LTS")
    assert alpha.delete(f"/image/v2/images/{ubuntu['id']}").status_code == 403


def test_visibility_rules(admin, alpha, beta):
    alpha_snap = _list(alpha, image_type="snapshot")["images"][0]
    assert beta.image(alpha_snap["id"]).status_code == 404
    beta_ids = {i["id"] for i in _list(beta, limit=1000)["images"]}
    assert alpha_snap["id"] not in beta_ids
    admin_owners = {i["owner"] for i in _list(admin, limit=1000)["images"]}
    assert {alpha.project_id, beta.project_id} <= admin_owners
    community = alpha.post(
        "/image/v2/images", json={"name": "shared-with-all", "visibility": "community"}
    ).json()
    try:
        assert beta.image(community["id"]).status_code == 200
        assert community["id"] not in {i["id"] for i in _list(beta, limit=1000)["images"]}
        listed = _list(beta, visibility="community")["images"]
        assert community["id"] in {i["id"] for i in listed}
    finally:
        alpha.delete(f"/image/v2/images/{community['id']}")


def test_tasks_and_schemas(cloud, alpha):
    snap = _list(alpha, image_type="snapshot")["images"][0]
    assert alpha.get(f"/image/v2/images/{snap['id']}/tasks").json() == {"tasks": []}
    schema = alpha.get("/image/v2/schemas/image").json()
    assert schema["name"] == "image"
    assert "properties" in schema
    assert alpha.get("/image/v2/schemas/images").json()["name"] == "images"


def _upload(api, data, disk_format="raw", container_format="bare", name="upload"):
    image = api.post(
        "/image/v2/images",
        json={"name": name, "disk_format": disk_format, "container_format": container_format},
    ).json()
    put = api.put(
        f"/image/v2/images/{image['id']}/file",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert put.status_code == 204, put.text
    return api.image(image["id"]).json()


def _qcow2(virtual_size, length=1024):
    # magic, version, backing file offset/size, cluster bits, size; padded past the
    # 512-byte header region the format inspector reads.
    header = struct.pack(">4sIQIIQ", b"QFI\xfb", 3, 0, 0, 16, virtual_size)
    return header + b"\0" * (length - len(header))


def test_size_filters(alpha):
    sizes = {1000: None, 2000: None, 3000: None}
    try:
        for size in sizes:
            sizes[size] = _upload(alpha, b"x" * size, name=f"sized-{size}")["id"]
        exact = _list(alpha, size="2000", limit=1000)["images"]
        assert [i["id"] for i in exact] == [sizes[2000]]
        ranged = _list(alpha, size_min="1500", size_max="2500", limit=1000)["images"]
        assert sizes[2000] in {i["id"] for i in ranged}
        assert not {sizes[1000], sizes[3000]} & {i["id"] for i in ranged}
        assert all(1500 <= i["size"] <= 2500 for i in ranged)
        at_least = {i["id"] for i in _list(alpha, size_min="2000", limit=1000)["images"]}
        assert {sizes[2000], sizes[3000]} <= at_least
        assert sizes[1000] not in at_least
        virtual = _list(alpha, virtual_size_max="1000", limit=1000)["images"]
        assert [i["id"] for i in virtual] == [sizes[1000]]
        # A non-numeric exact value matches nothing; a non-numeric range is a 400.
        assert _list(alpha, size="big")["images"] == []
        bad = alpha.get("/image/v2/images", params={"size_min": "big"})
        assert bad.status_code == 400
        assert bad.json()["message"] == "Unable to filter on a range with a non-numeric value."
    finally:
        for image_id in sizes.values():
            if image_id:
                alpha.delete(f"/image/v2/images/{image_id}")


@pytest.mark.parametrize(
    ("data", "disk_format", "container_format", "expected"),
    [
        (b"r" * 4096, "raw", "bare", 4096),
        (_qcow2(10 * 1024**3), "qcow2", "bare", 10 * 1024**3),
        # A raw image holding a qcow2 file counts its bytes, as Glance does.
        (_qcow2(10 * 1024**3), "raw", "bare", 1024),
        # The data does not match its disk_format: nothing to report.
        (b"r" * 4096, "qcow2", "bare", None),
        # Too short for the inspector's header region: not recognized as qcow2.
        (_qcow2(10 * 1024**3, length=256), "qcow2", "bare", None),
        # Formats the inspector cannot read, and non-bare containers, are not inspected.
        (b"r" * 4096, "ami", "ami", None),
        (b"r" * 4096, "raw", "ovf", None),
        (b"", "raw", "bare", None),
    ],
)
def test_virtual_size_after_upload(alpha, data, disk_format, container_format, expected):
    image = _upload(alpha, data, disk_format, container_format)
    try:
        assert image["status"] == "active"
        assert image["size"] == len(data)
        assert image["virtual_size"] == expected
    finally:
        alpha.delete(f"/image/v2/images/{image['id']}")


def test_owners_may_deactivate_and_reactivate(alpha, beta):
    image = _upload(alpha, b"d" * 100)
    path = f"/image/v2/images/{image['id']}/actions"
    try:
        assert alpha.post(f"{path}/deactivate").status_code == 204
        assert alpha.image(image["id"]).json()["status"] == "deactivated"
        assert alpha.get(f"/image/v2/images/{image['id']}/file").status_code == 403
        assert alpha.post(f"{path}/reactivate").status_code == 204
        assert alpha.image(image["id"]).json()["status"] == "active"
        public = alpha.find_image("Debian-12")["id"]
        denied = alpha.post(f"/image/v2/images/{public}/actions/deactivate")
        assert denied.status_code == 403
        assert beta.post(f"{path}/deactivate").status_code == 404
    finally:
        alpha.delete(f"/image/v2/images/{image['id']}")


def test_a_listed_image_is_exactly_the_image_shown(admin, bulk, alpha):
    """Listings build image bodies in SQL (for speed), a single GET in Python:
    both must say the same, nulls, booleans, tags and custom properties included."""
    resp = alpha.patch(
        f"/image/v2/images/{bulk[1]}",
        json=[{"op": "replace", "path": "/protected", "value": True}],
        headers=PATCH,
    )
    assert resp.status_code == 200
    try:
        listed = admin.get("/image/v2/images", params={"limit": 1000}).json()["images"]
        assert {image["id"] for image in listed} >= set(bulk)
        for image in listed:
            assert admin.get(f"/image/v2/images/{image['id']}").json() == image
    finally:
        alpha.patch(
            f"/image/v2/images/{bulk[1]}",
            json=[{"op": "replace", "path": "/protected", "value": False}],
            headers=PATCH,
        )


def test_the_tool_images_say_where_their_service_answers(alpha):
    # What a portal proposes as a workshop's access link (the demo shows it).
    by_name = {
        image["name"]: image for image in _list(alpha, visibility="public", limit=100)["images"]
    }
    assert by_name["RStudio-Ubuntu-22.04"]["portal_access_url"] == "https://{ip}:8787/"
    assert by_name["Guacamole-Ubuntu-22.04"]["portal_access_url"] == "https://{ip}/guacamole/"
    assert "portal_access_url" not in by_name["Ubuntu-22.04-LTS"]
