"""os-getConsoleOutput: Nova's validation and answers, and a boot log that grows with time."""

import itertools
import re
import sqlite3
import time

import pytest

from .conftest import member_api

FINISHED = re.compile(
    r"Cloud-init v\. \S+ finished at .+ Datasource DataSourceOpenStack\S* .*Up ([0-9.]+) seconds"
)
CONTROL = re.compile("[\x00-\x08\x0b-\x1f]")


def _console(api, server_id, **args):
    return api.action(server_id, {"os-getConsoleOutput": args})


def _output(api, server_id, **args):
    resp = _console(api, server_id, **args)
    assert resp.status_code == 200, resp.text
    return resp.json()["output"]


def test_output_shape_and_length_follow_nova(alpha):
    sid = alpha.find_server("alpha-web-01")["id"]
    resp = _console(alpha, sid)
    assert resp.status_code == 200
    assert list(resp.json()) == ["output"]
    full = resp.json()["output"]
    # A demo server booted long ago: the whole boot, ending at the login prompt.
    assert full.startswith("[    0.000000] Linux version ")
    assert FINISHED.search(full)
    assert full.endswith("\nalpha-web-01 login: ")
    assert not CONTROL.search(full.replace("\n", ""))  # Nova strips CR and ESC
    assert "[[0;32m  OK  [0m] Reached target Multi-User System." in full
    assert _output(alpha, sid) == full  # the same text every time
    lines = full.split("\n")
    assert _output(alpha, sid, length=10) == "\n".join(lines[-10:])
    assert len(_output(alpha, sid, length=10).split("\n")) == 10  # as tempest counts
    assert _output(alpha, sid, length="5") == "\n".join(lines[-5:])
    assert _output(alpha, sid, length=3.0) == "\n".join(lines[-3:])
    assert _output(alpha, sid, length=None) == full
    assert _output(alpha, sid, length=0) == ""
    assert _output(alpha, sid, length=100000) == full
    # Nova hands -1 to a [-length:] slice: everything but the first line.
    assert _output(alpha, sid, length=-1) == "\n".join(lines[1:])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"length": -2}, "Value: -2. -2 is less than the minimum of -1"),
        ({"length": "-3"}, "Value: -3. -3 is less than the minimum of -1"),
        ({"length": "ten"}, "Value: ten. 'ten' does not match '^-?[0-9]+$'"),
        ({"length": 2.5}, "2.5 is not of type 'integer', 'string', 'null'"),
        ({"length": True}, "True is not of type 'integer', 'string', 'null'"),
        ({"length": [1]}, "[1] is not of type 'integer', 'string', 'null'"),
        ({"length": 1, "tail": 1}, "Additional properties are not allowed ('tail' was unexpected)"),
        (None, "None is not of type 'object'"),
        ("10", "'10' is not of type 'object'"),
    ],
)
def test_bad_input_is_a_400_before_the_server_is_looked_up(alpha, args, message):
    sid = alpha.find_server("alpha-web-01")["id"]
    for target in (sid, "00000000-0000-0000-0000-000000000000"):
        resp = alpha.action(target, {"os-getConsoleOutput": args})
        assert resp.status_code == 400, resp.text
        assert message in resp.json()["badRequest"]["message"]


def test_unknown_and_other_projects_servers_are_404(alpha, beta):
    resp = _console(alpha, "00000000-0000-0000-0000-000000000000")
    assert resp.status_code == 404
    assert "could not be found" in resp.json()["itemNotFound"]["message"]
    other = beta.find_server("beta-ws-01")["id"]
    assert _console(alpha, other).status_code == 404


def test_no_console_before_the_guest_runs(fresh_cloud):
    cloud = fresh_cloud(
        faults={"stuck_task": {"server_name": "^held$", "task_state": "scheduling"}}
    )
    api = member_api(cloud, "alpha")
    # No host yet (scheduling), or never got one (ERROR from NoValidHost): 409.
    for sid in (api.create_server("held"), api.find_server("alpha-broken-01")["id"]):
        resp = _console(api, sid)
        assert resp.status_code == 409, resp.text
        assert resp.json()["conflictingRequest"]["message"] == f"Instance {sid} is not ready"
    # On a host, but libvirt has no domain yet: the driver's InstanceNotFound, a 404.
    cloud.set_faults({"stuck_task": {"server_name": "^wired$", "task_state": "networking"}})
    sid = api.create_server("wired")
    api.wait_server(sid, lambda s: s["OS-EXT-STS:task_state"] == "networking")
    resp = _console(api, sid)
    assert resp.status_code == 404
    assert resp.json()["itemNotFound"]["message"] == f"Instance {sid} could not be found."


def test_boot_log_grows_until_cloud_init_finished_and_the_login_prompt(fresh_cloud):
    speed, guest_boot = 20.0, 40.0
    cloud = fresh_cloud(speed=speed, guest_boot=guest_boot)
    api = member_api(cloud, "alpha")
    started = time.monotonic()
    sid = api.create_server("Boot_Probe.1")
    codes, outputs = {}, []
    deadline = started + 30

    def state():
        server = api.server(sid)
        return server["status"], server["OS-EXT-STS:task_state"]

    while time.monotonic() < deadline:
        before = state()
        resp = _console(api, sid)
        # Only an answer with the same state on both sides belongs to that state.
        state_ = before if state() == before else None
        codes.setdefault(state_, set()).add(resp.status_code)
        if resp.status_code == 200:
            output = resp.json()["output"]
            if not outputs or outputs[-1][1] != output:
                outputs.append((state_, output))
            if output.endswith(" login: "):
                break
        time.sleep(0.02)
    seen_at = time.monotonic() - started
    assert outputs
    assert outputs[-1][1].endswith("\nboot-probe-1 login: "), outputs[-1:]
    assert codes.get(("BUILD", "scheduling"), {409}) == {409}
    assert codes.get(("BUILD", "networking"), {404}) == {404}
    assert codes.get(("ACTIVE", None)) == {200}
    # Every answer extends the one before: the log only grows.
    for (_, before), (_, after) in itertools.pairwise(outputs):
        assert after.startswith(before)
    active = [out for state_, out in outputs if state_ == ("ACTIVE", None)]
    assert len(active) >= 3
    assert "login:" not in active[0]
    final = outputs[-1][1]
    assert final.startswith("[    0.000000] Linux version 5.15.0-")
    stages = ["'init-local'", "'init'", "'modules:config'", "'modules:final'", " finished at "]
    positions = [final.index(stage) for stage in stages]
    assert positions == sorted(positions)
    # The prompt comes guest_boot nominal seconds after ACTIVE, the guest having
    # started CONSOLE_LEAD_SECONDS (1) before ACTIVE, 4 s into the 5 s boot.
    assert seen_at >= (4 + 1 + guest_boot) / speed - 0.05
    uptime = float(FINISHED.search(final).group(1))
    assert uptime == pytest.approx(1 + guest_boot - 0.5, abs=0.01)
    assert "|  ens3  | True |" in final
    assert "Ubuntu 22.04.4 LTS boot-probe-1 ttyS0" in final


def test_stop_logs_a_shutdown_and_start_begins_a_new_log(cloud, alpha):
    sid = alpha.create_server("console-cycle", image="Debian-12")
    try:
        alpha.wait_status(sid, "ACTIVE")
        deadline = time.monotonic() + 20
        while not _output(alpha, sid).endswith("console-cycle login: "):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        booted = _output(alpha, sid)
        assert "Welcome to [1mDebian GNU/Linux 12 (bookworm)[0m!" in booted
        assert "Debian GNU/Linux 12 console-cycle ttyS0" in booted
        assert alpha.action(sid, {"os-stop": None}).status_code == 202
        alpha.wait_status(sid, "SHUTOFF")
        stopped = _output(alpha, sid)
        # The shutdown follows the prompt on the same line, as on a real serial console.
        assert stopped.startswith(booted)
        assert stopped[len(booted) :].startswith("[[0;32m  OK  [0m] Stopped target")
        assert re.search(r"\] reboot: Power down\n$", stopped)
        assert _output(alpha, sid) == stopped
        assert alpha.action(sid, {"os-start": None}).status_code == 202
        alpha.wait_status(sid, "ACTIVE")
        restarted = _output(alpha, sid)
        # libvirt truncates the log at each power-on (append='off').
        assert restarted.startswith("[    0.000000] Linux version 6.1.0-")
        assert "Power down" not in restarted
    finally:
        alpha.delete(f"/compute/v2.1/servers/{sid}")
    assert _console(alpha, sid).status_code == 404


def test_an_old_data_directory_gets_the_console_column(tmp_path):
    from devcloud import store

    old_schema = store.SCHEMA.replace(",\n    console TEXT\n", "\n")
    assert old_schema != store.SCHEMA
    conn = sqlite3.connect(tmp_path / store.DB_NAME)
    conn.executescript(old_schema)
    conn.close()
    opened = store.Store(str(tmp_path))
    columns = {row[1] for row in opened.conn.execute("PRAGMA table_info(servers)")}
    assert "console" in columns


PANIC_END = (
    "---[ end Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0) ]---\n"
)


def _wait_output(api, server_id, predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        output = _output(api, server_id)
        if predicate(output):
            return output
        assert time.monotonic() < deadline, output[-500:]
        time.sleep(0.02)


def test_boot_panic_server_from_a_matching_snapshot_is_active_but_never_boots(fresh_cloud):
    cloud = fresh_cloud(faults={"boot_panic": {"image_name": "^broken-"}})
    api = member_api(cloud, "alpha")
    source = api.find_server("alpha-web-01")["id"]
    cloud.set_server(source, disk_used_bytes=10**8)  # a quick snapshot
    snaps = {}
    for name in ("broken-snap", "good-snap"):
        snaps[name] = api.action(source, {"createImage": {"name": name}}).json()["image_id"]
        api.wait_image(snaps[name], lambda r: r.json()["status"] == "active")
        api.wait_status(source, "ACTIVE")
    bad = api.create_server("verify-bad", image="broken-snap")
    good = api.create_server("verify-good", image="good-snap")
    for sid in (bad, good):
        server = api.wait_status(sid, "ACTIVE")
        assert "fault" not in server
        assert server["OS-EXT-STS:power_state"] == 1
    # By the time the good one has booted, the bad one is long past its panic.
    _wait_output(api, good, lambda out: out.endswith("verify-good login: "))
    panicked = _output(api, bad)
    assert panicked.endswith(PANIC_END)
    assert "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)" in (
        panicked
    )
    assert "login:" not in panicked
    assert "Cloud-init" not in panicked
    assert cloud.get_faults()["boot_panic"] == {"image_name": "^broken-"}
    # The image stays broken: a stop (no shutdown logged) and a start panic again.
    assert api.action(bad, {"os-stop": None}).status_code == 202
    api.wait_status(bad, "SHUTOFF")
    assert _output(api, bad) == panicked
    assert api.action(bad, {"os-start": None}).status_code == 202
    api.wait_status(bad, "ACTIVE")
    assert _wait_output(api, bad, lambda out: out.endswith(PANIC_END)) == panicked


def test_boot_panic_error_mode_fails_the_build_and_spends_its_count(fresh_cloud):
    cloud = fresh_cloud(
        speed=5,  # spawning lasts 0.3 s: a poll loop sees it even on a busy machine
        faults={
            "boot_panic": {
                "image_name": "^Debian-12$",
                "server_name": "^verify-",
                "mode": "error",
                "count": 1,
            }
        },
    )
    api = member_api(cloud, "alpha")
    debian = api.find_image("Debian-12")["id"]
    # Neither a name nor an image that does not match spends the count.
    for sid in (api.create_server("other", image="Debian-12"), api.create_server("verify-ub")):
        api.wait_status(sid, "ACTIVE")
    assert cloud.get_faults()["boot_panic"]["count"] == 1
    sid = api.create_server("verify-1", image="Debian-12")
    states = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        server = api.server(sid)
        state = server["OS-EXT-STS:task_state"] if server["status"] == "BUILD" else server["status"]
        if not states or states[-1] != state:
            states.append(state)
        if server["status"] != "BUILD":
            break
    # Unlike boot_error (NoValidHost), it fails on the host, while spawning.
    assert states[-2:] == ["spawning", "ERROR"], states
    assert server["OS-EXT-STS:task_state"] is None
    assert server["addresses"] == {}
    assert server["fault"]["code"] == 500
    assert server["fault"]["message"] == (
        f"Build of instance {sid} aborted: Image {debian} is unacceptable: "
        "Image content does not match disk_format"
    )
    assert _console(api, sid).status_code == 409
    assert cloud.get_faults()["boot_panic"]["count"] == 0
    api.wait_status(api.create_server("verify-2", image="Debian-12"), "ACTIVE")
    cloud.set_faults({"boot_panic": {"image_name": "Debian", "mode": "error", "message": "m"}})
    failed = api.wait_server(
        api.create_server("verify-3", image="Debian-12"), lambda s: s["status"] == "ERROR"
    )
    assert failed["fault"]["message"] == "m"


def test_boot_panic_silent_mode_boots_with_an_empty_console_log(fresh_cloud):
    cloud = fresh_cloud(faults={"boot_panic": {"image_name": "^Debian-12$", "mode": "silent"}})
    api = member_api(cloud, "alpha")
    quiet = api.create_server("quiet", image="Debian-12")
    loud = api.create_server("loud")
    for sid in (quiet, loud):
        server = api.wait_status(sid, "ACTIVE")
        assert "fault" not in server
        assert server["OS-EXT-STS:power_state"] == 1
    # By the time the other one has booted, the silent one would have too.
    _wait_output(api, loud, lambda out: out.endswith("loud login: "))
    assert _console(api, quiet).status_code == 200
    assert _output(api, quiet) == ""
    # The image stays silent after a stop and a start.
    assert api.action(quiet, {"os-stop": None}).status_code == 202
    api.wait_status(quiet, "SHUTOFF")
    assert api.action(quiet, {"os-start": None}).status_code == 202
    api.wait_status(quiet, "ACTIVE")
    time.sleep(0.5)
    assert _output(api, quiet) == ""


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"mode": "reboot"}, "boot_panic.mode must be one of"),
        ({"message": "x"}, 'boot_panic.message needs mode "error"'),
        ({"mode": "silent", "message": "x"}, 'boot_panic.message needs mode "error"'),
        ({"image_name": "("}, "boot_panic.image_name: bad regular expression"),
    ],
)
def test_bad_boot_panic_rules_are_refused(cloud, rule, problem):
    import requests

    resp = requests.put(
        f"{cloud.url}/devcloud/faults",
        json={"boot_panic": rule},
        headers={"X-Auth-Token": cloud.admin_token()},
    )
    assert resp.status_code == 400
    assert problem in resp.json()["error"]["message"]
    assert cloud.get_faults() == {}
