"""What does one snapshot job cost the worker?

Starts devcloud at a fixed speed on a throwaway database and runs five equal
stop-then-snapshot-then-restart jobs (no boot test), one after another, through
the job engine in this process (medians count): every message the engine schedules is delivered here when due,
instead of through Celery, so the figures are the worker's own. With
--watch, the per-site status watcher runs every second beside it, as beat runs
it in production, and its cost is reported apart (it is shared by every job of
a site).

Prints SQL queries, worker CPU (process time, so HTTP waits do not count),
cloud calls and refreshes of the job's server, each with its goal; exits
non-zero when one misses.

    make bench
    .venv/bin/python bench/job_cost_bench.py --speed 20 --queries
"""

from __future__ import annotations

import argparse
import heapq
import os
import statistics
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
# Jobs measured one after another; the medians count:
# five, because CPU time on a shared 2-core machine varies by a quarter between runs.
JOBS = 5
DISK_BYTES = 2 * 1000**3  # used disk of each instance: 10 s of upload at --speed 2


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--speed", type=float, default=2.0)
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
            DEBUG="0",  # as in production (DEBUG logs every query)
            SECRET_KEY="bench-only",
            DATABASE_URL=database_url,
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
    import portal.jobs.sending
    from instances.models import Server
    from operations.demo import demo_seed
    from portal.models import Job
    from snapshots.services import snapshot_create_request

    demo_seed()
    alice = get_user_model().objects.get(username="alice")
    servers = list(
        Server.objects.filter(
            project__name="alpha", status="ACTIVE", task_state="", deleted_at__isnull=True,
            flavor_ram_mib__lte=64 * 1024,
        ).order_by("pk")[:JOBS]
    )  # fmt: skip

    for server in servers:  # the same job for each: as in the 200-job bench
        devcloud.set_server(server.openstack_id, disk_used_bytes=DISK_BYTES)

    # The engine's messages, delivered in this process when due.
    due: list[tuple[float, int, str]] = []
    portal.jobs.sending.send = lambda job_id, wake, countdown: heapq.heappush(
        due, (time.monotonic() + countdown, job_id, wake)
    )
    portal.jobs.sending.send_many = lambda jobs: [
        heapq.heappush(due, (time.monotonic(), job_id, wake)) for job_id, wake in jobs
    ]

    def log_lines() -> list[str]:
        with open(devcloud.access_log_path) as log:
            return log.readlines()

    shared = Meter()  # the watcher and the recovery sweep, as beat runs them

    def one_job(server, name: str) -> dict:
        meter = Meter()
        before = len(log_lines())
        started = time.monotonic()
        job = snapshot_create_request(server=server, actor=alice, name=name, verify=False)
        next_watch = next_sweep = time.monotonic()
        watch_runs, advances = 0, []
        while not job.is_finished:
            now = time.monotonic()
            if watch and now >= next_watch:
                from operations.watch import site_watch

                shared(site_watch, job.site_id)
                watch_runs += 1
                next_watch = now + 1.0
            if now >= next_sweep:
                shared(portal.jobs.jobs_recover_stuck)
                next_sweep = now + 2.0
            if due and due[0][0] <= now:
                _, job_id, wake = heapq.heappop(due)
                queries_before = meter.queries
                meter(portal.jobs.job_advance, job_id, wake)
                job.refresh_from_db()
                advances.append(f"{job.progress} ({meter.queries - queries_before} queries)")
                continue
            time.sleep(0.01)
        if job.status != Job.Status.SUCCEEDED:
            raise SystemExit(f"the job failed: {job.error}")
        calls = log_lines()[before:]
        done = [record for record in job.steps if record["status"] == "done"]
        return {
            "seconds": time.monotonic() - started,
            "queries": meter.queries,
            "cpu_ms": meter.cpu * 1000,
            "job_calls": len(calls) - 2 * watch_runs,
            "server_gets": sum(f"/servers/{server.openstack_id} " in line for line in calls),
            "steps_done": len(done),
            "step_runs": sum(record.get("runs", 0) for record in job.steps),
            "advances": advances,
            "statements": meter.statements,
        }

    # The demo project has four such instances: the fifth job snapshots the first again.
    measured = [one_job(servers[n % len(servers)], f"cost-bench-{n}") for n in range(JOBS)]
    middle = sorted(measured, key=lambda m: m["cpu_ms"])[len(measured) // 2]
    queries = statistics.median(m["queries"] for m in measured)
    cpu_ms = statistics.median(m["cpu_ms"] for m in measured)
    refreshes = max(m["server_gets"] / m["steps_done"] for m in measured)

    print(f"\n{len(measured)} snapshot jobs one after another (stop, snapshot, restart; no boot "
          f"test) on devcloud at --speed {speed:g}, {engine}, "
          f"site watcher {'on' if watch else 'off'}")  # fmt: skip
    for m in measured:
        print(f"  {m['seconds']:5.1f} s  {m['queries']:3d} queries  {m['cpu_ms']:5.1f} ms CPU  "
              f"{m['job_calls']:2d} cloud calls  {m['server_gets']} server refreshes in "
              f"{m['steps_done']} steps ({m['step_runs']} step runs)")  # fmt: skip
    rows = [
        ("SQL queries (median)", queries, GOAL_QUERIES, f"{queries:g}"),
        ("worker CPU (median)", cpu_ms, GOAL_CPU_MS, f"{cpu_ms:.0f} ms"),
        ("server refreshes per working step", refreshes, GOAL_SERVER_REFRESHES_PER_STEP,
         f"{refreshes:.2f}"),
    ]  # fmt: skip
    missed = 0
    for label, value, goal, shown in rows:
        ok = value <= goal
        missed += not ok
        print(f"  {label:<36} {shown:>10}   goal ≤ {goal:g}  {'ok' if ok else 'MISSED'}")
    if watch:
        print(f"  shared by every job of the site: watcher and sweep {shared.queries} queries, "
              f"{shared.cpu * 1000:.0f} ms CPU")  # fmt: skip
    if show:
        print("  runs of the median job:", "; ".join(middle["advances"]))
        for sql in middle["statements"]:
            print("   ", sql[:90], "..." + sql[-60:] if len(sql) > 150 else "")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
