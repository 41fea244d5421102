"""State survives a restart: servers, images, tokens and pending transitions."""

import time

from .conftest import member_api


def test_restart_keeps_everything_and_resumes_transitions(fresh_cloud):
    cloud = fresh_cloud(speed=8.0)  # slow enough that operations are mid-flight at stop()
    api = member_api(cloud, "alpha")
    port = cloud.port
    upload = api.post(
        "/image/v2/images", json={"name": "kept", "disk_format": "raw", "container_format": "bare"}
    ).json()
    api.put(
        f"/image/v2/images/{upload['id']}/file",
        data=b"persist me",
        headers={"Content-Type": "application/octet-stream"},
    )
    web = api.find_server("alpha-web-01")["id"]
    cloud.set_server(web, disk_used_bytes=1000**3)  # 15 s nominal: still mid-flight at stop()
    booting = api.create_server("survivor")
    snap = api.action(web, {"createImage": {"name": "mid-flight"}}).json()["image_id"]
    assert api.server(booting)["status"] == "BUILD"

    cloud.stop()
    cloud.start()
    assert cloud.port == port

    # The old token still works against the new process.
    assert api.server(booting)["name"] == "survivor"
    assert api.get(f"/image/v2/images/{upload['id']}/file").content == b"persist me"
    api.wait_status(booting, "ACTIVE", timeout=20)
    api.wait_image(snap, lambda r: r.json()["status"] == "active", timeout=30)
    # Nova clears task_state a moment (2 s nominal) after Glance is done.
    api.wait_server(web, lambda s: s["OS-EXT-STS:task_state"] is None, timeout=5)


def test_overdue_transitions_apply_right_after_restart(fresh_cloud):
    cloud = fresh_cloud(speed=20.0)
    api = member_api(cloud, "alpha")
    sid = api.find_server("alpha-worker-01")["id"]
    assert api.action(sid, {"os-stop": None}).status_code == 202
    cloud.stop()
    time.sleep(0.3)  # longer than the simulated stop (3 s / 20)
    cloud.start()
    server = api.server(sid)
    deadline = time.monotonic() + 2
    while server["status"] != "SHUTOFF" and time.monotonic() < deadline:
        time.sleep(0.02)
        server = api.server(sid)
    assert server["status"] == "SHUTOFF"
    assert server["OS-EXT-STS:task_state"] is None


def test_seed_is_deterministic_and_only_applied_once(tmp_path_factory, fresh_cloud):
    one, two = fresh_cloud(), fresh_cloud()
    ids_one = {
        s["name"]: s["id"]
        for s in member_api(one, "alpha").get("/compute/v2.1/servers").json()["servers"]
    }
    ids_two = {
        s["name"]: s["id"]
        for s in member_api(two, "alpha").get("/compute/v2.1/servers").json()["servers"]
    }
    assert ids_one == ids_two
    api = member_api(one, "alpha")
    victim = ids_one["alpha-analysis-02"]
    assert api.delete(f"/compute/v2.1/servers/{victim}").status_code == 204
    one.stop()
    one.start()
    assert api.get(f"/compute/v2.1/servers/{victim}").status_code == 404


def test_secondary_profile_catalog(fresh_cloud):
    cloud = fresh_cloud(profile="secondary")
    from .conftest import admin_api

    admin = admin_api(cloud)
    names = {p["name"] for p in admin.get("/identity/v3/projects").json()["projects"]}
    assert names == {"admin", "gamma"}
    gamma = member_api(cloud, "gamma")
    images = {i["name"]: i for i in gamma.get("/image/v2/images").json()["images"]}
    assert "Guacamole-Ubuntu-22.04" not in images
    assert images["Debian-12"]["min_disk"] == 25
    servers = gamma.get("/compute/v2.1/servers").json()["servers"]
    assert len(servers) == 3
    snaps = gamma.get("/image/v2/images", params={"image_type": "snapshot"}).json()["images"]
    assert len(snaps) == 1
    assert "gamma" in cloud.clouds_yaml()
    assert "devcloud-gamma:" in cloud.clouds_yaml()


def test_base_image_checksums_match_across_sites_except_debian(fresh_cloud):
    one = member_api(fresh_cloud(), "alpha")
    two = member_api(fresh_cloud(profile="secondary"), "gamma")
    sums_one = {
        i["name"]: i["checksum"]
        for i in one.get("/image/v2/images", params={"visibility": "public"}).json()["images"]
    }
    sums_two = {
        i["name"]: i["checksum"]
        for i in two.get("/image/v2/images", params={"visibility": "public"}).json()["images"]
    }
    assert sums_one["Ubuntu-22.04-LTS"] == sums_two["Ubuntu-22.04-LTS"]
    assert sums_one["Debian-12"] != sums_two["Debian-12"]
