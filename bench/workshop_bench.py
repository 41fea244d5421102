"""How long does a 100-seat workshop take to launch, compared with one machine?

Starts devcloud at a fixed speed, Redis and a real Celery worker (2 processes)
on a throwaway database, then launches one instance and a 100-participant
workshop through the portal's job engine, each timed from submission until the
job has ended (every machine ACTIVE). Prints both times, the cloud calls each
made, and the ratio with its goal; exits non-zero when the goal is missed.

    make bench
    .venv/bin/python bench/workshop_bench.py --speed 20
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

from bench.figures import figure  # noqa: E402
from bench.throwaway_db import throwaway_database  # noqa: E402

# 100 seats in batches of 10 per task run, one status listing per poll: the whole
# workshop should cost a few single launches, not a hundred (measured: ~2x).
GOAL_RATIO = 3.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--seats", type=int, default=100)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="workshop-bench-"))
    with throwaway_database(work, "bench_workshop") as database_url:
        try:
            return _with_database(args, work, database_url)
        finally:
            from django.db import connections

            connections.close_all()  # before the throwaway database is dropped


def _with_database(args, work: Path, database_url: str) -> int:
    from devcloud.launcher import DevcloudProcess
    from scripts.stack import RedisProcess, child_env, start_worker, stop_process

    redis = RedisProcess(work / "redis").start()
    devcloud = DevcloudProcess(work / "devcloud", profile="primary", speed=args.speed).start()
    worker = None
    try:
        clouds_yaml = work / "clouds.yaml"
        clouds_yaml.write_text(
            "clouds:\n" + devcloud.clouds_yaml(name="devcloud", entries_only=True)
        )
        env = child_env(
            DEBUG="1",
            DATABASE_URL=database_url,
            REDIS_URL=redis.url,
            OS_CLIENT_CONFIG_FILE=clouds_yaml,
            PORTAL_SITES="devcloud=Bielefeld",
            PORTAL_VAR_DIR=work,
            LOG_LEVEL="WARNING",
        )
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env,
                       check=True)  # fmt: skip
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        worker = start_worker(env, concurrency=2, log_path=work / "worker.log")
        return run(devcloud, args)
    finally:
        stop_process(worker)
        devcloud.stop()
        redis.stop()


def run(devcloud, args) -> int:
    import openstack.config
    import openstack.connection
    from django.contrib.auth import get_user_model

    from images.models import Image
    from instances.launch import instance_launch_request
    from instances.launch_rules import launch_check
    from instances.models import Flavor
    from instances.services import project_quota_refresh
    from operations.demo import demo_seed
    from portal.models import Job, Project

    demo_seed()
    alpha = Project.objects.get(name="alpha")
    config = openstack.config.OpenStackConfig(
        config_files=[os.environ["OS_CLIENT_CONFIG_FILE"]], load_envvars=False
    )
    admin = openstack.connection.Connection(config=config.get_one(cloud="devcloud"))
    admin.compute.update_quota_set(alpha.openstack_id, instances=500, cores=1000, ram=4 << 20)
    project_quota_refresh(alpha)
    alice = get_user_model().objects.get(username="alice")
    tiny = Flavor.objects.get(site=alpha.site, name="de.NBI tiny")
    ubuntu = Image.objects.get(site=alpha.site, name="Ubuntu-22.04-LTS")

    def requests_sent() -> int:
        with open(devcloud.access_log_path) as log:
            return sum(1 for _ in log)

    def launch(prefix: str, participants: list[str]) -> tuple[float, int]:
        plan = launch_check(
            actor=alice, project=alpha, flavor=tiny, image=ubuntu, prefix=prefix,
            count=max(1, len(participants)), participants=participants,
        )  # fmt: skip
        before = requests_sent()
        started = time.perf_counter()
        job = instance_launch_request(actor=alice, plan=plan)
        while not job.is_finished:
            time.sleep(0.05)
            job.refresh_from_db()
        seconds = time.perf_counter() - started
        if job.status != Job.Status.SUCCEEDED or job.result.get("failed"):
            raise SystemExit(f"{prefix}: {job.status} {job.error} {job.result.get('summary')}")
        return seconds, requests_sent() - before

    one, one_calls = launch("bench-one", [])
    many, many_calls = launch("bench-ws", [f"Participant {n}" for n in range(args.seats)])
    ratio = many / one
    from django.db import connection

    print(f"\nworkshop launch on devcloud at --speed {args.speed:g}, 2 worker processes, "
          f"on {connection.vendor}")  # fmt: skip
    print(f"  one instance          {one:7.2f} s  {one_calls:5d} cloud calls")
    print(f"  {args.seats} participants       {many:7.2f} s  {many_calls:5d} cloud calls "
          f"({many_calls / args.seats:.1f} per seat)")  # fmt: skip
    print(f"  ratio {args.seats} / 1            {ratio:7.2f}   goal ≤ {GOAL_RATIO:g}  "
          f"{'ok' if ratio <= GOAL_RATIO else 'MISSED'}")  # fmt: skip
    figure(f"{args.seats} seats / one launch", ratio, goal=f"≤ {GOAL_RATIO:g}×",
           ok=ratio <= GOAL_RATIO, unit="×")  # fmt: skip
    return 0 if ratio <= GOAL_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
