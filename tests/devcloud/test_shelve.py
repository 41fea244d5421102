"""shelve, shelveOffload and unshelve as the stock Nova 34 does them (seen on the
loopback OpenStack): states, the "-shelved" image, what is kept, quota, locks, policy."""

import pytest

from .conftest import admin_api, member_api, start_cloud
from .test_lifecycle import _watch

SLOW = 8.0


@pytest.fixture(scope="module")
def shelf_cloud(tmp_path_factory):
    proc = start_cloud(tmp_path_factory, "shelve", speed=SLOW, upload_rate=1000)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def api(shelf_cloud):
    return member_api(shelf_cloud, "alpha")


def _idle(server):
    return server["OS-EXT-STS:task_state"] is None


def _shelved_images(api, name):
    return api.get("/image/v2/images", params={"name": f"{name}-shelved"}).json()["images"]


def _limits(api):
    absolute = api.get("/compute/v2.1/limits").json()["limits"]["absolute"]
    return absolute["totalCoresUsed"], absolute["totalRAMUsed"], absolute["totalInstancesUsed"]


def _booted(api, name, **extra):
    sid = api.create_server(name, flavor="de.NBI tiny", **extra)
    api.wait_status(sid, "ACTIVE", timeout=30)
    return sid


def test_shelve_offloads_at_once_and_keeps_name_ip_flavor_metadata(api):
    sid = _booted(api, "shelf-round", metadata={"k": "v"})
    before = api.server(sid)
    used = _limits(api)
    try:
        assert api.action(sid, {"shelve": None}).status_code == 202
        again = api.action(sid, {"shelve": None})
        assert again.json()["conflictingRequest"]["message"] == (
            f"Cannot 'shelve' instance {sid} while it is in task_state shelving"
        )
        image = _shelved_images(api, "shelf-round")[0]
        assert image["status"] == "queued"
        assert image["instance_uuid"] == sid
        assert image["image_type"] == "snapshot"
        assert image["visibility"] == "private"
        assert image["owner"] == api.project_id
        seen, server = _watch(
            api, sid, lambda s: s["status"] == "SHELVED_OFFLOADED" and _idle(s), timeout=60
        )
        assert seen == [
            ("ACTIVE", "shelving"),
            ("ACTIVE", "shelving_image_pending_upload"),
            ("ACTIVE", "shelving_image_uploading"),
            ("SHELVED", "shelving_offloading"),
            ("SHELVED_OFFLOADED", None),
        ]
        assert server["OS-EXT-STS:power_state"] == 4
        assert server["hostId"] == ""
        assert server["OS-EXT-AZ:availability_zone"] == ""
        for kept in ("name", "addresses", "flavor", "metadata", "image"):
            assert server[kept] == before[kept], kept
        image = api.image(image["id"]).json()
        assert image["status"] == "active"
        assert image["image_location"] == "snapshot"
        assert image["owner_id"] == api.project_id
        # Nova 34 counts quota from its database: an offloaded server still uses it.
        assert _limits(api) == used
        refused = {
            "shelve": f"Cannot 'shelve' instance {sid} while it is in vm_state shelved_offloaded",
            "os-start": f"Instance {sid} is not ready",
        }
        for action, message in refused.items():
            resp = api.action(sid, {action: None})
            assert resp.json()["conflictingRequest"]["message"] == message

        assert api.action(sid, {"unshelve": None}).status_code == 202
        seen, server = _watch(api, sid, lambda s: s["status"] == "ACTIVE" and _idle(s))
        assert seen == [
            ("SHELVED_OFFLOADED", "unshelving"),
            ("SHELVED_OFFLOADED", "spawning"),
            ("ACTIVE", None),
        ]
        assert server["addresses"] == before["addresses"]
        assert server["metadata"] == {"k": "v"}
        # Nova deletes the shelved image once the server runs again.
        assert api.image(image["id"]).status_code == 404
        assert _shelved_images(api, "shelf-round") == []
    finally:
        api.delete(f"/compute/v2.1/servers/{sid}")


def test_shelve_from_shutoff_and_delete_while_offloaded_removes_the_image(api):
    sid = _booted(api, "shelf-stopped")
    try:
        api.action(sid, {"os-stop": None})
        api.wait_status(sid, "SHUTOFF")
        assert api.action(sid, {"shelve": None}).status_code == 202
        seen, _ = _watch(api, sid, lambda s: s["status"] == "SHELVED_OFFLOADED" and _idle(s))
        assert seen[0] == ("SHUTOFF", "shelving")
        image_id = _shelved_images(api, "shelf-stopped")[0]["id"]
    finally:
        api.delete(f"/compute/v2.1/servers/{sid}")
    assert api.image(image_id).status_code == 404


def test_unshelve_refusals_and_microversions(api, shelf_cloud):
    sid = _booted(api, "shelf-rules")
    try:
        resp = api.action(sid, {"unshelve": None})
        assert resp.json()["conflictingRequest"]["message"] == (
            f"Cannot 'unshelve' instance {sid} while it is in vm_state active"
        )
        # shelveOffload is admin-only by Nova's default policy.
        resp = api.action(sid, {"shelveOffload": None})
        assert resp.status_code == 403
        assert resp.json()["forbidden"]["message"] == (
            "Policy doesn't allow os_compute_api:os-shelve:shelve_offload to be performed."
        )
        api.action(sid, {"shelve": None})
        api.wait_status(sid, "SHELVED_OFFLOADED", timeout=60)
        bad = api.action(sid, {"unshelve": {"foo": 1}})
        assert bad.status_code == 400
        assert bad.json()["badRequest"]["message"] == (
            "Invalid input for field/attribute unshelve. Value: {'foo': 1}. "
            "Additional properties are not allowed ('foo' was unexpected)"
        )
        zone = api.action(sid, {"unshelve": {"availability_zone": "elsewhere"}})
        assert zone.status_code == 400
        admin = admin_api(shelf_cloud, "alpha")
        admin.action(sid, {"lock": None})
        locked = api.action(sid, {"unshelve": None})
        assert locked.json()["conflictingRequest"]["message"] == f"Instance {sid} is locked"
        admin.action(sid, {"unlock": None})
        # Before 2.77 a body is ignored.
        ok = api.action(sid, {"unshelve": {"availability_zone": "x"}}, microversion="2.76")
        assert ok.status_code == 202
        api.wait_status(sid, "ACTIVE", timeout=30)
    finally:
        api.delete(f"/compute/v2.1/servers/{sid}")


def test_a_site_without_shelve_answers_the_policy_403(fresh_cloud):
    cloud = fresh_cloud(faults={"shelve_forbidden": {"server_name": "^noshelf"}})
    alpha = member_api(cloud, "alpha")
    sid = alpha.create_server("noshelf-1", flavor="de.NBI tiny")
    alpha.wait_status(sid, "ACTIVE", timeout=30)
    resp = alpha.action(sid, {"shelve": None})
    assert resp.status_code == 403
    assert resp.json()["forbidden"]["message"] == (
        "Policy doesn't allow os_compute_api:os-shelve:shelve to be performed."
    )
    assert alpha.server(sid)["status"] == "ACTIVE"
