"""Does copying an image between sites go as fast as a download plus an upload, in
constant memory?

Starts the two devcloud sites (primary, secondary) on this machine and puts an
image of real bytes at the first, one per size. For each size, in a fresh
process of its own:

- the copy: the gateway's streaming primitive (cloud.image_create at the second
  site, then cloud.image_data_copy), timed, and the process's peak RSS growth
  over its state just before the copy (ru_maxrss);
- the plain way, on the same bytes: download the whole image to a file, then
  upload the file to a new image at the second site, timed.

Prints throughput (copy / plain, goal ≥ 0.8×) and memory growth at each size
(goal: within +32 MiB, and not growing with the size), exits non-zero on a miss.

    make bench
    .venv/bin/python bench/copy_bench.py --sizes 64,512
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.figures import figure  # noqa: E402

MIB = 1024 * 1024
GOAL_RATIO = 0.8
GOAL_RSS_MIB = 32.0
# The larger size's growth may exceed the smaller's by this much (noise), no more.
GOAL_RSS_SLOPE_MIB = 8.0


def _pieces(size: int):
    block = bytes(range(256)) * (MIB // 256)
    left = size
    while left > 0:
        yield block[: min(left, MIB)]
        left -= MIB


def _sdk(clouds_yaml: Path, name: str):
    import openstack.config
    import openstack.connection

    config = openstack.config.OpenStackConfig(config_files=[str(clouds_yaml)], load_envvars=False)
    return openstack.connection.Connection(config=config.get_one(cloud=name))


def _project_id(conn, name: str) -> str:
    return next(p.id for p in conn.identity.projects() if p.name == name)


def _source_image(conn, project_id: str, size: int) -> str:
    """An image of `size` real bytes in the project (the admin uploads it)."""
    made = conn.image.post(
        "/images",
        json={"name": f"bench-copy-{size // MIB}", "disk_format": "raw",
              "container_format": "bare", "owner": project_id},
    ).json()  # fmt: skip
    put = conn.image.put(
        f"/images/{made['id']}/file",
        data=_pieces(size),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert put.status_code == 204, put.text
    return made["id"]


def measure(args) -> int:
    """In a process of its own: one copy, then one plain download + upload."""
    import django

    django.setup()
    from portal import cloud

    target_project = args.target_project
    # Connections and their imports are made before the baseline is read.
    cloud.image_get("devcloud", image_id=args.image)
    made = cloud.image_create(
        "devcloud2", project_id=target_project, name="bench-copy-target",
        disk_format="raw", container_format="bare",
    )  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    began = time.perf_counter()
    sent = cloud.image_data_copy(
        "devcloud", source_image_id=args.image, target_site="devcloud2",
        target_project_id=target_project, target_image_id=made.id,
    )  # fmt: skip
    copy_seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    copied = cloud.image_get("devcloud2", image_id=made.id)
    source = cloud.image_get("devcloud", image_id=args.image)
    assert copied.hash_value == source.hash_value, "the copy's checksum differs"

    # The plain way: the whole image to a file, then the file up again.
    from portal.cloud.connection import connection_for

    src = connection_for("devcloud")
    dst = connection_for("devcloud2", project_id=target_project)
    plain = dst.image.post(
        "/images", json={"name": "bench-plain-target", "disk_format": "raw",
                         "container_format": "bare"},
    ).json()  # fmt: skip
    with tempfile.NamedTemporaryFile(dir=args.work) as spool:
        began = time.perf_counter()
        response = src.image.get(f"/images/{args.image}/file", stream=True)
        for piece in response.iter_content(4 * MIB):
            spool.write(piece)
        spool.flush()
        spool.seek(0)
        put = dst.image.put(
            f"/images/{plain['id']}/file", data=spool,
            headers={"Content-Type": "application/octet-stream"},
        )  # fmt: skip
        assert put.status_code == 204, put.text
        plain_seconds = time.perf_counter() - began
    for image_id in (made.id, plain["id"]):
        cloud.image_delete("devcloud2", image_id=image_id)
    print(json.dumps({"bytes": sent, "copy_seconds": copy_seconds,
                      "plain_seconds": plain_seconds, "rss_growth_mib": after - before}))  # fmt: skip
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="64,512", help="image sizes in MiB")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--target-project", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(args)

    from devcloud.launcher import DevcloudProcess

    work = Path(tempfile.mkdtemp(prefix="copy-bench-"))
    one = DevcloudProcess(work / "one", profile="primary").start()
    two = DevcloudProcess(work / "two", profile="secondary").start()
    try:
        clouds_yaml = work / "clouds.yaml"
        entries = one.clouds_yaml(name="devcloud", entries_only=True)
        entries += two.clouds_yaml(name="devcloud2", entries_only=True)
        clouds_yaml.write_text("clouds:\n" + entries)
        source, target = _sdk(clouds_yaml, "devcloud"), _sdk(clouds_yaml, "devcloud2")
        alpha, gamma = _project_id(source, "alpha"), _project_id(target, "gamma")
        env = {
            **os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "1",
            "DATABASE_URL": f"sqlite:///{work / 'unused.sqlite3'}",
            "OS_CLIENT_CONFIG_FILE": str(clouds_yaml), "LOG_LEVEL": "WARNING",
            "PORTAL_SITES": "devcloud=Bielefeld,devcloud2=Heidelberg",
        }  # fmt: skip
        results = {}
        for size_mib in [int(s) for s in args.sizes.split(",")]:
            image_id = _source_image(source, alpha, size_mib * MIB)
            out = subprocess.run(
                [sys.executable, __file__, "--measure", "--image", image_id,
                 "--target-project", gamma, "--work", str(work)],
                cwd=ROOT, env=env, check=True, capture_output=True, text=True,
            )  # fmt: skip
            results[size_mib] = json.loads(out.stdout.strip().splitlines()[-1])
            source.image.delete(f"/images/{image_id}")
    finally:
        one.stop()
        two.stop()
    return report(results)


def report(results: dict[int, dict]) -> int:
    missed = False
    print("Copy between two devcloud sites on this machine (streamed, one process each):")
    for size_mib, r in results.items():
        copy_rate = r["bytes"] / r["copy_seconds"] / MIB
        plain_rate = r["bytes"] / r["plain_seconds"] / MIB
        ratio = copy_rate / plain_rate
        ok = ratio >= GOAL_RATIO
        missed |= not ok
        figure(f"copy / download+upload, {size_mib} MiB", ratio, goal=f"≥ {GOAL_RATIO}×",
               ok=ok, unit="×")  # fmt: skip
        print(
            f"  {size_mib:>5} MiB: copy {copy_rate:7.1f} MiB/s, download then upload "
            f"{plain_rate:7.1f} MiB/s: {ratio:.2f}x (goal >= {GOAL_RATIO}x) "
            f"{'ok' if ok else 'MISSED'}"
        )
    for size_mib, r in results.items():
        ok = r["rss_growth_mib"] <= GOAL_RSS_MIB
        missed |= not ok
        figure(f"peak RSS growth, {size_mib} MiB", r["rss_growth_mib"],
               goal=f"≤ {GOAL_RSS_MIB:g} MiB", ok=ok, unit=" MiB")  # fmt: skip
        print(
            f"  {size_mib:>5} MiB: peak RSS growth {r['rss_growth_mib']:6.1f} MiB "
            f"(goal <= {GOAL_RSS_MIB:g} MiB) {'ok' if ok else 'MISSED'}"
        )
    growths = [r["rss_growth_mib"] for _, r in sorted(results.items())]
    slope = growths[-1] - growths[0]
    ok = slope <= GOAL_RSS_SLOPE_MIB
    missed |= not ok
    figure("RSS, largest minus smallest size", slope, goal=f"≤ +{GOAL_RSS_SLOPE_MIB:g} MiB",
           ok=ok, unit=" MiB")  # fmt: skip
    print(
        f"  memory, largest minus smallest size: {slope:+.1f} MiB "
        f"(goal <= +{GOAL_RSS_SLOPE_MIB:g} MiB: constant in the size) {'ok' if ok else 'MISSED'}"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
