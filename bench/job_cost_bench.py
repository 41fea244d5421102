"""What does one snapshot job cost the worker?

Starts devcloud at a fixed speed on a throwaway database and runs one
stop-then-snapshot-then-restart job (no boot test) through the job engine in
this process: every message the engine schedules is delivered here when due,
instead of through Celery, so the figures are the worker's own. With
--watch, the per-site status watcher runs every second beside it, as beat runs
it in production, and its cost is reported apart (it is shared by every job of
a site).

Prints SQL queries, worker CPU (process time, so HTTP waits do not count),
cloud calls and refreshes of the job's server, each with its goal; exits
non-zero when one misses.

    make bench
    .venv/bin/python bench/job_cost_bench.py --speed 5
"""

from __future__ import annotations

import argparse
import heapq
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_QUERIES = 30
GOAL_CPU_MS = 50.0
GOAL_SERVER_REFRESHES_PER_STEP = 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--speed", type=float, default=5.0)
    parser.add_argument("--no-watch", action="store_true", help="run without the site watcher")
    parser.add_argument("--queries", action="store_true", help="list the job's SQL statements")
    args = parser.parse_args()

    from bench.throwaway_db import engine_name, throwaway_database
    from devcloud.launcher import DevcloudProcess
    from scripts.stack import child_env

    work = Path(tempfile.mkdtemp(prefix="job-cost-bench-"))
    with (
        DevcloudProcess(work / "devcloud", profile="primary", speed=args.speed) as devcloud,
        throwaway_database(work, "bench_job_cost") as database_url,
    ):
        clouds_yaml = work / "clouds.yaml"
        clouds_yaml.write_text(
            "clouds:\n" + devcloud.clouds_yaml(name="devcloud", entries_only=True)
        )
        env = child_env(
            DEBUG="1",
            DATABASE_URL=database_url,
            OS_CLIENT_CONFIG_FILE=clouds_yaml,
            PORTAL_SITES="devcloud=Bielefeld",
            PORTAL_VAR_DIR=work,
            LOG_LEVEL="WARNING",
        )
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env,
                       check=True)  # fmt: skip
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
        import django

        django.setup()
        from django.conf import settings

        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        try:
            return run(
                devcloud, watch=not args.no_watch, speed=args.speed, show=args.queries,
                engine=engine_name(database_url),
            )  # fmt: skip
        finally:
            from django.db import connections

            connections.close_all()


class Meter:
    """SQL queries and CPU time spent inside the measured calls."""

    def __init__(self):
        self.queries = 0
        self.cpu = 0.0
        self.statements: list[str] = []

    def count(self, execute, sql, params, many, context):
        self.queries += 1
        self.statements.append(sql)
        return execute(sql, params, many, context)

    def __call__(self, function, *args):
        from django.db import connection

        started = time.process_time()
        with connection.execute_wrapper(self.count):
            result = function(*args)
        self.cpu += time.process_time() - started
        return result


def run(devcloud, *, watch: bool, speed: float, engine: str, show: bool = False) -> int:
    from django.contrib.auth import get_user_model

    import portal.jobs
    from instances.models import Server
    from portal.demo import demo_seed
    from portal.models import Job
    from snapshots.services import snapshot_create_request

    demo_seed()
    alice = get_user_model().objects.get(username="alice")
    server = Server.objects.filter(
        project__name="alpha", status="ACTIVE", deleted_at__isnull=True
    ).first()

    # The engine's messages, delivered in this process when due.
    due: list[tuple[float, int, str]] = []
    portal.jobs._send = lambda job_id, wake, countdown: heapq.heappush(
        due, (time.monotonic() + countdown, job_id, wake)
    )

    def log_lines() -> list[str]:
        with open(devcloud.access_log_path) as log:
            return log.readlines()

    job_meter, watch_meter = Meter(), Meter()
    before = len(log_lines())
    started = time.monotonic()
    job = snapshot_create_request(server=server, actor=alice, name="cost-bench", verify=False)
    next_watch = time.monotonic()
    watch_runs = 0
    advances = []
    while True:
        now = time.monotonic()
        if watch and now >= next_watch:
            from portal.watch import site_watch

            watch_meter(site_watch, job.site_id)
            watch_runs += 1
            next_watch = now + 1.0
        if due and due[0][0] <= now:
            _, job_id, wake = heapq.heappop(due)
            queries_before = job_meter.queries
            job_meter(portal.jobs.job_advance, job_id, wake)
            job.refresh_from_db()
            advances.append(f"{job.progress} ({job_meter.queries - queries_before} queries)")
            if job.is_finished:
                break
            continue
        time.sleep(0.01)
    seconds = time.monotonic() - started
    if job.status != Job.Status.SUCCEEDED:
        raise SystemExit(f"the job failed: {job.error}")

    calls = log_lines()[before:]
    server_gets = sum(f"/servers/{server.openstack_id} " in line for line in calls)
    steps_run = sum(1 for record in job.steps if record["status"] == "done")
    runs = sum(record.get("runs", 0) for record in job.steps)
    watcher_calls = 2 * watch_runs if watch else 0
    job_calls = len(calls) - watcher_calls
    cpu_ms = job_meter.cpu * 1000

    print(f"\none snapshot job (stop, snapshot, restart; no boot test) on devcloud at "
          f"--speed {speed:g}, {engine}, site watcher {'on' if watch else 'off'}")  # fmt: skip
    print(f"  took {seconds:.1f} s; {len(job.steps)} steps, {steps_run} did work, "
          f"{runs} step runs")  # fmt: skip
    rows = [
        ("SQL queries", job_meter.queries, GOAL_QUERIES, f"{job_meter.queries}"),
        ("worker CPU", cpu_ms, GOAL_CPU_MS, f"{cpu_ms:.0f} ms"),
        ("server refreshes per working step", server_gets / max(steps_run, 1),
         GOAL_SERVER_REFRESHES_PER_STEP, f"{server_gets} in {steps_run} steps"),
    ]  # fmt: skip
    missed = 0
    for label, value, goal, shown in rows:
        ok = value <= goal
        missed += not ok
        print(f"  {label:<36} {shown:>18}   goal ≤ {goal:g}  {'ok' if ok else 'MISSED'}")
    print(f"  {'cloud calls by the job':<36} {job_calls:>18}")
    if watch:
        print(f"  site watcher: {watch_runs} runs, {watcher_calls} cloud calls, "
              f"{watch_meter.queries} queries, {watch_meter.cpu * 1000:.0f} ms CPU "
              f"(shared by every job of the site)")  # fmt: skip
    if show:
        print("  runs of the job:", "; ".join(advances))
        for sql in job_meter.statements:
            print("   ", sql[:90], "..." + sql[-60:] if len(sql) > 150 else "")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
