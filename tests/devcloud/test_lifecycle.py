"""State sequences of boot/stop/start/snapshot, observed by polling raw GETs, and the 409s."""

import time

import pytest

from devcloud import seed

from .conftest import member_api

SLOW = 8.0  # slow enough that a ~3 ms poll loop sees every intermediate state
GIB = 1024**3


@pytest.fixture(scope="module")
def slow_cloud(tmp_path_factory):
    from .conftest import start_cloud

    # Uploads at 1 GB/s: these tests watch state sequences, and test_realism checks
    # upload durations at the default 100 MB/s.
    proc = start_cloud(tmp_path_factory, "slow", speed=SLOW, upload_rate=1000)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def api(slow_cloud):
    return member_api(slow_cloud, "alpha")


def _dedupe(values):
    out = []
    for value in values:
        if not out or out[-1] != value:
            out.append(value)
    return out


def _watch(api, server_id, until, image_id=None, timeout=30):
    """Poll until `until(server)`; return the distinct consecutive states seen.

    With image_id, returns (server states, image statuses) as two sequences since
    two GETs can never observe both objects at one instant.
    """
    servers, images = [], []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = api.server(server_id)
        servers.append((server["status"], server["OS-EXT-STS:task_state"]))
        if image_id:
            resp = api.image(image_id)
            images.append(resp.json()["status"] if resp.status_code == 200 else resp.status_code)
        if until(server) and (not image_id or images[-1] != "saving"):
            if image_id:
                return (_dedupe(servers), _dedupe(images)), server
            return _dedupe(servers), server
    raise AssertionError(f"timed out; saw {_dedupe(servers)} {_dedupe(images)}")


def _idle(server):
    return server["OS-EXT-STS:task_state"] is None


def test_boot_sequence(api):
    server_id = api.create_server("seq-boot")
    try:
        seen, server = _watch(api, server_id, lambda s: s["status"] != "BUILD")
        assert seen[0] == ("BUILD", "scheduling")
        assert [s for s in seen] == [
            ("BUILD", "scheduling"),
            ("BUILD", "networking"),
            ("BUILD", "block_device_mapping"),
            ("BUILD", "spawning"),
            ("ACTIVE", None),
        ]
        assert server["OS-EXT-STS:power_state"] == 1
        assert server["OS-SRV-USG:launched_at"]
        assert server["addresses"]["private"][0]["addr"].startswith("192.168.")
    finally:
        api.delete(f"/compute/v2.1/servers/{server_id}")


def test_stop_start_sequences_and_conflicts(api):
    server = api.find_server("alpha-analysis-02")
    sid = server["id"]
    assert server["status"] == "SHUTOFF"
    conflict = api.action(sid, {"os-stop": None})
    assert conflict.status_code == 409
    assert conflict.json()["conflictingRequest"]["message"] == (
        f"Cannot 'stop' instance {sid} while it is in vm_state stopped"
    )
    assert api.action(sid, {"os-start": None}).status_code == 202
    again = api.action(sid, {"os-start": None})
    assert again.json()["conflictingRequest"]["message"] == (
        f"Cannot 'start' instance {sid} while it is in task_state powering-on"
    )
    seen, started = _watch(api, sid, lambda s: s["status"] == "ACTIVE" and _idle(s))
    assert seen == [("SHUTOFF", "powering-on"), ("ACTIVE", None)]
    assert started["OS-EXT-STS:power_state"] == 1
    assert started["updated"] >= server["updated"]

    assert api.action(sid, {"os-stop": None}, headers={"Accept": ""}).status_code == 202
    during = {
        "os-stop": f"Cannot 'stop' instance {sid} while it is in task_state powering-off",
        "os-start": f"Cannot 'start' instance {sid} while it is in vm_state active",
        "createImage": f"Cannot 'createImage' instance {sid} while it is in task_state powering-off",
    }
    for action, message in during.items():
        body = {action: {"name": "nope"} if action == "createImage" else None}
        resp = api.action(sid, body)
        assert resp.status_code == 409, action
        assert resp.json() == {"conflictingRequest": {"code": 409, "message": message}}
    seen, stopped = _watch(api, sid, lambda s: s["status"] == "SHUTOFF" and _idle(s))
    assert seen == [("ACTIVE", "powering-off"), ("SHUTOFF", None)]
    assert stopped["OS-EXT-STS:power_state"] == 4


def test_snapshot_sequence_and_image_properties(api, slow_cloud):
    server = api.find_server("alpha-web-01")
    sid = server["id"]
    resp = api.action(sid, {"createImage": {"name": "seq-snap", "metadata": {"note": "hi"}}})
    assert resp.status_code == 202
    image_id = resp.json()["image_id"]
    first = api.image(image_id).json()
    assert first["status"] == "queued"
    busy = api.action(sid, {"createImage": {"name": "second"}})
    assert busy.status_code == 409
    assert busy.json()["conflictingRequest"]["message"] == (
        f"Cannot 'createImage' instance {sid} while it is in task_state image_snapshot_pending"
    )
    (states, statuses), _ = _watch(api, sid, _idle, image_id=image_id)
    assert states == [
        ("ACTIVE", "image_snapshot_pending"),
        ("ACTIVE", "image_snapshot"),
        ("ACTIVE", "image_pending_upload"),
        ("ACTIVE", "image_uploading"),
        ("ACTIVE", None),
    ]
    assert statuses == ["queued", "saving", "active"]
    image = api.image(image_id).json()
    try:
        assert image["size"] == int(4.2 * GIB)  # the seeded disk use of alpha-web-01
        assert image["checksum"]
        assert image["os_hash_algo"] == "sha512"
        assert image["visibility"] == "private"
        assert image["owner"] == api.project_id
        assert image["image_type"] == "snapshot"
        assert image["instance_uuid"] == sid
        assert image["base_image_ref"] == server["image"]["id"]
        assert image["owner_project_name"] == "alpha"
        assert image["owner_user_name"] == seed.member_user("alpha")
        assert image["user_id"] == api.user_id
        assert image["os_distro"] == "ubuntu"
        assert image["note"] == "hi"
        assert image["min_disk"] == 50
        assert image["min_ram"] == 1024
        assert image["updated_at"] >= image["created_at"]
    finally:
        api.delete(f"/image/v2/images/{image_id}")


def test_snapshot_of_a_stopped_server_keeps_it_shutoff(api):
    sid = api.find_server("alpha-analysis-02")["id"]
    resp = api.action(sid, {"createImage": {"name": "stopped-snap"}}, microversion="2.44")
    assert resp.status_code == 202
    assert resp.content == b""
    image_id = resp.headers["Location"].rsplit("/", 1)[1]
    assert resp.headers["Location"].endswith(f"/image/v2/images/{image_id}")
    try:
        (states, statuses), _ = _watch(api, sid, _idle, image_id=image_id, timeout=60)
        assert {s[0] for s in states} == {"SHUTOFF"}
        assert states[-1] == ("SHUTOFF", None)
        assert statuses[-1] == "active"
    finally:
        api.delete(f"/image/v2/images/{image_id}")


def test_build_and_error_servers_refuse_actions(api):
    broken = api.find_server("alpha-broken-01")["id"]
    assert api.action(broken, {"os-start": None}).json()["conflictingRequest"]["message"] == (
        f"Cannot 'start' instance {broken} while it is in vm_state error"
    )
    assert api.action(broken, {"createImage": {"name": "x"}}).status_code == 409
    sid = api.create_server("seq-build")
    try:
        resp = api.action(sid, {"os-stop": None})
        assert resp.status_code == 409
        assert "while it is in vm_state building" in resp.json()["conflictingRequest"]["message"]
        assert api.action(sid, {"reboot": {"type": "SOFT"}}).status_code == 400
    finally:
        api.delete(f"/compute/v2.1/servers/{sid}")


def test_deleting_a_server_mid_snapshot_kills_and_removes_the_image(api):
    sid = api.create_server("seq-doomed")
    api.wait_status(sid, "ACTIVE", timeout=30)
    image_id = api.action(sid, {"createImage": {"name": "orphan"}}).json()["image_id"]
    assert api.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
    assert api.image(image_id).json()["status"] == "killed"
    api.wait_image(image_id, lambda r: r.status_code == 404, timeout=10)
