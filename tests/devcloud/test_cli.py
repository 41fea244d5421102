"""The real `openstack` CLI and the clouds-yaml command against devcloud."""

import concurrent.futures
import json
import os
import subprocess
import sys

import pytest

from devcloud.launcher import REPO_ROOT

from .conftest import member_api

OPENSTACK = os.path.join(os.path.dirname(sys.executable), "openstack")


def _clouds_yaml(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "devcloud", "clouds-yaml", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return proc.stdout


@pytest.fixture
def cli(fresh_cloud, tmp_path):
    # OSC's --wait polls every 5 s but checks once right away; at this speed a boot
    # or snapshot is usually done by then, which keeps this test short.
    cloud = fresh_cloud(speed=5000)
    config = tmp_path / "clouds.yaml"
    config.write_text(_clouds_yaml("--port", str(cloud.port)))
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(config))
    for key in list(env):
        if key.startswith("OS_") and key != "OS_CLIENT_CONFIG_FILE":
            del env[key]

    def run(cloud_name, *args):
        proc = subprocess.run(
            [OPENSTACK, "--os-cloud", cloud_name, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, f"openstack {' '.join(args)} failed:\n{proc.stderr}"
        return proc.stdout

    run.cloud = cloud
    return run


def test_clouds_yaml_command_output(fresh_cloud):
    text = _clouds_yaml("--port", "5000", "--name", "site2")
    assert text.startswith("clouds:\n  site2:\n")
    assert 'auth_url: "http://127.0.0.1:5000/identity"' in text
    assert "  site2-alpha:\n" in text
    assert "  site2-beta:\n" in text
    assert "identity_api_version: 3" in text
    assert 'region_name: "RegionOne"' in text
    entries = _clouds_yaml(
        "--port", "5001", "--entries-only", "--profile", "secondary", "--name", "other"
    )
    assert entries.startswith("  other:\n")
    assert "other-gamma" in entries
    cloud = fresh_cloud()
    assert _clouds_yaml("--port", str(cloud.port)) == cloud.clouds_yaml()


def test_combined_clouds_yaml_loads_in_the_sdk(tmp_path):
    from openstack.config import loader

    path = tmp_path / "clouds.yaml"
    path.write_text(
        "clouds:\n"
        + _clouds_yaml("--port", "5000", "--entries-only")
        + _clouds_yaml(
            "--port", "5001", "--entries-only", "--name", "devcloud2", "--profile", "secondary"
        )
    )
    config = loader.OpenStackConfig(config_files=[str(path)], vendor_files=[])
    names = {c.name for c in config.get_all()}
    assert names == {"devcloud", "devcloud-alpha", "devcloud-beta", "devcloud2", "devcloud2-gamma"}
    region = config.get_one("devcloud2")
    assert region.config["auth"]["auth_url"] == "http://127.0.0.1:5001/identity"
    assert region.config["auth"]["project_name"] == "admin"


def _together(*calls):
    """Run independent CLI invocations side by side (each costs ~1 s of Python start-up)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return [f.result() for f in [pool.submit(call) for call in calls]]


def test_openstack_cli_full_cycle(cli):
    api = member_api(cli.cloud, "alpha")
    sid = api.find_server("alpha-web-01")["id"]

    def stop_then_start():
        cli("devcloud-alpha", "server", "stop", "alpha-web-01")
        api.wait_status(sid, "SHUTOFF")
        cli("devcloud-alpha", "server", "start", "alpha-web-01")
        api.wait_status(sid, "ACTIVE")

    listing, _ = _together(
        lambda: cli("devcloud", "server", "list", "--all-projects", "-f", "json"), stop_then_start
    )
    assert {"alpha-web-01", "beta-ws-01"} <= {s["Name"] for s in json.loads(listing)}

    snap = json.loads(
        cli(
            "devcloud-alpha",
            "server",
            "image",
            "create",
            "--name",
            "cli-snap",
            "--wait",
            "-f",
            "json",
            "alpha-web-01",
        )
    )
    assert snap["status"] == "active"
    assert snap["name"] == "cli-snap"

    images, server = _together(
        lambda: cli("devcloud-alpha", "image", "list", "-f", "json"),
        lambda: cli(
            "devcloud-alpha",
            "server",
            "create",
            "--image",
            "cli-snap",
            "--flavor",
            "de.NBI small",
            "--auto-network",
            "--wait",
            "-f",
            "json",
            "cli-vm",
        ),
    )
    assert "cli-snap" in {i["Name"] for i in json.loads(images)}
    server = json.loads(server)
    assert server["status"] == "ACTIVE"
    assert api.server(server["id"])["image"]["id"] == snap["id"]

    _together(
        lambda: cli("devcloud-alpha", "server", "delete", "--wait", "cli-vm"),
        lambda: cli("devcloud-alpha", "image", "delete", "cli-snap"),
    )
    assert api.get(f"/compute/v2.1/servers/{server['id']}").status_code == 404
    assert api.image(snap["id"]).status_code == 404


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_serve_prints_the_chosen_port_and_stops_cleanly_on_signals(tmp_path, sig):
    import signal
    import urllib.error
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "devcloud", "serve", "--port", "0", "--data", str(tmp_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("devcloud listening on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        assert port > 0
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/identity")
        assert exc.value.code == 300
        proc.send_signal(getattr(signal, sig))
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_console_log_show(cli):
    api = member_api(cli.cloud, "alpha")
    sid = api.find_server("alpha-web-01")["id"]
    full = api.action(sid, {"os-getConsoleOutput": {}}).json()["output"]
    shown = cli("devcloud-alpha", "console", "log", "show", "--lines", "4", "alpha-web-01")
    # OSC prints the output and ends it with a newline.
    assert shown == "\n".join(full.split("\n")[-4:]) + "\n"
    assert shown.endswith("alpha-web-01 login: \n")
