"""Do 1,000 snapshot jobs at once take as long as one?

Starts devcloud at a realistic speed (a job's cloud time is tens of seconds),
Redis, and a real Celery worker started as the README's production notes prescribe
(WORKER_PROCESSES_PER_CORE processes per core) that ticks (sends the periodic tasks),
which runs the per-site status watcher every second, on a throwaway database. Every instance gets the
same 2 GB of used disk. Then, through the portal's services:

- one stop-then-snapshot-then-restart job alone (no boot test), timed from
  submission until the job record says it ended;
- --jobs such jobs submitted at once, as "Snapshot selected" on the instance
  overview does (the submission itself is timed), timed from the submission
  until the last job ended.

Completion lag is how late the job record noticed the cloud had finished: the
job's end minus the moment devcloud made the instance ACTIVE again (read from
devcloud's own store, at microsecond precision). Prints the figures with their
goals, the cloud calls per job, and the CPU the worker, devcloud and (on PostgreSQL)
the database server spent: on two cores shared by all three, the time of 1,000 jobs
follows their CPU per job together. Whether a wake-up is lost depends on how the
syncs fall, so one good run proves little: it runs --repeat times (3), each on a
fresh devcloud and database, and the worst of the runs counts; exits non-zero
when it misses a goal.

    make bench
    .venv/bin/python bench/snapshot_jobs_bench.py --speed 2 --jobs 1000 --repeat 3
    .venv/bin/python bench/snapshot_jobs_bench.py --jobs 200 --repeat 1
    .venv/bin/python bench/snapshot_jobs_bench.py --no-watch   # the per-job polling, for comparison
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Issue #25: 1,000 jobs within 1.3x one job's time; 200 (last round's figure) within 1.2x.
GOAL_RATIO = {200: 1.2, 1000: 1.3}
GOAL_LAG_MEDIAN = 1.0
GOAL_LAG_P95 = 3.0
GOAL_SUBMIT_SECONDS = 2.0
# Worker CPU per job (process time of the worker and its pool, watcher and sweep
# included): on 2 cores, with devcloud's own share, 1.3x needs about this little.
GOAL_WORKER_CPU_MS = 20.0
DISK_BYTES = 2 * 1000**3


# The README's production notes: a worker runs this many processes per core (jobs
# wait on HTTP and the database, so more processes than cores keep the cores busy).
WORKER_PROCESSES_PER_CORE = 2


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--speed", type=float, default=2.0)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="runs; the worst counts")
    parser.add_argument(
        "--concurrency", type=int, default=WORKER_PROCESSES_PER_CORE * (os.cpu_count() or 1)
    )
    parser.add_argument(
        "--no-watch", action="store_true", help="the periodic tasks without the status watcher"
    )
    parser.add_argument("--figures", help=argparse.SUPPRESS)  # a run's figures, as JSON
    args = parser.parse_args()
    if args.repeat > 1:
        return worst_of_runs(args)
    return one_run(args)


def worst_of_runs(args) -> int:
    """Each run in a process of its own (its own devcloud, Redis, worker and
    database); then the worst figure of all runs against its goal."""
    runs = []
    for number in range(1, args.repeat + 1):
        print(f"\nrun {number} of {args.repeat}", flush=True)
        with tempfile.NamedTemporaryFile(suffix=".json") as figures:
            command = [sys.executable, __file__, "--repeat", "1", "--figures", figures.name,
                       "--speed", str(args.speed), "--jobs", str(args.jobs),
                       "--concurrency", str(args.concurrency)]  # fmt: skip
            if args.no_watch:
                command.append("--no-watch")
            subprocess.run(command, cwd=ROOT, check=False)
            text = Path(figures.name).read_text()
        if not text:
            print(f"run {number} did not finish")
            return 1
        runs.append(json.loads(text))
    worst = {label: max(run[label] for run in runs) for label in runs[0] if label != "engine"}
    print(f"\nworst of {len(runs)} runs, {args.jobs} jobs, {runs[0]['engine']}:")
    return goals_report(worst, args.jobs)


def one_run(args) -> int:
    from devcloud.launcher import DevcloudProcess
    from scripts.stack import RedisProcess, child_env, start_worker, stop_process

    work = Path(tempfile.mkdtemp(prefix="snapshot-jobs-bench-"))
    data = work / "devcloud"
    # Enough servers that --jobs + 1 of them are ACTIVE (populate makes ~70 % ACTIVE).
    subprocess.run(
        [sys.executable, "-m", "devcloud", "populate", "--data", str(data),
         "--servers", str(args.jobs * 2 + 20), "--images", "0"],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    from bench.throwaway_db import engine_name, throwaway_database

    redis = RedisProcess(work / "redis").start()
    devcloud = DevcloudProcess(data, speed=args.speed).start()
    worker = None
    database = throwaway_database(work, "bench_jobs")
    try:
        database_url = database.__enter__()
        args.engine = engine_name(database_url)
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
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
            # Without the watcher, the ticker still sends the sync and the recovery sweep.
            PORTAL_WATCH_INTERVAL="3600" if args.no_watch else "1",
        )
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env,
                       check=True)  # fmt: skip
        # Submitting and working run as in production: DEBUG off (DEBUG keeps a log
        # of every query).
        worker_env = {**env, "DEBUG": "0", "SECRET_KEY": "bench-only-" + os.urandom(8).hex()}
        os.environ.update(worker_env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        from operations.demo import demo_seed

        demo_seed()
        worker = start_worker(
            worker_env, concurrency=args.concurrency, ticks=True, log_path=work / "worker.log"
        )
        return run(devcloud, data, args, worker=worker)
    finally:
        stop_process(worker)
        devcloud.stop()
        redis.stop()
        from django.db import connections

        connections.close_all()
        database.__exit__(None, None, None)


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (the worker's pool), so far."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """CPU time so far of a process itself and of its children: for a prefork
    worker, the parent that takes messages from Redis and hands them to the pool
    (and runs the ticker), and the pool that runs the tasks."""
    import psutil  # openstacksdk depends on it

    process = psutil.Process(pid)
    own = children = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        if each.pid == pid:
            own += times.user + times.system
        else:
            children += times.user + times.system
    return own, children


def database_server_cpu_seconds() -> float:
    """CPU time so far of the PostgreSQL server's processes: its backends, its WAL
    writer and the rest (a bench runs alone on the machine, so what they do is the
    bench's). On SQLite the database works inside the worker: not asked."""
    import psutil

    total = 0.0
    for process in psutil.process_iter(["name"]):
        if process.info["name"] != "postgres":
            continue
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:  # a backend that ended between listing and reading
            continue
        total += times.user + times.system
    return total


def run(devcloud, data: Path, args, *, worker) -> int:
    from django.contrib.auth import get_user_model

    from instances.models import Server
    from portal.models import Job
    from snapshots.services import snapshot_create_many_request, snapshot_create_request

    alice = get_user_model().objects.get(username="alice")
    servers = list(
        Server.objects.select_related("site", "project")
        .filter(project__name="alpha", status="ACTIVE", deleted_at__isnull=True, task_state="")
        .order_by("pk")[: args.jobs + 1]
    )
    if len(servers) < args.jobs + 1:
        raise SystemExit(f"only {len(servers)} ACTIVE servers in alpha")
    for server in servers:
        devcloud.set_server(server.openstack_id, disk_used_bytes=DISK_BYTES)
    store = sqlite3.connect(data / "devcloud.sqlite3")

    def requests_sent() -> int:
        with open(devcloud.access_log_path) as log:
            return sum(1 for _ in log)

    def active_again_at(server_id: str) -> float:
        (stamp,) = store.execute(
            "SELECT updated_at FROM servers WHERE id = ?", (server_id,)
        ).fetchone()
        return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()

    def wait_all(jobs: list) -> None:
        # The bench shares the two cores with what it measures: it asks by the jobs'
        # range of ids (one submission's are consecutive, nothing else runs), not by a
        # list of 1,000 ids, which cost it ~1 s of CPU in a run. The figures come from
        # the rows' own end times, not from when this loop noticed.
        pks = [job.pk for job in jobs]
        unfinished = Job.objects.filter(pk__range=(min(pks), max(pks))).exclude(
            status__in=Job.FINISHED
        )
        while unfinished.exists():
            time.sleep(0.2)

    def outcome(jobs: list, started: float) -> tuple[float, list[float]]:
        done = list(Job.objects.filter(pk__in=[job.pk for job in jobs]))
        failed = [job for job in done if job.status != Job.Status.SUCCEEDED]
        if failed:
            raise SystemExit(
                f"{len(failed)} job(s) failed, e.g. #{failed[0].pk}: {failed[0].error}"
            )
        lags = [job.finished_at.timestamp() - active_again_at(job.target_server_id) for job in done]
        return max(job.finished_at.timestamp() for job in done) - started, lags

    def submit(server, name: str):
        return snapshot_create_request(server=server, actor=alice, name=name, verify=False)

    before = requests_sent()
    started = time.time()
    one_job = [submit(servers[0], "bench-one")]
    one_submit = time.time() - started
    wait_all(one_job)
    one, one_lags = outcome(one_job, started)
    one_calls = requests_sent() - before

    before = requests_sent()
    on_server = args.engine == "PostgreSQL"  # SQLite's work is in the worker's CPU
    cpu_before = {"worker": cpu_seconds(worker.pid), "devcloud": cpu_seconds(devcloud.pid),
                  "database": database_server_cpu_seconds() if on_server else 0.0}  # fmt: skip
    parent_before = cpu_split(worker.pid)[0]
    started = time.time()
    # As a user snapshots many machines: ticked on the overview, "Snapshot selected".
    many_jobs, plan = snapshot_create_many_request(
        servers=servers[1:], actor=alice, pattern="bench-{instance}", restart=True
    )
    submit_seconds = time.time() - started
    if len(many_jobs) != args.jobs:
        raise SystemExit(f"{len(plan.skipped)} skipped, e.g. {plan.skipped[0].refusal}")
    wait_all(many_jobs)
    many, lags = outcome(many_jobs, started)
    many_calls = requests_sent() - before
    cpu = {
        "worker": cpu_seconds(worker.pid) - cpu_before["worker"],
        "devcloud": cpu_seconds(devcloud.pid) - cpu_before["devcloud"],
        "database": database_server_cpu_seconds() - cpu_before["database"] if on_server else 0.0,
    }
    parent_cpu = cpu_split(worker.pid)[0] - parent_before
    server_cpu = f"PostgreSQL's server {cpu['database']:.1f} s, " if on_server else ""

    print_path(one_job, many_jobs)
    lags.sort()
    p95 = lags[min(len(lags) - 1, int(0.95 * len(lags)))]
    median = statistics.median(lags)
    watcher = "off (per-job polling)" if args.no_watch else "on"
    print(f"\n{args.jobs} snapshot jobs at once on devcloud at --speed {args.speed:g} "
          f"(2 GB used disk each), {args.concurrency} worker processes, {args.engine}, "
          f"status watcher {watcher}")  # fmt: skip
    print(f"  one job alone                 {one:7.1f} s   lag {one_lags[0]:.2f} s   "
          f"{one_calls} cloud calls, submitted in {one_submit * 1000:.0f} ms")  # fmt: skip
    print(f"  {args.jobs} jobs                      {many:7.1f} s   "
          f"{many_calls / args.jobs:.1f} cloud calls per job (watcher included)")  # fmt: skip
    print(f"  CPU while the {args.jobs} ran: worker (ticking) {cpu['worker']:.1f} s "
          f"({cpu['worker'] / args.jobs * 1000:.0f} ms per job, watcher included; "
          f"{parent_cpu:.1f} s of it in the worker's main process), "
          f"devcloud {cpu['devcloud']:.1f} s, {server_cpu}of {2 * many:.0f} s on 2 cores")  # fmt: skip
    # What the ratio follows: the CPU per job of everything that shares the two cores
    # (see the README's production notes).
    machine_ms = sum(cpu.values()) / args.jobs * 1000
    print(f"  CPU per job, all of them together: {machine_ms:.0f} ms")
    figures = {"ratio": many / one, "lag_median": median, "lag_p95": p95,
               "submit": submit_seconds, "worker_cpu_ms": cpu["worker"] / args.jobs * 1000}  # fmt: skip
    if args.figures:
        Path(args.figures).write_text(json.dumps({**figures, "engine": args.engine}))
    return goals_report(figures, args.jobs)


# A job's path, as its row recorded it: each gap ends at the named moment. The
# first run's gaps show the queue at submission; a wait's gap is the cloud's time
# plus the watcher's round, the wake-up message and a free worker process.
PATH = (
    ("first run began", "created", ("check", "started_at")),
    ("stop sent", ("check", "started_at"), ("stop", "finished_at")),
    ("seen SHUTOFF", ("stop", "finished_at"), ("wait_stopped", "finished_at")),
    ("snapshot sent", ("wait_stopped", "finished_at"), ("snapshot", "finished_at")),
    ("upload seen done", ("snapshot", "finished_at"), ("settle", "finished_at")),
    ("start sent", ("settle", "finished_at"), ("restart", "finished_at")),
    ("seen ACTIVE", ("restart", "finished_at"), ("wait_restarted", "finished_at")),
    ("job ended", ("wait_restarted", "finished_at"), "finished"),
)


def _moments(job) -> dict:
    """The moments of PATH for one job (seconds since the epoch)."""
    seen = {"created": job.created_at.timestamp(), "finished": job.finished_at.timestamp()}
    for record in job.steps:
        for end in ("started_at", "finished_at"):
            if record.get(end):
                seen[(record["name"], end)] = datetime.fromisoformat(record[end]).timestamp()
    return seen


def print_path(one_job: list, many_jobs: list) -> None:
    """Where the time goes on the way: each gap of one job's path alone, against the
    median and p95 of that gap over the many jobs, and the last job to end, with the
    moment (since submission) each gap ended."""
    from portal.models import Job

    one = _moments(Job.objects.get(pk=one_job[0].pk))
    many = [_moments(job) for job in Job.objects.filter(pk__in=[job.pk for job in many_jobs])]
    start = min(moments["created"] for moments in many)
    last = max(many, key=lambda moments: moments["finished"])
    print("  path of a job (s): gap            alone   median    p95   last job (ended at)")
    for label, begin, end in PATH:
        gaps = sorted(m[end] - m[begin] for m in many if begin in m and end in m)
        if not gaps or begin not in one or end not in one:
            continue
        p95 = gaps[min(len(gaps) - 1, int(0.95 * len(gaps)))]
        tail = f"{last[end] - last[begin]:6.2f} ({last[end] - start:5.1f})" if end in last else ""
        print(f"    {label:<28} {one[end] - one[begin]:6.2f} {statistics.median(gaps):8.2f} "
              f"{p95:6.2f}   {tail}")  # fmt: skip
    sent = sorted(m[("stop", "finished_at")] - start for m in many if ("stop", "finished_at") in m)
    if sent:
        print(f"    stops sent: half by {statistics.median(sent):.1f} s, "
              f"the last at {sent[-1]:.1f} s after submission")  # fmt: skip


def goals_report(figures: dict[str, float], jobs: int) -> int:
    """Print each figure with its goal; 1 when one is missed."""
    ratio_goal = GOAL_RATIO.get(jobs, max(GOAL_RATIO.values()))
    rows = [
        (f"{jobs} jobs / one job", figures["ratio"], ratio_goal, f"{figures['ratio']:.2f}"),
        ("completion lag, median", figures["lag_median"], GOAL_LAG_MEDIAN,
         f"{figures['lag_median']:.2f} s"),
        ("completion lag, p95", figures["lag_p95"], GOAL_LAG_P95, f"{figures['lag_p95']:.2f} s"),
        (f"submitting {jobs} at once", figures["submit"], GOAL_SUBMIT_SECONDS,
         f"{figures['submit']:.2f} s"),
        ("worker CPU per job", figures["worker_cpu_ms"], GOAL_WORKER_CPU_MS,
         f"{figures['worker_cpu_ms']:.0f} ms"),
    ]  # fmt: skip
    missed = 0
    for label, value, goal, shown in rows:
        ok = value <= goal
        missed += not ok
        print(f"  {label:<28} {shown:>9}   goal ≤ {goal:g}  {'ok' if ok else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
