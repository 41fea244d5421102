"""Do the pages hold under load while 200 snapshot jobs run?

Starts, on a throwaway database (PostgreSQL when DATABASE_URL names one, as the
customer runs it): devcloud at a realistic speed (--speed 2), Redis, the Celery
worker and gunicorn with the command lines README.md's production notes give
(read from the README itself, so the bench runs what an operator runs; only the
bind address is the bench's), DEBUG off, collectstatic done. The mirror is a sync
of a devcloud with --servers instances and --snapshots snapshots; --users
signed-in users are members of `alpha` (one in five its admin).

Then 200 snapshot jobs are submitted through the portal's services (as "Snapshot
selected" does) and, at once, locust (headless, in its own environment
var/bench-venv, created on the first run: gevent never enters the portal's) runs
--users users, each asking for a page every 2 s (from a moment of its own) for
--duration seconds: the instance overview, instance detail pages, the snapshot
table with filters and sorts, a project's snapshots, images, the job list and
job pages (bench/locust/portal_pages.py).

Prints p50/p95/p99 over all requests and per page, errors, requests per second,
how many jobs finished and when, CPU seconds and RSS per process (start and end),
each figure with its goal (and to `make bench`'s table, bench/figures.py); exits
non-zero on a miss: p95 or p99 over the goal, an error, fewer than 90 % of the pages
the users asked for answered, or a job unfinished when the load ends.

    .venv/bin/python bench/load_bench.py                      # SQLite
    DATABASE_URL=postgres://portal:portal@127.0.0.1:5432/portal .venv/bin/python bench/load_bench.py
    .venv/bin/python bench/load_bench.py --jobs 0             # the pages alone, for comparison
    WEB_CONCURRENCY=2 GUNICORN_THREADS=8 .venv/bin/python bench/load_bench.py   # another set-up
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.figures import figure  # noqa: E402

GOAL_P95_MS = 250
GOAL_P99_MS = 500
GOAL_ERRORS = 0
BENCH_VENV = ROOT / "var" / "bench-venv"
LOCUSTFILE = ROOT / "bench" / "locust" / "portal_pages.py"
DISK_BYTES = 2 * 1000**3


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=int, default=120, help="seconds of load")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--speed", type=float, default=2.0)
    parser.add_argument("--snapshots", type=int, default=5000, help="snapshots in the mirror")
    # The same mirror with and without jobs (--jobs 0), so the two runs compare.
    parser.add_argument("--servers", type=int, default=440, help="instances in the mirror")
    # A try of a lower CPU priority for the worker (as systemd's Nice= would set it).
    parser.add_argument("--worker-nice", type=int, default=0, help="nice the worker by this")
    # A try of another GIL switch interval in gunicorn's processes (Python's is 5 ms).
    parser.add_argument("--switch-interval", type=float, default=0, help="ms, in gunicorn")
    args = parser.parse_args()

    locust = locust_ensure()
    web_command, worker_command = production_commands()
    if args.worker_nice:
        worker_command = ["nice", "-n", str(args.worker_nice), *worker_command]

    from bench.throwaway_db import engine_name, throwaway_database
    from devcloud.launcher import DevcloudProcess
    from scripts.stack import RedisProcess, child_env, free_port, stop_process, wait_for_port

    work = Path(tempfile.mkdtemp(prefix="load-bench-"))
    data = work / "devcloud"
    # Enough ACTIVE servers for the jobs (populate makes ~70 % ACTIVE), and snapshots.
    subprocess.run(
        [sys.executable, "-m", "devcloud", "populate", "--data", str(data),
         "--servers", str(max(args.jobs * 2 + 40, args.servers)), "--images", str(args.snapshots)],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    redis = RedisProcess(work / "redis").start()
    devcloud = DevcloudProcess(data, speed=args.speed).start()
    worker = web = None
    database = throwaway_database(work, "bench_load")
    try:
        database_url = database.__enter__()
        engine = engine_name(database_url)
        clouds_yaml = work / "clouds.yaml"
        clouds_yaml.write_text(
            "clouds:\n" + devcloud.clouds_yaml(name="devcloud", entries_only=True)
        )
        env = child_env(
            DEBUG="0",
            SECRET_KEY="bench-only-" + os.urandom(16).hex(),
            ALLOWED_HOSTS="127.0.0.1",
            PORTAL_TRUST_X_FORWARDED_PROTO="1",
            DATABASE_URL=database_url,
            REDIS_URL=redis.url,
            OS_CLIENT_CONFIG_FILE=clouds_yaml,
            PORTAL_SITES="devcloud=Bielefeld",
            PORTAL_VAR_DIR=work,
            STATIC_ROOT=work / "static",
            LOG_LEVEL="WARNING",
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
            DJANGO_SETTINGS_MODULE="config.settings",
        )
        for command in (["migrate", "-v", "0"], ["collectstatic", "--noinput", "-v", "0"]):
            subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True)
        os.environ.update(env)
        import django

        django.setup()
        started = time.perf_counter()
        world = seed(args.users)
        print(f"seeded and synced in {time.perf_counter() - started:.0f} s: {world['counts']}")
        worker = start_logged(worker_command, env, work / "worker.log")
        port = free_port()
        web_started = timed(bind(web_command, port), work, switch_ms=args.switch_interval)
        web = start_logged(web_started, env, work / "gunicorn.log")
        wait_for_port(port, timeout=60, process=web)
        return run(args, world, work=work, port=port, locust=locust, engine=engine,
                   processes={"gunicorn": web, "celery": worker, "devcloud": devcloud,
                              "redis": redis.process},
                   web_command=web_command, worker_command=worker_command,
                   devcloud=devcloud)  # fmt: skip
    finally:
        for process in (web, worker):
            stop_process(process)
        devcloud.stop()
        redis.stop()
        from django.db import connections

        connections.close_all()
        database.__exit__(None, None, None)


def locust_ensure() -> Path:
    """locust in the bench's own venv: gevent patches the standard library, and must
    never be importable by the portal's processes."""
    locust = BENCH_VENV / "bin" / "locust"
    if not locust.exists():
        subprocess.run(["python3", "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(BENCH_VENV / "bin" / "pip"), "install", "-q", "locust"], check=True)
    return locust


def production_commands() -> tuple[list[str], list[str]]:
    """The web and worker command lines of README.md's production notes."""
    readme = (ROOT / "README.md").read_text()
    notes = readme.split("## Production notes", 1)[1].split("\n## ", 1)[0]
    spans = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", notes, re.S)]
    web = next(s for s in spans if "gunicorn" in s and "config.wsgi" in s)
    worker = next(s for s in spans if "celery -A config worker" in s and "transfer" not in s)
    return shlex.split(web), shlex.split(worker)


def bind(command: list[str], port: int) -> list[str]:
    """The README's gunicorn command on the bench's own port."""
    command = list(command)
    if "-b" in command:
        command[command.index("-b") + 1] = f"127.0.0.1:{port}"
    else:
        command += ["-b", f"127.0.0.1:{port}"]
    return command


def timed(command: list[str], work: Path, *, switch_ms: float = 0) -> list[str]:
    """The README's gunicorn command with the bench's timing hooks added to its
    settings file (which stays in force): each request's wall time and its thread's
    CPU inside gunicorn, keyed by the X-Request-Id locust sent, to set beside the
    time locust saw. The hooks cost a few microseconds a request."""
    command = list(command)
    settings = ROOT / command[command.index("-c") + 1]
    timed_settings = work / "gunicorn_timed.conf.py"
    timed_settings.write_text(
        f"exec(compile(open({str(settings)!r}).read(), {str(settings)!r}, 'exec'))\n"
        f"LOAD_BENCH_TIMINGS = {str(work / 'gunicorn-timings')!r}\n"
        + TIMING_HOOKS
        + (SWITCH_INTERVAL_HOOK % (switch_ms / 1000) if switch_ms else "")
    )
    command[command.index("-c") + 1] = str(timed_settings)
    return command


TIMING_HOOKS = """
import os as _os, threading as _threading, time as _time

_bench_pre = globals().get("pre_request")
_bench_post = globals().get("post_request")
_bench_lock = _threading.Lock()
_bench_out = {}


# The time the request's queries kept its thread off the CPU: waiting for
# PostgreSQL, then for the GIL to come back.
class _BenchQueries:

    def __init__(self):
        self.count, self.seconds = 0, 0.0

    def __call__(self, execute, sql, params, many, context):
        started, cpu = _time.perf_counter(), _time.thread_time()
        try:
            return execute(sql, params, many, context)
        finally:
            self.count += 1
            self.seconds += _time.perf_counter() - started - (_time.thread_time() - cpu)


def pre_request(worker, req):
    if _bench_pre:
        _bench_pre(worker, req)
    from django.db import connection

    req.bench_queries = _BenchQueries()
    connection.execute_wrappers.append(req.bench_queries)
    req.bench_started = (_time.time(), _time.thread_time())


def post_request(worker, req, environ, resp):
    if _bench_post:
        _bench_post(worker, req, environ, resp)
    from django.db import connection

    connection.execute_wrappers.remove(req.bench_queries)
    started, cpu = req.bench_started
    line = "%s,%d,%.6f,%.6f,%.6f,%d,%.6f\\n" % (
        environ.get("HTTP_X_REQUEST_ID", ""), _os.getpid(), started, _time.time(),
        _time.thread_time() - cpu, req.bench_queries.count, req.bench_queries.seconds)
    with _bench_lock:
        out = _bench_out.get("file")
        if out is None:
            out = _bench_out["file"] = open(
                "%s.%d.csv" % (LOAD_BENCH_TIMINGS, _os.getpid()), "a", buffering=1)
        out.write(line)
"""


SWITCH_INTERVAL_HOOK = """
_bench_post_fork = globals().get("post_fork")


def post_fork(server, worker):
    import sys

    if _bench_post_fork:
        _bench_post_fork(server, worker)
    sys.setswitchinterval(%r)
"""


def start_logged(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    # The programs of the portal's own venv (gunicorn, celery), whatever PATH says.
    bin_dir = Path(sys.executable).parent
    env = {**env, "PATH": f"{bin_dir}:{env.get('PATH', '')}"}
    with open(log, "ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def seed(n_users: int) -> dict:
    """The demo's users and projects and a full sync (operations.demo), then the
    load's users: members of alpha, one in five its admin, each with a session."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from images.models import Image
    from instances.models import Server
    from operations.demo import demo_seed
    from portal.models import Membership, Project

    demo_seed()
    alpha = Project.objects.get(name="alpha")
    User = get_user_model()
    sessions = []
    servers = list(
        Server.objects.filter(project=alpha, deleted_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for i in range(n_users):
        user = User.objects.create_user(f"load-{i:03d}", f"load-{i:03d}@example.org")
        role = Membership.Role.ADMIN if i % 5 == 0 else Membership.Role.MEMBER
        Membership.objects.create(user=user, project=alpha, role=role)
        client = Client()
        client.force_login(user)
        sessions.append({
            "cookie": client.cookies["sessionid"].value,
            "servers": servers[i % 20 :: 20][:10] or servers[:10],
            "project": alpha.pk,
        })  # fmt: skip
    counts = {
        "instances": Server.objects.filter(deleted_at__isnull=True).count(),
        "snapshots": Image.objects.filter(is_snapshot=True, deleted_at__isnull=True).count(),
        "images": Image.objects.filter(deleted_at__isnull=True).count(),
        "users": User.objects.count(),
    }
    return {"alpha": alpha, "sessions": sessions, "counts": counts}


def jobs_submit(n: int, devcloud) -> tuple[list, float]:
    from django.contrib.auth import get_user_model

    from instances.models import Server
    from snapshots.services import snapshot_create_many_request

    if not n:
        return [], time.time()
    alice = get_user_model().objects.get(username="alice")
    servers = list(
        Server.objects.select_related("site", "project")
        .filter(
            project__name="alpha",
            status="ACTIVE",
            deleted_at__isnull=True,
            task_state="",
            flavor_ram_mib__lte=256 * 1024,
        )  # the RAM a snapshot may preserve
        .order_by("-pk")[:n]
    )
    if len(servers) < n:
        raise SystemExit(f"only {len(servers)} ACTIVE servers in alpha")
    for server in servers:
        devcloud.set_server(server.openstack_id, disk_used_bytes=DISK_BYTES)
    started = time.time()
    jobs, plan = snapshot_create_many_request(
        servers=servers, actor=alice, pattern="bench-{instance}", restart=True
    )
    if len(jobs) != n:
        raise SystemExit(f"{len(plan.skipped)} skipped, e.g. {plan.skipped[0].refusal}")
    return jobs, started


# --- processes: CPU and memory ------------------------------------------------------


def process_groups(processes: dict, database_name: str) -> dict[str, list]:
    """Each service's processes (a master and its workers/children); PostgreSQL's
    backends serving the bench's database, when the database is local."""
    import psutil

    groups = {}
    for name, popen in processes.items():
        try:
            root = psutil.Process(popen.pid)
            groups[name] = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            groups[name] = []
    backends = []
    for each in psutil.process_iter(["name", "cmdline"]):
        try:
            line = " ".join(each.info["cmdline"] or [])
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
        if line.startswith("postgres:") and f" {database_name} " in f"{line} ":
            backends.append(each)
    if backends:
        groups["postgres backends"] = backends
    return groups


def group_figures(groups: dict[str, list]) -> dict[str, dict]:
    import psutil

    figures = {}
    for name, members in groups.items():
        rss = cpu = 0.0
        alive = 0
        for each in members:
            try:
                rss += each.memory_info().rss
                times = each.cpu_times()
                cpu += times.user + times.system
                alive += 1
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        figures[name] = {"rss_mib": rss / 2**20, "cpu_s": cpu, "processes": alive}
    return figures


# --- the run ------------------------------------------------------------------------


def run(args, world, *, work, port, locust, engine, processes, web_command, worker_command,
        devcloud) -> int:  # fmt: skip
    from django.db import connection

    from portal.models import Job

    database_name = connection.settings_dict["NAME"]
    # Every page once, so the run starts with warm processes (imports, templates).
    for path in ("/instances/", "/snapshots/", "/images/", "/jobs/"):
        for _ in range(4):  # a few requests, so each gunicorn worker likely gets one
            page_get(port, path, world["sessions"][0]["cookie"])
    alone = cpu_per_request_alone(port, world, processes, database_name)

    groups = process_groups(processes, database_name)
    at_start = group_figures(groups)
    jobs, submitted = jobs_submit(args.jobs, devcloud)
    plan = work / "plan.json"
    plan.write_text(json.dumps({"sessions": world["sessions"], "jobs": [j.pk for j in jobs]}))
    locust_env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE"))}
    locust_env["LOAD_BENCH_PLAN"] = str(plan)
    locust_env["LOAD_BENCH_REQUESTS"] = str(work / "requests.csv")
    load_started = time.time()
    with open(work / "locust.log", "ab") as locust_log:
        users = subprocess.Popen(
            [str(locust), "-f", str(LOCUSTFILE), "--headless", "--users", str(args.users),
             "--spawn-rate", str(max(args.users / 4, 1)), "--run-time", f"{args.duration}s",
             "--host", f"http://127.0.0.1:{port}", "--csv", str(work / "locust"),
             "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "5"],
            cwd=ROOT, env=locust_env, stdout=subprocess.DEVNULL, stderr=locust_log,
        )  # fmt: skip
        # gunicorn's CPU once a second, to split it at the moment the last job finished;
        # locust's own CPU, which shares the cores and whose lateness shows as latency;
        # the whole stack's, to show how busy the cores were in each phase.
        samples = sample_while(users, processes, database_name)
    load_seconds = time.time() - load_started
    groups = process_groups(processes, database_name)  # backends may have come and gone
    at_end = group_figures(groups)

    finished = list(
        Job.objects.filter(pk__in=[j.pk for j in jobs], status__in=Job.FINISHED).values_list(
            "finished_at", "status"
        )
    )
    stats = locust_stats(work / "locust_stats.csv")

    print(f"\nload: {args.users} users, one page every 2 s each, {load_seconds:.0f} s, "
          f"{args.jobs} snapshot jobs submitted at the start; {engine}; "
          f"devcloud --speed {args.speed:g}; mirror {world['counts']}")  # fmt: skip
    print(
        f"  web:    {' '.join(web_command)}"
        + (f" (switch interval {args.switch_interval:g} ms)" if args.switch_interval else "")
    )
    print(f"  worker: {' '.join(worker_command)}")
    print(
        f"\n{'page':<34} {'requests':>8} {'errors':>6} {'p50':>6} {'p95':>6} {'p99':>6} {'max':>6}  ms"
    )
    for name, row in stats.items():
        print(f"{name:<34} {row['count']:8d} {row['failures']:6d} {row['p50']:6.0f} "
              f"{row['p95']:6.0f} {row['p99']:6.0f} {row['max']:6.0f}")  # fmt: skip
    total = stats["Aggregated"]
    if args.jobs:
        ends = sorted(f.timestamp() - submitted for f, _ in finished)
        succeeded = sum(1 for _, status in finished if status == Job.Status.SUCCEEDED)
        within = sum(1 for end in ends if end <= load_seconds)
        print(f"\njobs: {len(finished)} of {args.jobs} finished ({succeeded} succeeded), "
              f"{within} within the {load_seconds:.0f} s of load"
              + (f"; first at {ends[0]:.0f} s, median {ends[len(ends) // 2]:.0f} s, "
                 f"last at {ends[-1]:.0f} s after submission" if ends else ""))  # fmt: skip
    print(
        f"\n{'process':<20} {'count':>5} {'RSS start':>10} {'RSS end':>9} {'CPU s during load':>18}"
    )
    for name, end in at_end.items():
        start = at_start.get(name, {"rss_mib": 0.0, "cpu_s": 0.0, "processes": 0})
        cpu = end["cpu_s"] - start["cpu_s"] if name != "postgres backends" else end["cpu_s"]
        print(f"{name:<20} {start['processes']:>2}→{end['processes']:<2} {start['rss_mib']:8.0f} MiB"
              f" {end['rss_mib']:5.0f} MiB {cpu:14.1f}")  # fmt: skip
    print(f"  (the machine's 2 cores give {2 * load_seconds:.0f} CPU s during the load)")
    web_cpu = at_end["gunicorn"]["cpu_s"] - at_start["gunicorn"]["cpu_s"]
    print(f"  gunicorn CPU per request: {web_cpu / max(total['count'], 1) * 1000:.1f} ms "
          f"under load, {alone:.1f} ms one at a time before it (the same pages, "
          f"before any job existed)")  # fmt: skip

    rows = [
        ("p95, all pages", total["p95"], GOAL_P95_MS, f"{total['p95']:.0f} ms"),
        ("p99, all pages", total["p99"], GOAL_P99_MS, f"{total['p99']:.0f} ms"),
        ("errors", total["failures"], GOAL_ERRORS, f"{total['failures']}"),
    ]
    print(
        f"\n  requests per second {total['rps']:.1f} (p50 {total['p50']:.0f} ms); "
        f"slowest page p95: {max((r['p95'], n) for n, r in stats.items() if n != 'Aggregated')}"
    )
    missed = 0
    for label, value, goal, shown in rows:
        ok = value <= goal
        missed += not ok
        print(f"  {label:<22} {shown:>9}   goal ≤ {goal:g}  {'ok' if ok else 'MISSED'}")
        figure(label, shown, goal=f"≤ {goal:g}", ok=ok)
    # A server that cannot keep up answers fewer requests, not only slower ones.
    # Asked: one page per user every 2 s of --duration, less the 4 s the users take
    # to arrive (--spawn-rate users/4), on average 2 s each.
    served = total["count"] / (args.users * (args.duration - 2) / 2)
    ok = served >= 0.9
    missed += not ok
    print(
        f"  {'pages served / asked':<22} {served:>9.0%}   goal ≥ 90 %  {'ok' if ok else 'MISSED'}"
    )
    figure("pages served / asked (one per user every 2 s)", f"{served:.0%}", goal="≥ 90 %", ok=ok)
    if args.jobs:
        ok = len(finished) == args.jobs
        missed += not ok
        figure(
            "jobs finished during the load", f"{len(finished)} of {args.jobs}", goal="all", ok=ok
        )
    jobs_done = max((f.timestamp() for f, _ in finished), default=None)
    if args.jobs and len(finished) < args.jobs:
        jobs_done = None  # the jobs ran for the whole load
    where_the_time_goes(work, samples, jobs_done=jobs_done, with_jobs=bool(args.jobs))
    figure("gunicorn CPU per request", f"{web_cpu / max(total['count'], 1) * 1000:.1f} ms",
           goal="(reported)", ok=True)  # fmt: skip
    figure("gunicorn CPU per request, one at a time", f"{alone:.1f} ms", goal="(reported)", ok=True)
    return 1 if missed else 0


def sample_while(users: subprocess.Popen, processes: dict, database_name: str) -> list[tuple]:
    """(time, gunicorn CPU s, locust CPU s, the whole stack's CPU s) once a second
    until locust ends. The stack is every service's processes, PostgreSQL's backends
    (looked up again each second: they come and go) and locust, each process's CPU
    counted from when it was first seen, so the last figure shows how busy the
    cores were in each phase (a page waits for a core when they are all busy)."""
    import psutil

    locust = psutil.Process(users.pid)
    samples = []
    first_seen: dict[int, float] = {}
    last_seen: dict[int, float] = {}
    while True:
        try:
            times = locust.cpu_times()
            locust_cpu = times.user + times.system + times.children_user + times.children_system
        except psutil.NoSuchProcess:
            locust_cpu = samples[-1][2] if samples else 0.0
        groups = process_groups(processes, database_name)
        for each in (member for members in groups.values() for member in members):
            try:
                times = each.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            first_seen.setdefault(each.pid, times.user + times.system)
            last_seen[each.pid] = times.user + times.system
        stack = sum(last_seen[pid] - first_seen[pid] for pid in last_seen) + locust_cpu
        gunicorn = group_figures({"gunicorn": groups.get("gunicorn", [])})["gunicorn"]["cpu_s"]
        samples.append((time.time(), gunicorn, locust_cpu, stack))
        try:
            users.wait(timeout=1)
            return samples
        except subprocess.TimeoutExpired:
            continue


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def arrivals_bunching(requests: list[dict], window: float = 0.1) -> str:
    """How bunched the users' requests came: the most that began within any `window`
    seconds, against the average. Independent users asking every 2 s each come
    spread out; users in step come in bursts that queue for the cores."""
    starts = sorted(r["start"] for r in requests)
    if len(starts) < 2:
        return "too few requests"
    most, low = 0, 0
    for high, moment in enumerate(starts):
        while moment - starts[low] > window:
            low += 1
        most = max(most, high - low + 1)
    average = len(starts) / max(starts[-1] - starts[0], 1e-9) * window
    return f"at most {most} began within any {window:g} s ({average:.1f} on average)"


def where_the_time_goes(work: Path, samples: list[tuple], *, jobs_done: float | None,
                        with_jobs: bool) -> None:  # fmt: skip
    """Locust's per-request times split at the moment the last job finished, with
    gunicorn's CPU per request in each phase; then, for the same requests, where the
    time went: before gunicorn's thread took the request (the listen and keep-alive
    queue, a thread to take it), inside it (of which that thread's own CPU; the rest is
    waiting for PostgreSQL or for the GIL), and after it had written the answer until
    locust noted it (the transfer and locust's own loop)."""
    with open(work / "requests.csv") as handle:
        requests = [
            {"id": r["id"], "page": r["page"], "start": float(r["start"]),
             "ms": float(r["ms"]), "failed": r["failed"] == "1"}
            for r in csv.DictReader(handle)
        ]  # fmt: skip
    server = {}
    for path in work.glob("gunicorn-timings.*.csv"):
        for line in path.read_text().splitlines():
            request_id, pid, started, ended, cpu, queries, in_queries = line.split(",")
            server[request_id] = (int(pid), float(started), float(ended), float(cpu),
                                  int(queries), float(in_queries))  # fmt: skip
    if not requests or not samples:
        return

    def cpu_at(moment: float, column: int = 1) -> float:
        before = [s for s in samples if s[0] <= moment] or samples[:1]
        return before[-1][column]

    cores = os.cpu_count() or 1

    first, last = samples[0][0], samples[-1][0]
    phases = [("all", first, last + 60)]
    if with_jobs:
        end = jobs_done if jobs_done is not None else last
        phases += [("while jobs run", first, end), ("after the jobs", end, last + 60)]
    print(f"\n{'phase':<16} {'from':>5} {'to':>5} {'requests':>8} {'p50':>6} {'p95':>6} "
          f"{'p99':>6}  ms   gunicorn CPU/request   cores busy")  # fmt: skip
    for label, start, end in phases:
        times = [r["ms"] for r in requests if start <= r["start"] < end]
        cpu = cpu_at(min(end, last)) - cpu_at(start)
        stack = cpu_at(min(end, last), 3) - cpu_at(start, 3)
        busy = stack / max(cores * (min(end, last) - start), 1e-9)
        print(f"{label:<16} {start - first:5.0f} {min(end, last) - first:5.0f} {len(times):8d} "
              f"{percentile(times, .5):6.0f} {percentile(times, .95):6.0f} "
              f"{percentile(times, .99):6.0f}       {cpu / max(len(times), 1) * 1000:6.1f} ms"
              f"   {busy:9.0%}")  # fmt: skip
    locust_cpu = samples[-1][2] - samples[0][2]
    print(
        f"  locust's own CPU: {locust_cpu:.1f} s in {last - first:.0f} s "
        f"({locust_cpu / max(last - first, 1):.0%} of a core)"
    )
    print(f"  arrivals: {arrivals_bunching(requests)}")

    keys = ("locust", "before", "inside", "cpu", "queries", "other", "count", "after")
    parts: dict[str, list[float]] = {k: [] for k in keys}
    per_pid: Counter = Counter()
    for r in requests:
        seen = server.get(r["id"])
        if seen is None:
            continue
        pid, started, ended, cpu, queries, in_queries = seen
        per_pid[pid] += 1
        parts["locust"].append(r["ms"])
        parts["before"].append((started - r["start"]) * 1000)
        parts["inside"].append((ended - started) * 1000)
        parts["cpu"].append(cpu * 1000)
        parts["queries"].append(in_queries * 1000)
        parts["other"].append((ended - started - cpu - in_queries) * 1000)
        parts["count"].append(queries)
        parts["after"].append(r["ms"] - (ended - r["start"]) * 1000)
    print(f"\nwhere the time goes, {len(parts['locust'])} requests matched "
          f"(ms; each column's own percentile)")  # fmt: skip
    labels = {"locust": "locust's time", "before": "before gunicorn's thread took it",
              "inside": "inside gunicorn", "cpu": "  of which the thread's CPU",
              "queries": "  waiting in queries (PostgreSQL, GIL)",
              "other": "  waiting elsewhere (GIL, a core)",
              "count": "  queries (a count)", "after": "after gunicorn wrote it"}  # fmt: skip
    print(f"  {'':<34} {'mean':>6} {'p50':>6} {'p95':>6} {'p99':>6}")
    for key, values in parts.items():
        mean = sum(values) / max(len(values), 1)
        print(f"  {labels[key]:<34} {mean:6.1f} {percentile(values, .5):6.1f} "
              f"{percentile(values, .95):6.1f} {percentile(values, .99):6.1f}")  # fmt: skip
    print(f"  requests per gunicorn process: {sorted(per_pid.values(), reverse=True)}")


def page_get(port: int, path: str, cookie: str) -> None:
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        headers={"Cookie": f"sessionid={cookie}", "X-Forwarded-Proto": "https"},
    )
    urllib.request.urlopen(request, timeout=30).read()


def cpu_per_request_alone(port: int, world: dict, processes: dict, database_name: str) -> float:
    """gunicorn's CPU per request for the users' mix asked one at a time, before the
    load: what a request costs with no other request and no job beside it. Against the
    same figure under load, the difference is what contention costs (threads waiting
    for the GIL, cores shared with the worker and PostgreSQL)."""
    session = world["sessions"][0]
    paths = [
        *["/instances/"] * 4,
        *[f"/instances/{pk}/" for pk in session["servers"][:3]],
        "/snapshots/", "/snapshots/?status=active&sort=-created_at",
        "/snapshots/?name=snap&sort=name", "/snapshots/?project_name=alpha&sort=-size",
        f"/snapshots/project/{session['project']}/", "/images/", "/images/",
        "/jobs/", "/jobs/",
    ]  # fmt: skip
    rounds = 5
    groups = process_groups({"gunicorn": processes["gunicorn"]}, database_name)
    before = group_figures(groups)["gunicorn"]["cpu_s"]
    for _ in range(rounds):
        for path in paths:
            page_get(port, path, session["cookie"])
    spent = group_figures(groups)["gunicorn"]["cpu_s"] - before
    return spent / (rounds * len(paths)) * 1000


def locust_stats(path: Path) -> dict[str, dict]:
    stats = {}
    with open(path) as handle:
        for row in csv.DictReader(handle):
            stats[row["Name"]] = {
                "count": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "p50": float(row["50%"] or 0),
                "p95": float(row["95%"] or 0),
                "p99": float(row["99%"] or 0),
                "max": float(row["Max Response Time"] or 0),
                "rps": float(row["Requests/s"] or 0),
            }
    return stats


if __name__ == "__main__":
    sys.exit(main())
