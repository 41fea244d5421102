"""Fault knobs: HTTP error injection, latency, hang, snapshot_killed, stuck_task, boot_error."""

import json
import threading
import time

import pytest
import requests

from .conftest import admin_api, member_api


def test_http_faults_from_the_command_line_use_the_service_error_shape(fresh_cloud):
    cloud = fresh_cloud(
        faults={
            "http": [
                {"method": "GET", "path": "^/compute/v2.1/servers", "status": 503, "count": 2},
                {"path": "^/image/v2/images$", "status": 500},
            ]
        }
    )
    api = member_api(cloud, "alpha")
    first = api.get("/compute/v2.1/servers/detail")
    assert first.status_code == 503
    assert first.json()["serviceUnavailable"]["code"] == 503
    assert api.get("/compute/v2.1/servers").status_code == 503
    assert api.get("/compute/v2.1/servers").status_code == 200  # count exhausted
    assert api.get("/compute/v2.1/flavors").status_code == 200  # other paths untouched
    image_error = api.get("/image/v2/images")
    assert image_error.status_code == 500
    assert image_error.json()["code"] == "500 Internal Server Error"
    assert api.get("/image/v2/images/schemas-are-not-matched").status_code == 404


def test_runtime_fault_endpoint_replaces_reads_and_is_admin_only(fresh_cloud):
    cloud = fresh_cloud()
    alpha = member_api(cloud, "alpha")
    assert alpha.get("/compute/v2.1/servers").status_code == 200
    spec = {
        "http": [{"method": "POST", "path": "/action$", "status": 409, "rate": 1.0, "count": 1}]
    }
    assert cloud.set_faults(spec) == spec
    assert cloud.get_faults() == spec
    sid = alpha.find_server("alpha-web-01")["id"]
    assert alpha.action(sid, {"os-stop": None}).status_code == 409
    assert cloud.get_faults()["http"][0]["count"] == 0
    assert alpha.action(sid, {"os-stop": None}).status_code == 202
    for method in ("GET", "PUT"):
        resp = alpha.request(method, "/devcloud/faults", json={})
        assert resp.status_code == 403
    bad = requests.put(
        f"{cloud.url}/devcloud/faults",
        data=json.dumps({"http": [{"status": 200}]}),
        headers={"X-Auth-Token": cloud.admin_token()},
    )
    assert bad.status_code == 400
    assert requests.get(f"{cloud.url}/devcloud/faults").status_code == 401
    assert cloud.set_faults({}) == {}


def test_rate_is_a_probability(fresh_cloud):
    cloud = fresh_cloud(
        faults={"http": [{"path": "^/compute/v2.1/flavors", "status": 502, "rate": 0.5}]}
    )
    api = member_api(cloud, "alpha")
    codes = [api.get("/compute/v2.1/flavors").status_code for _ in range(120)]
    failures = codes.count(502)
    assert set(codes) == {200, 502}
    assert 25 < failures < 95
    cloud.set_faults({"http": [{"path": "^/compute/v2.1/flavors", "status": 502, "rate": 0.0}]})
    assert {api.get("/compute/v2.1/flavors").status_code for _ in range(20)} == {200}


def test_latency_only_slows_matching_paths(fresh_cloud):
    cloud = fresh_cloud(faults={"latency": [{"path": "^/image", "ms": 300}]})
    api = member_api(cloud, "alpha")
    started = time.monotonic()
    assert api.get("/image/v2/images").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    api.get("/compute/v2.1/servers")
    assert time.monotonic() - started < 0.25


def _access_lines(cloud, needle):
    with open(cloud.access_log_path, encoding="utf-8") as fh:
        return [line for line in fh.read().splitlines() if needle in line]


def test_a_hung_path_times_the_client_out_while_other_paths_answer(fresh_cloud):
    cloud = fresh_cloud()
    api = member_api(cloud, "alpha")  # its token is taken before the hang
    cloud.set_faults({"hang": [{"path": "^/compute/v2.1/servers"}]})
    outcome = {}

    def hung_call():
        started = time.monotonic()
        try:
            requests.get(
                f"{cloud.url}/compute/v2.1/servers/detail",
                headers={"X-Auth-Token": api.token},
                timeout=3,
            )
        except requests.exceptions.ReadTimeout:
            outcome["timed_out_after"] = time.monotonic() - started
        else:
            outcome["answered"] = True

    caller = threading.Thread(target=hung_call)
    caller.start()
    time.sleep(0.5)
    # While that request is held, the rest of the cloud answers at once.
    for path in ("/compute/v2.1/flavors", "/image/v2/images", "/networking/v2.0/networks"):
        started = time.monotonic()
        assert api.get(path).status_code == 200
        assert time.monotonic() - started < 1
    assert caller.is_alive()
    caller.join(10)
    assert 3 <= outcome["timed_out_after"] < 5, outcome
    # The held request is logged once its client gave up, with the time it was held.
    deadline = time.monotonic() + 5
    while not _access_lines(cloud, "GET /compute/v2.1/servers/detail 499 "):
        assert time.monotonic() < deadline, "no 499 line for the hung request"
        time.sleep(0.05)
    held_ms = float(_access_lines(cloud, "GET /compute/v2.1/servers/detail 499 ")[0].split()[4])
    # Held until the client gave up at 3 s: devcloud's clock starts when the request
    # has arrived, after the client's has, so it may read a fraction of a ms less
    # (CI saw 2999.7). An answered request would be held for no time at all.
    assert held_ms >= 2900, held_ms
    cloud.set_faults({})  # lifted at run time
    assert api.get("/compute/v2.1/servers/detail").status_code == 200


def test_a_hung_action_has_no_effect_and_count_limits_the_hang(fresh_cloud):
    cloud = fresh_cloud(faults={"hang": [{"method": "POST", "path": "/action$", "count": 1}]})
    api = member_api(cloud, "alpha")
    sid = api.find_server("alpha-web-01")["id"]
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.action(sid, {"os-stop": None}, timeout=1)
    time.sleep(10 * 3.0 / 40)  # ten times the simulated stop duration
    assert api.server(sid)["status"] == "ACTIVE"  # dropped, never executed
    assert cloud.get_faults()["hang"][0]["count"] == 0
    assert api.action(sid, {"os-stop": None}).status_code == 202
    api.wait_status(sid, "SHUTOFF")


def test_snapshot_killed_then_deleted_and_task_state_cleared(fresh_cloud):
    cloud = fresh_cloud(faults={"snapshot_killed": {"server_name": "^alpha-web-01$"}})
    api = member_api(cloud, "alpha")
    sid = api.find_server("alpha-web-01")["id"]
    image_id = api.action(sid, {"createImage": {"name": "will-die"}}).json()["image_id"]
    statuses = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        resp = api.image(image_id)
        status = resp.json()["status"] if resp.status_code == 200 else resp.status_code
        if not statuses or statuses[-1] != status:
            statuses.append(status)
        if status == 404:
            break
        time.sleep(0.005)
    assert statuses[0] == "queued"
    assert statuses[-2:] == ["killed", 404]
    server = api.server(sid)
    assert server["OS-EXT-STS:task_state"] is None
    assert server["status"] == "ACTIVE"
    other = api.find_server("alpha-worker-01")["id"]
    ok_id = api.action(other, {"createImage": {"name": "will-live"}}).json()["image_id"]
    api.wait_image(ok_id, lambda r: r.json()["status"] == "active")


def test_stuck_task_never_finishes(fresh_cloud):
    cloud = fresh_cloud(
        faults={"stuck_task": {"server_name": "^alpha-web-01$", "task_state": "powering-off"}}
    )
    api = member_api(cloud, "alpha")
    stuck = api.find_server("alpha-web-01")["id"]
    free = api.find_server("alpha-worker-01")["id"]
    assert api.action(stuck, {"os-stop": None}).status_code == 202
    assert api.action(free, {"os-stop": None}).status_code == 202
    api.wait_status(free, "SHUTOFF")
    time.sleep(10 * 3.0 / 40)  # ten times the simulated stop duration
    server = api.server(stuck)
    assert server["status"] == "ACTIVE"
    assert server["OS-EXT-STS:task_state"] == "powering-off"
    assert api.action(stuck, {"os-stop": None}).status_code == 409


def test_stuck_snapshot_state(fresh_cloud):
    cloud = fresh_cloud(
        faults={"stuck_task": {"server_name": "web", "task_state": "image_uploading"}}
    )
    api = member_api(cloud, "alpha")
    sid = api.find_server("alpha-web-01")["id"]
    image_id = api.action(sid, {"createImage": {"name": "frozen"}}).json()["image_id"]
    server = api.wait_server(sid, lambda s: s["OS-EXT-STS:task_state"] == "image_uploading")
    time.sleep(1.0)
    assert api.server(sid)["OS-EXT-STS:task_state"] == "image_uploading"
    assert api.image(image_id).json()["status"] == "saving"
    assert server["status"] == "ACTIVE"


def test_boot_error_hits_only_matching_names(fresh_cloud):
    cloud = fresh_cloud(
        faults={
            "boot_error": {
                "server_name": "^ws-3$",
                "message": "No valid host was found. There are not enough hosts available.",
            }
        }
    )
    api = member_api(cloud, "alpha")
    api.create_server("ws", min_count=5, max_count=5)
    servers = api.get("/compute/v2.1/servers/detail", params={"name": "^ws-"}).json()["servers"]
    assert len(servers) == 5
    final = {s["name"]: api.wait_server(s["id"], lambda x: x["status"] != "BUILD") for s in servers}
    assert sorted(s["status"] for s in final.values()) == ["ACTIVE"] * 4 + ["ERROR"]
    failed = final["ws-3"]
    assert failed["status"] == "ERROR"
    assert failed["OS-EXT-STS:task_state"] is None
    assert failed["fault"]["code"] == 500
    assert failed["fault"]["message"] == (
        "No valid host was found. There are not enough hosts available."
    )
    assert failed["fault"]["created"].endswith("Z")
    assert "fault" not in final["ws-1"]


@pytest.mark.parametrize(
    "spec",
    [
        '{"http": [{"status": "x"}]}',
        "not json",
        '{"unknown_kind": {}}',
        '{"hang": [{"path": "("}]}',
        '{"hang": [{"rate": 2}]}',
    ],
)
def test_bad_fault_spec_on_the_command_line_fails_fast(tmp_path, spec):
    import subprocess
    import sys

    from devcloud.launcher import REPO_ROOT

    proc = subprocess.run(
        [sys.executable, "-m", "devcloud", "serve", "--data", str(tmp_path), "--faults", spec],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "bad --faults" in proc.stderr


def test_faults_file_reference(tmp_path, fresh_cloud):
    path = tmp_path / "faults.json"
    path.write_text(json.dumps({"http": [{"path": "^/compute/v2.1/limits", "status": 429}]}))
    cloud = fresh_cloud()
    cloud.faults = f"@{path}"
    cloud.stop()
    # The launcher passes dict faults as JSON; a string is handed through for @file specs.
    cloud.start()
    api = admin_api(cloud)
    assert api.get("/compute/v2.1/limits").status_code == 429
