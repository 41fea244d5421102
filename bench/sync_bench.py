"""How much does keeping the mirror fresh cost on a big site?

Seeds a devcloud with N servers and M images (default 10,000 and 100,000),
then times the portal's sync through the real gateway (openstacksdk over
HTTP): a cold full sync (everything new), a warm full sync (nothing
changed), an incremental sync with nothing changed, and one after a few
out-of-band changes. Prints seconds, requests sent (from devcloud's access
log) and the ratios that matter: can an incremental sync run every 30 s?

    make bench                      # 10,000 servers, 100,000 images
    .venv/bin/python bench/sync_bench.py --servers 1000 --images 10000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--images", type=int, default=100_000)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sync-bench-"))
    data = work / "devcloud"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "devcloud", "populate", "--data", str(data),
         "--servers", str(args.servers), "--images", str(args.images)],
        cwd=ROOT, check=True,
    )  # fmt: skip
    print(f"seeded devcloud with {args.servers:,} servers, {args.images:,} images "
          f"in {time.perf_counter() - started:.1f}s")  # fmt: skip

    from devcloud.launcher import DevcloudProcess

    with DevcloudProcess(data, speed=50) as devcloud:
        clouds_yaml = work / "clouds.yaml"
        clouds_yaml.write_text(devcloud.clouds_yaml(name="devcloud"))
        os.environ.update(
            DJANGO_SETTINGS_MODULE="portal.settings",
            DEBUG="1",
            PORTAL_VAR_DIR=str(work / "var"),
            OS_CLIENT_CONFIG_FILE=str(clouds_yaml),
            PORTAL_SITES="devcloud=Bench",
            LOG_LEVEL="WARNING",
        )
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from portal import cloud
        from portal.models import Project
        from portal.sites import sites_ensure
        from portal.sync import site_sync

        site = sites_ensure()[0]
        for p in cloud.project_list(site.name):
            Project.objects.get_or_create(site=site, openstack_id=p.id, defaults={"name": p.name})

        def requests_sent() -> int:
            with open(devcloud.access_log_path) as log:
                return sum(1 for _ in log)

        def timed(label: str, **kwargs) -> float:
            site.refresh_from_db()
            before = requests_sent()
            t0 = time.perf_counter()
            result = site_sync(site, **kwargs)
            seconds = time.perf_counter() - t0
            sent = requests_sent() - before
            servers, images = result["servers"], result["images"]
            print(f"{label:<34} {seconds:8.2f}s  {sent:5d} requests  "
                  f"servers +{servers.created}/~{servers.updated}/-{servers.deleted}  "
                  f"images +{images.created}/~{images.updated}/-{images.deleted}")  # fmt: skip
            return seconds

        print(f"\n{'sync':<34} {'time':>9}  {'HTTP':>14}  changes (+new/~changed/-gone)")
        cold = timed("full, cold (mirror empty)", full=True)
        warm = timed("full, warm (nothing changed)", full=True)
        quiet = timed("incremental, nothing changed", full=False)

        # A few changes made by someone else, out of band.
        import openstack.config
        import openstack.connection

        config = openstack.config.OpenStackConfig(
            config_files=[str(clouds_yaml)], load_envvars=False
        )
        conn = openstack.connection.Connection(config=config.get_one(cloud="devcloud"))
        active = [s for s in conn.compute.servers(all_projects=True, status="ACTIVE", limit=10)][:5]
        for server in active:
            conn.compute.stop_server(server.id)
        time.sleep(0.5)
        busy = timed("incremental, 5 servers stopped", full=False)

        print(f"\nwarm full / cold full          {warm / cold:6.2f}")
        print(f"incremental / warm full        {quiet / warm:6.3f}")
        print(f"incremental (5 changes) / warm {busy / warm:6.3f}")
        print(f"incremental sync every 30 s uses {quiet / 30:.1%} of one worker slot")


if __name__ == "__main__":
    main()
