"""Do the job engine's own lookups cost the same after 100,000 jobs as after 100?

The job table keeps every job the portal ever ran. The engine asks it, on its own
schedule and for every change the mirror shows:

- the watcher round's compare of every job parked on a site (every second while
  the site has unfinished jobs);
- the wake-up of the jobs parked on one object (every mirror write that moves it),
  and the read-back of the jobs it woke;
- the recovery sweep (every few seconds);
- the watcher's choice of the sites with unfinished jobs (every second).

Each is timed (median of 9) with 10 jobs parked on their servers, next to 100 and
then 100,000 finished jobs, on a throwaway database with its statistics; goal: the
big case within 2x the small one (issue #25's rule for the tables). Messages are not
sent (the Celery boundary is left out).

    make bench
    .venv/bin/python bench/job_history_bench.py
    DATABASE_URL=postgres://portal:portal@127.0.0.1:5432/portal .venv/bin/python bench/job_history_bench.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_RATIO = 2.0
PARKED = 10
REPEAT = 9


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--big", type=int, default=100_000)
    args = parser.parse_args()

    from bench.throwaway_db import engine_name, throwaway_database
    from scripts.stack import child_env

    work = Path(tempfile.mkdtemp(prefix="job-history-bench-"))
    with throwaway_database(work, "bench_job_history") as database_url:
        env = child_env(
            DEBUG="0", SECRET_KEY="bench-only", DATABASE_URL=database_url, PORTAL_SITES="",
            PORTAL_VAR_DIR=work, LOG_LEVEL="WARNING",
        )  # fmt: skip
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env,
                       check=True)  # fmt: skip
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        from django.db import connections

        try:
            return run(args.small, args.big, engine_name(database_url))
        finally:
            connections.close_all()


def run(small: int, big: int, engine: str) -> int:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from bench.figures import figure
    from instances.models import Server
    from instances.services import server_wait_state
    from operations.watch import sites_to_watch
    from portal.jobs import jobs_recover_stuck, parked_wake, sending
    from portal.models import Job, Project, Site

    sending.send_now = lambda jobs: None  # the Celery boundary
    site = Site.objects.create(name="bench", display_name="Bench")
    project = Project.objects.create(site=site, openstack_id="bench", name="bench")
    user = get_user_model().objects.create(username="bench")
    # A finished snapshot job's steps, as the engine leaves them (8 steps).
    steps = [
        {"name": f"step-{n}", "label": "Stopping the instance", "phase": "forward",
         "status": "done", "started_at": "2026-01-01T00:00:00+00:00",
         "finished_at": "2026-01-01T00:00:09+00:00", "detail": "", "runs": 1}
        for n in range(8)
    ]  # fmt: skip
    servers = [
        Server.objects.create(site=site, project=project, openstack_id=f"parked-{n}",
                              name=f"parked-{n}", status="SHUTOFF")
        for n in range(PARKED)
    ]  # fmt: skip
    waiting_on_active = server_wait_state("ACTIVE", "", None)
    parked = [
        Job.objects.create(kind="snapshot.create", status=Job.Status.RUNNING, actor=user,
                           project=project, site=site, target_server_id=server.openstack_id,
                           waits_for="server", parked_on=waiting_on_active, wake="parked",
                           due_at=timezone.now() + timedelta(seconds=30))
        for server in servers
    ]  # fmt: skip
    parked_ids = [job.pk for job in parked]

    def park_again():  # as each woken job's run parks it again
        Job.objects.filter(pk__in=parked_ids).update(
            waits_for="server", parked_on=waiting_on_active, lease_until=None
        )

    def history_to(total: int) -> None:
        have = Job.objects.filter(status=Job.Status.SUCCEEDED).count()
        done_at = timezone.now() - timedelta(days=1)
        rows = (
            Job(kind="snapshot.create", status=Job.Status.SUCCEEDED, actor=user, project=project,
                site=site, target_server_id=f"old-{n % 5000}", wake=f"done-{n}", steps=steps,
                due_at=done_at, finished_at=done_at)
            for n in range(have, total)
        )  # fmt: skip
        while batch := list(islice(rows, 5000)):
            Job.objects.bulk_create(batch)
        with connection.cursor() as cursor:  # the statistics autovacuum or a sync gives it
            cursor.execute("ANALYZE portal_job" if connection.vendor == "postgresql" else "ANALYZE")

    def timed(action) -> float:
        seconds = []
        for _ in range(REPEAT):
            park_again()
            started = time.perf_counter()
            action()
            seconds.append(time.perf_counter() - started)
        return statistics.median(seconds) * 1000

    lookups = {
        "watcher round's compare of every parked job": lambda: parked_wake(site, "server"),
        "wake-up of one object's parked job": lambda: parked_wake(
            site, "server", [servers[0].openstack_id]
        ),
        "recovery sweep": jobs_recover_stuck,
        "watcher's choice of the sites to look at": sites_to_watch,
    }
    measured: dict[int, dict[str, float]] = {}
    for total in (small, big):
        history_to(total)
        measured[total] = {name: timed(action) for name, action in lookups.items()}

    print(f"\nthe job engine's lookups, {PARKED} jobs parked, next to {small:,} and {big:,} "
          f"finished jobs, {engine} (median of {REPEAT})")  # fmt: skip
    missed = 0
    for name in lookups:
        few, many = measured[small][name], measured[big][name]
        ratio = many / few
        ok = ratio <= GOAL_RATIO
        missed += not ok
        print(f"  {name:<46} {few:6.2f} ms  {many:6.2f} ms  {ratio:5.2f}x   "
              f"goal ≤ {GOAL_RATIO:g}x  {'ok' if ok else 'MISSED'}")  # fmt: skip
        figure(f"{name}, {big:,} jobs / {small:,}", ratio, goal=f"≤ {GOAL_RATIO:g}×", ok=ok,
               unit="×")  # fmt: skip
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
