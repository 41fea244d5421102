"""Run a pinned tempest against a fresh devcloud and judge the result.

Steps: install tempest into its own virtualenv (var/tempest-venv, reused while
the pinned version matches), seed a fresh data directory with test projects
that each have a member and a reader account (tempest's pre-provisioned
credentials), start devcloud, write tempest.conf and accounts.yaml, run the
selected test classes, then print one line per class and a summary line.

Exit status 0 only if nothing failed and every skip is one listed in
EXPECTED_SKIPS (features devcloud does not claim). Everything a run leaves is
in var/conformance/: etc/ (the config), logs/ (tempest.log, devcloud.log,
tempest-run.log), data/ (the cloud), results.json.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from devcloud import accounts
from devcloud.launcher import REPO_ROOT, DevcloudProcess
from devcloud.store import Store

TEMPEST_VERSION = "47.0.0"
VENV = os.path.join(REPO_ROOT, "var", "tempest-venv")
WORK = os.path.join(REPO_ROOT, "var", "conformance")
STAMP = os.path.join(VENV, ".devcloud-tempest")

# Simulated time runs this many times faster than nominal: a boot takes 1 s,
# a snapshot of tempest's server about 0.9 s. tempest polls once a second
# anyway, and the snapshot must stay in progress long enough for its
# delete-while-saving and second-snapshot-409 tests even on a loaded machine.
SPEED = 5.0
# Projects with a member and a reader each: one set per tempest worker, plus
# spares for the "alt" credentials some classes ask for.
PROJECTS = 4
CONCURRENCY = 2
RUN_TIMEOUT = 1200  # seconds for `tempest run`
INSTALL_TIMEOUT = 900

# What is run: test classes (or single tests), matched as id prefixes.
TESTS = [
    # Nova: flavors
    "tempest.api.compute.flavors.test_flavors.FlavorsV2TestJSON",
    "tempest.api.compute.flavors.test_flavors_negative.FlavorsV2NegativeTest",
    # Nova: server list filters and their negatives
    "tempest.api.compute.servers.test_list_server_filters.ListServerFiltersTestJSON",
    "tempest.api.compute.servers.test_list_servers_negative.ListServersNegativeTestJSON",
    # Nova: stop/start (the class's other tests need reboot, rebuild, resize...)
    "tempest.api.compute.servers.test_server_actions.ServerActionsTestJSON.test_stop_start_server",
    # Nova: snapshots and the image proxy API (/images, /images/{id}/metadata) at 2.1
    "tempest.api.compute.images.test_images.ImagesTestJSON",
    "tempest.api.compute.images.test_images_oneserver.ImagesOneServerTestJSON",
    "tempest.api.compute.images.test_images_oneserver_negative.ImagesOneServerNegativeTestJSON",
    "tempest.api.compute.images.test_images_negative.ImagesNegativeTestJSON",
    "tempest.api.compute.images.test_images_negative.ImagesDeleteNegativeTestJSON",
    "tempest.api.compute.images.test_list_images.ListImagesTestJSON",
    "tempest.api.compute.images.test_list_image_filters.ListImageFiltersTestJSON",
    "tempest.api.compute.images.test_list_image_filters_negative.ListImageFiltersNegativeTestJSON",
    "tempest.api.compute.images.test_image_metadata.ImagesMetadataTestJSON",
    "tempest.api.compute.images.test_image_metadata_negative.ImagesMetadataNegativeTestJSON",
    # Nova: other endpoints the portal uses
    "tempest.api.compute.servers.test_server_metadata.ServerMetadataTestJSON",
    "tempest.api.compute.servers.test_multiple_create.MultipleCreateTestJSON",
    "tempest.api.compute.servers.test_multiple_create_negative.MultipleCreateNegativeTestJSON",
    "tempest.api.compute.limits.test_absolute_limits.AbsoluteLimitsTestJSON",
    "tempest.api.compute.limits.test_absolute_limits_negative.AbsoluteLimitsNegativeTestJSON",
    "tempest.api.compute.servers.test_availability_zone.AZV2TestJSON",
    # Glance v2: listing, then the basic life cycle, negatives, tags and versions
    "tempest.api.image.v2.test_images.ListUserImagesTest",
    "tempest.api.image.v2.test_images.BasicOperationsImagesTest",
    "tempest.api.image.v2.test_images_negative.ImagesNegativeTest",
    "tempest.api.image.v2.test_images_tags.ImagesTagsTest",
    "tempest.api.image.v2.test_images_tags_negative.ImagesTagsNegativeTest",
    "tempest.api.image.v2.test_versions.VersionsTest",
]


# Skips that are fine: devcloud does not claim these features. Keyed by a
# regular expression on the test id, with the reason shown in the report.
EXPECTED_SKIPS = {
    r"ListServerFiltersTestJSON\.test_list_servers_filtered_by_ip": (
        "tempest takes the network's name from fixed_network_name, which is unset "
        "(pre-provisioned accounts name no network)"
    ),
    r"ImagesTestJSON\.test_create_image_from_paused_server": "pause is not implemented",
    r"ImagesTestJSON\.test_create_image_from_suspended_server": "suspend is not implemented",
}

# Parses `stestr last --subunit` inside the tempest venv (which has subunit and
# testtools) and prints one JSON object per test: id, status, skip reason.
_SUBUNIT_TO_JSON = r"""
import json, sys
import subunit, testtools

results = []

def on_test(test):
    if test["status"] in ("exists", "inprogress"):
        return
    reason = ""
    detail = test["details"].get("reason")
    if detail is not None:
        reason = detail.as_text()
    results.append({"id": test["id"], "status": test["status"], "reason": reason.strip(),
                    "start": str(test["timestamps"][0]), "end": str(test["timestamps"][1])})

stream = subunit.ByteStreamToStreamResult(sys.stdin.buffer, non_subunit_name="stdout")
result = testtools.StreamToDict(on_test)
result.startTestRun()
stream.run(result)
result.stopTestRun()
json.dump(results, sys.stdout)
"""


def log(message):
    print(f"conformance: {message}", flush=True)


# -- tempest installation --------------------------------------------------------


def ensure_tempest(python):
    tempest = os.path.join(VENV, "bin", "tempest")
    if os.path.exists(tempest) and _read(STAMP).strip() == TEMPEST_VERSION:
        log(f"tempest {TEMPEST_VERSION} already installed in {os.path.relpath(VENV, REPO_ROOT)}")
        return
    log(f"installing tempest {TEMPEST_VERSION} into {os.path.relpath(VENV, REPO_ROOT)}")
    started = time.monotonic()
    if os.path.exists(VENV):
        shutil.rmtree(VENV)
    subprocess.run([python, "-m", "venv", VENV], check=True, timeout=300)
    pip = [os.path.join(VENV, "bin", "python"), "-m", "pip"]
    subprocess.run(
        [*pip, "install", "--quiet", "--disable-pip-version-check", f"tempest=={TEMPEST_VERSION}"],
        check=True,
        timeout=INSTALL_TIMEOUT,
    )
    with open(STAMP, "w") as fh:
        fh.write(TEMPEST_VERSION + "\n")
    log(f"tempest installed in {time.monotonic() - started:.0f}s")


def _read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


# -- talking to devcloud -----------------------------------------------------------


def _token(cloud, account):
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": account["username"],
                        "domain": {"id": "default"},
                        "password": account["password"],
                    }
                },
            },
            "scope": {"project": {"name": account["project_name"], "domain": {"id": "default"}}},
        }
    }
    req = urllib.request.Request(
        cloud.url + "/identity/v3/auth/tokens?nocatalog",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.headers["X-Subject-Token"]


def _get(cloud, token, path):
    req = urllib.request.Request(cloud.url + path, headers={"X-Auth-Token": token})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def discover_refs(cloud, account):
    """Flavor and image ids for tempest.conf, looked up by name as the test user sees them."""
    token = _token(cloud, account)
    flavors = {f["name"]: f["id"] for f in _get(cloud, token, "/compute/v2.1/flavors")["flavors"]}
    images = {}
    for name in ("Ubuntu-22.04-LTS", "Ubuntu-24.04-LTS"):
        found = _get(cloud, token, f"/image/v2/images?name={name}")["images"]
        images[name] = found[0]["id"]
    return {
        "flavor_ref": flavors["de.NBI tiny"],
        "flavor_ref_alt": flavors["de.NBI small"],
        "image_ref": images["Ubuntu-22.04-LTS"],
        "image_ref_alt": images["Ubuntu-24.04-LTS"],
    }


# -- configuration -------------------------------------------------------------------


def tempest_conf(cloud, refs, work):
    sections = {
        "DEFAULT": {"log_dir": os.path.join(work, "logs"), "log_file": "tempest.log"},
        "oslo_concurrency": {"lock_path": os.path.join(work, "locks")},
        "auth": {
            # Pre-provisioned accounts (see devcloud/accounts.py); devcloud has no
            # Keystone admin API for creating projects and users on the fly.
            "use_dynamic_credentials": "false",
            "test_accounts_file": os.path.join(work, "etc", "accounts.yaml"),
            "default_credentials_domain_name": "Default",
            "create_isolated_networks": "false",
        },
        "identity": {
            "uri_v3": f"{cloud.url}/identity/v3",
            "auth_version": "v3",
            "region": "RegionOne",
            "v3_endpoint_type": "public",
        },
        "identity-feature-enabled": {"api_v2": "false"},
        "compute": {
            **refs,
            "region": "RegionOne",
            "endpoint_type": "publicURL",
            "build_interval": "1",
            "build_timeout": "60",
            "min_compute_nodes": "1",
            "min_microversion": "2.1",
            "max_microversion": "2.100",
        },
        "compute-feature-enabled": {
            "snapshot": "true",
            # Server actions devcloud does not implement.
            "pause": "false",
            "suspend": "false",
            "shelve": "false",
            "resize": "false",
            "rescue": "false",
            "change_password": "false",
            "console_output": "false",
            "interface_attach": "false",
            "cold_migration": "false",
            "live_migration": "false",
            "vnc_console": "false",
            "serial_console": "false",
            "spice_console": "false",
            "personality": "false",
            "config_drive": "false",
            "metadata_service": "false",
        },
        "image": {
            "region": "RegionOne",
            "endpoint_type": "publicURL",
            "build_interval": "1",
            "build_timeout": "60",
        },
        "image-feature-enabled": {
            "api_v2": "true",
            # Interoperable image import is not implemented.
            "import_image": "false",
            # devcloud stores whatever bytes it is given and does not inspect
            # them against disk_format (it only reads a qcow2 header's size).
            "image_format_enforcement": "false",
        },
        "service_available": {
            "nova": "true",
            "glance": "true",
            # devcloud's Neutron has networks only. tempest skips every compute
            # class that wants a default network (the snapshot classes among them)
            # unless Neutron is declared; with pre-provisioned accounts and no
            # fixed_network_name it creates no network and looks none up, and its
            # servers boot on the shared default network, the only one its test
            # projects see (so "auto" and no networks before 2.37 both find it).
            "neutron": "true",
            "cinder": "false",
            "swift": "false",
            "placement": "false",
        },
        "validation": {"run_validation": "false"},
        # Modern Nova and Glance enforce scope and the reader role: tempest then
        # reads with the project's reader account and writes with its member.
        "enforce_scope": {"nova": "true", "glance": "true"},
    }
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)


# -- running and judging ---------------------------------------------------------------


def run_tempest(work, concurrency, tests, timeout):
    include = os.path.join(work, "etc", "include-list.txt")
    with open(include, "w") as fh:
        # Each entry matches that class's (or that test's) ids and nothing longer.
        fh.write("".join(f"^{re.escape(t)}[.\\[]\n" for t in tests))
    cmd = [
        os.path.join(VENV, "bin", "tempest"),
        "run",
        "--config-file",
        os.path.join(work, "etc", "tempest.conf"),
        "--include-list",
        include,
        "--concurrency",
        str(concurrency),
    ]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONUNBUFFERED"] = "1"
    log_path = os.path.join(work, "logs", "tempest-run.log")
    timed_out = threading.Event()
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            text=True,
        )

        def kill():
            timed_out.set()
            _kill_group(proc)

        watchdog = threading.Timer(timeout, kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            for line in proc.stdout:
                out.write(line)
                out.flush()
                if _interesting(line):
                    sys.stdout.write("  " + line)
                    sys.stdout.flush()
            proc.wait()
        finally:
            watchdog.cancel()
            if proc.poll() is None:  # interrupted: leave no tempest workers behind
                _kill_group(proc)
                proc.wait()
    return proc.returncode, timed_out.is_set()


def _kill_group(proc):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def failure_details(work, max_lines=300):
    """tempest's own account of the failures (tracebacks), from its run log."""
    text = _read(os.path.join(work, "logs", "tempest-run.log"))
    marker = text.find("==============================\nFailed ")
    if marker < 0:
        return ""
    lines = text[marker:].splitlines()
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], f"... ({len(lines) - max_lines} more lines in the log)"]
    return "\n".join(lines)


def _interesting(line):
    # Per-test lines of tempest's output ("{0} tempest.api... [1.2s] ... ok") and totals.
    return bool(re.match(r"\{\d+\} |=+|Totals|Ran: |Sum of execute|Worker Balance", line)) or (
        line.startswith((" - ", "FAIL", "Traceback"))
    )


def collect_results(work):
    stestr = subprocess.run(
        [os.path.join(VENV, "bin", "stestr"), "last", "--subunit"],
        cwd=work,
        capture_output=True,
        timeout=120,
    )
    if stestr.returncode != 0 and not stestr.stdout:
        return []
    parsed = subprocess.run(
        [os.path.join(VENV, "bin", "python"), "-c", _SUBUNIT_TO_JSON],
        input=stestr.stdout,
        capture_output=True,
        timeout=120,
        check=True,
    )
    return json.loads(parsed.stdout)


CLASS_FIXTURE = re.compile(r"^\w+ \((?P<cls>[\w.]+)\)$")  # e.g. "setUpClass (tempest...Class)"


def class_of(test_id):
    """The test class's dotted path, also for class fixtures that skipped or failed."""
    m = CLASS_FIXTURE.match(test_id)
    if m:
        return m.group("cls")
    return test_id.split("[", 1)[0].rsplit(".", 1)[0]


def short_name(test_id):
    if CLASS_FIXTURE.match(test_id):
        return "(whole class)"
    return test_id.split("[", 1)[0].rsplit(".", 1)[-1]


def not_run(results, tests):
    """Selected classes or tests that left no result at all (renamed, or never loaded)."""
    ids = [item["id"] for item in results]
    missing = []
    for test in tests:
        if not any(i.startswith(test + ".") or i.startswith(test + "[") for i in ids) and not any(
            class_of(i) == test for i in ids
        ):
            missing.append(test)
    return missing


def expected_skip(test_id):
    for pattern, why in EXPECTED_SKIPS.items():
        if re.search(pattern, test_id):
            return why
    return None


def judge(results):
    classes = {}
    unexpected = []
    for item in results:
        cls = class_of(item["id"])
        entry = classes.setdefault(cls, {"passed": 0, "failed": 0, "skipped": 0, "skips": []})
        status = item["status"]
        if status in ("success", "xfail"):
            entry["passed"] += 1
        elif status == "skip":
            entry["skipped"] += 1
            why = expected_skip(item["id"])
            entry["skips"].append(f"{short_name(item['id'])}: {why or item['reason']}")
            if why is None:
                unexpected.append(item)
        else:
            entry["failed"] += 1
    return classes, unexpected


def report(results, classes, unexpected, missing, elapsed):
    passed = sum(c["passed"] for c in classes.values())
    failed = sum(c["failed"] for c in classes.values())
    skipped = sum(c["skipped"] for c in classes.values())
    print()
    print("| Test class | Passed | Failed | Skipped |")
    print("|---|---|---|---|")
    for cls in sorted(classes):
        c = classes[cls]
        print(f"| `{cls}` | {c['passed']} | {c['failed']} | {c['skipped']} |")
    for cls in sorted(classes):
        for skip in classes[cls]["skips"]:
            print(f"  skipped {cls.rsplit('.', 1)[-1]}.{skip}")
    for item in results:
        if item["status"] not in ("success", "xfail", "skip"):
            print(f"  FAILED {item['id']}")
    for item in unexpected:
        print(f"  UNEXPECTED SKIP {item['id']}: {item['reason']}")
    for test in missing:
        print(f"  NOT RUN {test}")
    summary = (
        f"conformance: tempest {TEMPEST_VERSION}: {passed} passed, {failed} failed, "
        f"{skipped} skipped ({len(unexpected)} unexpected) in {elapsed:.0f}s"
    )
    print()
    print(summary, flush=True)
    return passed, failed


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m devcloud.conformance", description=__doc__)
    parser.add_argument("--speed", type=float, default=SPEED)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument(
        "--tests",
        action="append",
        help="a test class or test id to run instead of the default list",
    )
    parser.add_argument("--timeout", type=int, default=RUN_TIMEOUT, help="for `tempest run`")
    args = parser.parse_args(argv)

    started = time.monotonic()
    ensure_tempest(sys.executable)

    if os.path.exists(WORK):
        shutil.rmtree(WORK)
    for sub in ("etc", "logs", "locks", "data"):
        os.makedirs(os.path.join(WORK, sub))
    data_dir = os.path.join(WORK, "data")
    store = Store(data_dir)
    accts = accounts.ensure_accounts(store, max(PROJECTS, args.concurrency + 2))
    store.close_thread_connection()
    with open(os.path.join(WORK, "etc", "accounts.yaml"), "w") as fh:
        fh.write(accounts.tempest_accounts_yaml(accts))

    cloud = DevcloudProcess(data_dir, speed=args.speed, python=sys.executable)
    cloud.start()
    try:
        log(f"devcloud at {cloud.url} (speed {args.speed:g}), data in {data_dir}")
        refs = discover_refs(cloud, accts[0])
        with open(os.path.join(WORK, "etc", "tempest.conf"), "w") as fh:
            fh.write(tempest_conf(cloud, refs, WORK))
        log(f"running tempest ({args.concurrency} workers)")
        returncode, timed_out = run_tempest(
            WORK, args.concurrency, args.tests or TESTS, args.timeout
        )
    finally:
        cloud.stop()
        with contextlib.suppress(OSError):
            shutil.copy(cloud.log_path, os.path.join(WORK, "logs", "devcloud.log"))

    results = collect_results(WORK)
    with open(os.path.join(WORK, "results.json"), "w") as fh:
        json.dump(results, fh, indent=1)
    tests = args.tests or TESTS
    classes, unexpected = judge(results)
    missing = not_run(results, tests)
    passed, failed = report(results, classes, unexpected, missing, time.monotonic() - started)
    logs = os.path.relpath(os.path.join(WORK, "logs"), REPO_ROOT)
    if timed_out:
        log(f"FAILED: tempest did not finish within {args.timeout}s (logs in {logs})")
        return 1
    if not results:
        log(f"FAILED: no test ran (tempest exit {returncode}; logs in {logs})")
        return 1
    if missing:
        log(f"FAILED: {len(missing)} selected classes or tests did not run (logs in {logs})")
        return 1
    if failed or unexpected:
        details = failure_details(WORK)
        if details:
            print(details)
        log(f"FAILED (logs in {logs})")
        return 1
    if passed == 0:
        log(f"FAILED: nothing passed (logs in {logs})")
        return 1
    if returncode != 0:
        log(f"FAILED: tempest exited with {returncode} (logs in {logs})")
        return 1
    return 0
