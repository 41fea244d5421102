"""`make chaos`: jobs on a cloud that fails, with workers and Redis that die,
beside a second site that stops answering.

Starts its own two devcloud sites (Bielefeld; and Berlin, with the demo's
second catalog and its project gamma), Redis and a Celery worker that ticks
(sends the periodic tasks, as every production worker does; no beat) on a
throwaway SQLite database. Bielefeld answers 20% of requests with 503 and
delays 20% by 300 ms. A calm round of ~30 snapshot, launch and delete jobs runs
there undisturbed; then a chaos round of the same jobs runs while the worker is
SIGKILLed three times (a supervisor starts a new one, as `make run` does) and
Redis once (restarted on the same port; what it held in memory is lost).

In the chaos round Berlin also **hangs**: three snapshot jobs there stop
their VMs, then every request to that site is dropped (devcloud's `hang`
fault: the connection is accepted and never answered) for CHAOS_HANG_SECONDS
(75 s); then it answers again and they must finish (CHAOS_HANG_SECONDS=0: no
hang, to compare). With CHAOS_LOAD=1 one busy process per core runs at normal
priority through the chaos round: the machine has other work to do, as a shared
CI runner or workstation does. The calm round stays quiet, so the extra
downtime includes what that load costs.

When every job has ended, or the time is up, it prints:

    jobs terminal / total, duplicates, VMs left stopped, leaked images,
    lost jobs, and the worst extra downtime of a Bielefeld VM in the chaos
    round over the calm round's median;
    for Berlin: how its jobs ended and how soon after the hang, their runs
    per job-minute while it hung, how much of the hang they rested (waited
    for their next run, as a job backing off does; a spinning job never
    rests), and the share of the worker's time spent waiting on it (from its
    access log: every dropped request and how long a client sat on it)

and exits non-zero when a goal is missed (each line says ok or MISSED).
Bounded: about 4 minutes; each round ends after CHAOS_DEADLINE (480 s) at most.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devcloud.launcher import DevcloudProcess
from scripts.stack import (
    ROOT,
    RedisProcess,
    child_env,
    start_worker,
    stop_process,
)

SPEED = float(os.environ.get("CHAOS_SPEED", "10"))
SNAPSHOTS, LAUNCHES, DELETES = 12, 6, 10
HUNG_SNAPSHOTS = 3  # Berlin's jobs; the worker has 2 processes, so 3 spinning jobs fill it
WORKER_CONCURRENCY = 2
DEADLINE = float(os.environ.get("CHAOS_DEADLINE", "480"))  # seconds for the jobs to end
FAULTS = {
    "http": [{"path": "^/(compute|image|identity)", "status": 503, "rate": 0.2}],
    "latency": [{"path": "^/(compute|image|identity)", "ms": 300, "rate": 0.2}],
}
# Every request to the hung site is dropped; /devcloud (where the hang is lifted) is not.
HANG = {"hang": [{"path": "^/(compute|image|identity|networking)"}]}
# Long enough for a job there to hit its call timeout (OPENSTACK_TIMEOUT, 15 s) and the
# task's soft limit (8 s) many times; short enough for the jobs to finish within the
# no-progress limit set below (120 s) once the site answers again.
HANG_SECONDS = float(os.environ.get("CHAOS_HANG_SECONDS", "75"))
# "1": one busy process per core, at normal priority, through the chaos round.
LOAD = os.environ.get("CHAOS_LOAD", "0") not in ("", "0")
LOAD_CODE = (
    "import os\n"
    "parent = os.getppid()\n"
    "while os.getppid() == parent:  # stops when chaos.py dies, however it dies\n"
    "    for _ in range(1_000_000):\n"
    "        pass\n"
)

GOAL_EXTRA_DOWNTIME = 30.0
# A job waiting on a site that does not answer should try again no more often than a
# job waiting on a slow one polls at its slowest: once per JOB_POLL_MAX_SECONDS (5 s
# here) at the very most, 12 runs a minute. Spinning (a run held up to the soft time
# limit, then again at once) stays under that only because the run is slow, which is
# what the next goal is for.
GOAL_HUNG_RUNS_PER_MINUTE = 12.0
# While the site hangs its jobs should wait more than they try: resting (waiting for
# their next run) at least half the time. Then N such jobs hold at most N/2 worker
# processes, fewer as their backoff grows. A spinning job never rests.
GOAL_HUNG_RESTING_SHARE = 0.5
# The share of the worker's time (processes x seconds of the hang) that its processes
# spent sitting on requests the hung site dropped. Above one half, one unreachable
# site holds more of the worker than every other site together.
GOAL_HUNG_WORKER_SHARE = 0.5
# Once the site answers again, a job there needs one backoff (JOB_POLL_MAX_SECONDS,
# 5 s), the end of the calls it had open (OPENSTACK_TIMEOUT, 15 s) and the rest of
# its snapshot (~10 s at CHAOS_SPEED 10): a minute leaves room for a busy machine.
GOAL_HUNG_RESUMED_SECONDS = 60.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def setup_django(env: dict) -> None:
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def downtime(job) -> float | None:
    """Seconds from "Stop requested" until the instance was ACTIVE again (snapshot jobs)."""
    if job.kind != "snapshot.create":
        return None
    steps = {s["name"]: s for s in job.steps if s.get("phase", "forward") == "forward"}
    undo = {s["name"]: s for s in job.steps if s.get("phase") == "undo"}
    start = steps["stop"].get("started_at")
    end = steps["wait_restarted"].get("finished_at")
    if steps["wait_restarted"]["status"] != "done":
        end = undo.get("undo_wait_active", {}).get("finished_at")
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def job_runs(job) -> int:
    """How often the engine ran the job's steps (one per advance, per step it reached)."""
    return sum(record.get("runs", 0) for record in job.steps)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="chaos-"))
    print(f"state in {work}", flush=True)
    stoppers = []
    try:
        redis = RedisProcess(work / "redis").start()
        stoppers.append(lambda: redis.stop())
        devcloud = DevcloudProcess(work / "devcloud", profile="primary", speed=SPEED).start()
        stoppers.append(devcloud.stop)
        devcloud2 = DevcloudProcess(work / "devcloud2", profile="secondary", speed=SPEED).start()
        stoppers.append(devcloud2.stop)
        clouds_yaml = work / "clouds.yaml"
        clouds_yaml.write_text(
            "clouds:\n"
            + devcloud.clouds_yaml(name="devcloud", entries_only=True)
            + devcloud2.clouds_yaml(name="devcloud2", entries_only=True)
        )
        env = child_env(
            DEBUG="1",
            DATABASE_URL=f"sqlite:///{work / 'portal.sqlite3'}",
            REDIS_URL=redis.url,
            OS_CLIENT_CONFIG_FILE=clouds_yaml,
            # Sites are listed by name: the status watcher meets the hung site first in
            # each round, before the healthy one ("ends the round for every site after it").
            PORTAL_SITES="devcloud=Bielefeld,devcloud2=Berlin",
            PORTAL_VAR_DIR=work,
            JOB_POLL_MIN_SECONDS="1",
            JOB_POLL_MAX_SECONDS="5",
            JOB_NO_PROGRESS_SECONDS="120",
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
            LOG_LEVEL="WARNING",
        )
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
        )
        setup_django(env)
        return run(work, env, devcloud, devcloud2, redis)
    finally:
        for stop in reversed(stoppers):
            stop()


def make_servers(cloud, project, *, prefix: str, count: int) -> list:
    """`count` running tiny Ubuntu servers in `project`, made by alice (so she may act)."""
    from django.contrib.auth import get_user_model

    from images.models import Image
    from instances.models import Flavor
    from instances.services import server_refresh
    from portal.mirror.authorship import authorship_record

    site = project.site
    tiny = Flavor.objects.get(site=site, name="de.NBI tiny")
    ubuntu = Image.objects.get(site=site, name="Ubuntu-22.04-LTS")
    made = [
        cloud.server_create(
            site.name,
            project_id=project.openstack_id,
            name=f"{prefix}-{n:02d}",
            flavor_id=tiny.openstack_id,
            image_id=ubuntu.openstack_id,
            metadata={"portal_user": "alice"},
        )
        for n in range(count)
    ]
    deadline = time.monotonic() + 60
    while any(cloud.server_get(site.name, server_id=s.id).status != "ACTIVE" for s in made):
        if time.monotonic() > deadline:
            raise SystemExit(f"{prefix} servers did not boot")
        time.sleep(0.5)
    alice = get_user_model().objects.get(username="alice")
    for server in made:  # as a launch job would: alice is a member of gamma, not its admin
        authorship_record(site=site, openstack_id=server.id, user=alice)
    return [server_refresh(site, openstack_id=s.id) for s in made]


class Hang:
    """Berlin drops every request from `start()` until HANG_SECONDS later
    (CHAOS_HANG_SECONDS=0: it never hangs, to compare the round without it)."""

    def __init__(self, devcloud: DevcloudProcess, job_ids: list[int], Job):
        self.devcloud = devcloud
        self.job_ids = job_ids
        self.Job = Job
        self.started = self.lifted = None  # time.monotonic()
        self.lifted_at = None  # the portal's clock, to compare with job records
        self.runs = 0  # runs of the hung site's jobs while it hung
        # What its unfinished jobs were doing, sampled twice a second while it hung.
        self.seen = {"running": 0, "queued": 0, "resting": 0}
        self._sampling = threading.Event()

    def _runs(self) -> int:
        return sum(map(job_runs, self.Job.objects.filter(pk__in=self.job_ids)))

    def start(self) -> None:
        self.started = time.monotonic()
        self._runs_before = self._runs()
        if HANG_SECONDS > 0:
            self.devcloud.set_faults(HANG)  # its admin token is taken before the hang
            log(f"Berlin hangs: every request dropped for {HANG_SECONDS:g} s")
            self._sampling.set()
            threading.Thread(target=self._sample, daemon=True).start()
        else:
            self.lift()

    def _sample(self) -> None:
        """running: a worker holds the job; resting: it waits for its next run (a backoff,
        or a parked wait's fallback poll); queued: its run is due and waits for a worker.
        A spinning job is never resting: each run ends at the soft time limit and the
        next is due at once."""
        from django.db import DatabaseError, connection
        from django.utils import timezone

        jobs = self.Job.objects.filter(pk__in=self.job_ids).exclude(status__in=self.Job.FINISHED)
        try:
            while self._sampling.is_set():
                now = timezone.now()
                try:
                    rows = list(jobs.values_list("lease_until", "due_at"))
                except DatabaseError:  # SQLite busy under the workers' writes: skip one
                    rows = []
                for lease_until, due_at in rows:
                    if lease_until and lease_until > now:
                        self.seen["running"] += 1
                    elif due_at and due_at > now:
                        self.seen["resting"] += 1
                    else:
                        self.seen["queued"] += 1
                time.sleep(0.5)
        finally:
            connection.close()

    def share(self, state: str) -> float:
        return self.seen[state] / max(1, sum(self.seen.values()))

    def tick(self) -> None:
        if (
            self.started is not None
            and self.lifted is None
            and time.monotonic() - self.started >= HANG_SECONDS
        ):
            self.lift()

    def lift(self) -> None:
        from django.utils import timezone

        self._sampling.clear()
        self.runs = self._runs() - self._runs_before
        self.lifted = time.monotonic()
        self.lifted_at = timezone.now()
        if HANG_SECONDS > 0:
            self.devcloud.set_faults({})
            log(f"Berlin answers again; its jobs ran {self.runs} times while it hung")

    @property
    def seconds(self) -> float:
        if HANG_SECONDS <= 0:
            return 0.0
        return (self.lifted or time.monotonic()) - self.started


class Load:
    """CHAOS_LOAD=1: one busy process per core at normal priority (other work on the
    machine: a CI runner's neighbours, a developer's build)."""

    def __init__(self):
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        if LOAD:
            count = os.cpu_count() or 1
            self.processes = [
                subprocess.Popen([sys.executable, "-c", LOAD_CODE]) for _ in range(count)
            ]
            log(f"background load: {count} busy processes (one per core)")

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process)
        self.processes = []


def run(work: Path, env: dict, devcloud: DevcloudProcess, devcloud2: DevcloudProcess, redis) -> int:
    from django.contrib.auth import get_user_model

    from images.models import Image
    from instances.launch import instance_launch_request
    from instances.launch_rules import launch_check
    from instances.models import Flavor
    from operations.demo import demo_seed
    from portal import cloud
    from portal.models import Job, Project
    from snapshots.models import Snapshot
    from snapshots.services import snapshot_create_request, snapshot_delete_request

    demo_seed()
    alice = get_user_model().objects.get(username="alice")
    carol = get_user_model().objects.get(username="carol")
    alpha = Project.objects.get(name="alpha")
    beta = Project.objects.get(name="beta")
    gamma = Project.objects.get(name="gamma")  # on Berlin
    site = alpha.site
    tiny = Flavor.objects.get(site=site, name="de.NBI tiny")
    ubuntu = Image.objects.get(site=site, name="Ubuntu-22.04-LTS")

    # The instances the snapshot jobs will stop and start again.
    servers = make_servers(cloud, alpha, prefix="chaos", count=SNAPSHOTS)
    hung_servers = make_servers(cloud, gamma, prefix="hung", count=HUNG_SNAPSHOTS)

    worker_log = work / "worker.log"
    workers = [start_worker(env, concurrency=WORKER_CONCURRENCY, log_path=worker_log, ticks=True)]
    hang = None

    def tend() -> None:
        """The supervisor's part (systemd's Restart=always, or `make run`): a worker
        that exited by itself (Celery exits on some broker losses) is started again.
        And the hang ends when its time is up."""
        if workers[-1].poll() is not None:
            log(f"the worker exited with {workers[-1].returncode}; starting a new one")
            workers.append(
                start_worker(env, concurrency=WORKER_CONCURRENCY, log_path=worker_log, ticks=True)
            )
        if hang is not None:
            hang.tick()

    load = Load()
    try:
        from config.celery import app

        app.conf.broker_url = redis.url
        devcloud.set_faults(FAULTS)

        def submit(tag: str) -> list[int]:
            """~30 jobs: a snapshot of each server, small launches, single deletes."""
            ids = [
                snapshot_create_request(
                    server=server, actor=alice, name=f"{server.name}-{tag}", restart=True
                ).pk
                for server in servers
            ]
            for n in range(LAUNCHES):
                plan = launch_check(
                    actor=carol, project=beta, flavor=tiny, image=ubuntu,
                    prefix=f"chaos-{tag}-{n}", count=1, participants=[],
                )  # fmt: skip
                ids.append(instance_launch_request(actor=carol, plan=plan).pk)
            doomed = Snapshot.objects.filter(project=alpha, deleted_at__isnull=True)
            for snapshot in list(doomed.exclude(name__endswith=f"-{tag}"))[:DELETES]:
                job, refused = snapshot_delete_request(snapshots=[snapshot], actor=alice)
                if job is None:  # refused as a user would be (e.g. its site not answering)
                    log(f"delete of {snapshot.name} refused: {refused.skipped[0][1]}")
                    continue
                ids.append(job.pk)
            return ids

        # The same load on the same faulty cloud, undisturbed by kills: the downtime
        # each VM of the chaos round is measured against.
        calm = wait_all(submit("calm"), Job, timeout=DEADLINE, tend=tend)
        calm_down = [d for d in map(downtime, calm) if d is not None]
        baseline = statistics.median(calm_down)
        log(
            f"calm round: {len(calm)} jobs, {sum(j.is_finished for j in calm)} ended; "
            f"VMs down {baseline:.1f} s (median), {max(calm_down):.1f} s (worst)"
        )

        # Berlin's VMs are stopped by their snapshot jobs; then the site goes dark,
        # so its users' machines are down until it answers again and the jobs finish.
        hung_ids = [
            snapshot_create_request(
                server=server, actor=alice, name=f"{server.name}-chaos", restart=True
            ).pk
            for server in hung_servers
        ]
        if not wait_stop_requested(hung_ids, Job, timeout=60, tend=tend):
            log("Berlin's jobs did not stop their VMs within 60 s; hanging it anyway")
        load.start()
        hang = Hang(devcloud2, hung_ids, Job)
        hang.start()

        job_ids = submit("chaos")
        log(f"submitted {len(job_ids)} jobs under 20% 503s and 300 ms latency")

        for pause in (4, 8, 8):
            time.sleep(pause)
            os.kill(workers[-1].pid, signal.SIGKILL)
            workers[-1].wait()
            log("SIGKILLed the worker; a new one starts in 1 s")
            time.sleep(1)
            tend()
        time.sleep(3)
        redis.process.kill()
        redis.process.wait()
        log("SIGKILLed Redis; restarting it on the same port in 1 s")
        time.sleep(1)
        redis.start()

        jobs = wait_all(job_ids + hung_ids, Job, timeout=DEADLINE, tend=tend)
        if hang.lifted is None:
            hang.lift()
    finally:
        load.stop()
        for worker in workers:
            stop_process(worker)
        devcloud.set_faults({})
        devcloud2.set_faults({})

    time.sleep(1.5)  # devcloud logs a dropped request once its client has closed it
    return report(
        calm + jobs,
        baseline,
        cloud,
        chaos_ids=set(job_ids),
        hung_ids=set(hung_ids),
        hang=hang,
        held=dropped_requests(devcloud2),
    )


def wait_all(job_ids: list[int], Job, *, timeout: float, tend) -> list:
    deadline = time.monotonic() + timeout
    jobs = Job.objects.filter(pk__in=job_ids).select_related("site", "project").order_by("pk")
    while time.monotonic() < deadline:
        tend()
        if all(job.is_finished for job in jobs.all()):
            break
        time.sleep(1)
    return list(jobs.all())


def wait_stop_requested(job_ids: list[int], Job, *, timeout: float, tend) -> bool:
    """Until each job has asked Nova to stop its VM (or has ended)."""

    def past_stop(job) -> bool:
        return job.is_finished or any(
            s["name"] == "stop" and s["status"] in ("done", "skipped") for s in job.steps
        )

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tend()
        if all(map(past_stop, Job.objects.filter(pk__in=job_ids))):
            return True
        time.sleep(0.2)
    return False


def dropped_requests(devcloud: DevcloudProcess) -> list[tuple[str, float]]:
    """(service, seconds a client sat on it) of each request the hang dropped: devcloud
    logs each one once its client gave up, with status 499 (444 if devcloud gave up)."""
    held = []
    with open(devcloud.access_log_path, encoding="utf-8") as access_log:
        for line in access_log:
            fields = line.split()
            if len(fields) == 6 and fields[3] in ("499", "444"):
                held.append((fields[2].split("/")[1], float(fields[4]) / 1000))
    return held


def report(jobs, baseline, cloud, *, chaos_ids, hung_ids, hang: Hang, held) -> int:
    from portal.jobs import job_key

    terminal = [job for job in jobs if job.is_finished]
    duplicates = 0
    leaked = 0
    left_stopped = 0
    extra = []
    for job in jobs:
        site = job.site.name
        if job.kind == "snapshot.create":
            made = cloud.image_find_by_property(site, key="portal_job", value=job_key(job))
            live = [i for i in made if i.status not in ("deleted", "pending_delete")]
            duplicates += max(0, len(live) - 1)
            leaked += sum(1 for i in live if i.status != "active")
            server = cloud.server_get(site, server_id=job.target_server_id)
            if server.status != "ACTIVE":
                left_stopped += 1
                log(f"job {job.pk}: {server.name} is {server.status}: {job.error[:200]}")
            down = downtime(job)
            if down is not None and job.pk in chaos_ids:
                extra.append(down - baseline)
        elif job.kind == "instances.launch":
            for name in job.params["names"]:
                found = cloud.server_find(site, project_id=job.project.openstack_id, name=name)
                mine = [s for s in found if s.metadata.get("portal_job") == job_key(job)]
                duplicates += max(0, len(mine) - 1)
    lost = len(jobs) - len(terminal)
    statuses: dict[str, int] = {}
    for job in jobs:
        statuses[job.status] = statuses.get(job.status, 0) + 1
    worst = max(extra) if extra else 0.0
    median = statistics.median(extra) if extra else 0.0
    lines = [
        ("jobs terminal / total", f"{len(terminal)} / {len(jobs)}", len(terminal) == len(jobs)),
        ("duplicates", duplicates, duplicates == 0),
        ("VMs left stopped", left_stopped, left_stopped == 0),
        ("leaked images", leaked, leaked == 0),
        ("lost jobs", lost, lost == 0),
        (
            "worst extra downtime of a VM (median)",
            f"{worst:.1f} s ({median:.1f} s)",
            worst <= GOAL_EXTRA_DOWNTIME,
        ),
    ]

    hung = [job for job in jobs if job.pk in hung_ids]
    succeeded = sum(job.status == job.Status.SUCCEEDED for job in hung)
    ended_after = [
        (job.finished_at - hang.lifted_at).total_seconds() for job in hung if job.finished_at
    ]
    worst_after = max(ended_after) if len(ended_after) == len(hung) else float("inf")
    hung_down = [d for d in map(downtime, hung) if d is not None]
    hung_lines = [
        ("jobs succeeded / total", f"{succeeded} / {len(hung)}", succeeded == len(hung)),
        (
            "last one ended after the hang",
            f"{worst_after:.1f} s",
            worst_after <= GOAL_HUNG_RESUMED_SECONDS,
        ),
    ]
    held_seconds = sum(seconds for _, seconds in held)
    by_service: dict[str, int] = {}
    for service, _ in held:
        by_service[service] = by_service.get(service, 0) + 1
    if hang.seconds > 0:
        runs_per_minute = hang.runs / (len(hung) * hang.seconds / 60)
        share = held_seconds / (hang.seconds * WORKER_CONCURRENCY)
        hung_lines += [
            (
                "runs per job-minute while hung",
                f"{runs_per_minute:.1f} ({hang.runs} runs)",
                runs_per_minute <= GOAL_HUNG_RUNS_PER_MINUTE,
            ),
            (
                "time its jobs rested (ran / queued)",
                f"{hang.share('resting'):.0%} ({hang.share('running'):.0%} / "
                f"{hang.share('queued'):.0%})",
                hang.share("resting") >= GOAL_HUNG_RESTING_SHARE,
            ),
            (
                "worker time held by the hung site",
                f"{share:.0%} ({held_seconds:.0f} s)",
                share <= GOAL_HUNG_WORKER_SHARE,
            ),
        ]

    load = f"{os.cpu_count()} busy processes" if LOAD else "none (CHAOS_LOAD=1 adds it)"
    print(
        "\nchaos results over both rounds (goal: all terminal, zeros, extra downtime "
        f"≤ {GOAL_EXTRA_DOWNTIME:g} s); background load in the chaos round: {load};"
    )
    print(
        "extra downtime: a Bielefeld VM's downtime in the chaos round minus the calm "
        f"median ({baseline:.1f} s)"
    )
    for label, value, ok in lines:
        print(f"  {label:<40} {value!s:>16}  {'ok' if ok else 'MISSED'}")
    print(f"  job statuses: {statuses}")
    hung_for = (
        f"hung for {hang.seconds:.0f} s (every request dropped)"
        if hang.seconds > 0
        else "did not hang (CHAOS_HANG_SECONDS=0)"
    )
    print(
        f"\nBerlin {hung_for} with {len(hung)} snapshot jobs, their VMs stopped "
        f"(down {min(hung_down, default=0):.0f}–{max(hung_down, default=0):.0f} s); goals: "
        f"all succeed, the last ≤ {GOAL_HUNG_RESUMED_SECONDS:g} s after, "
        f"≤ {GOAL_HUNG_RUNS_PER_MINUTE:g} runs per job-minute, resting "
        f"≥ {GOAL_HUNG_RESTING_SHARE:.0%}, the worker ≤ {GOAL_HUNG_WORKER_SHARE:.0%} held"
    )
    print(
        f"worker time held: seconds the portal's {WORKER_CONCURRENCY} worker processes sat on "
        f"the {len(held)} requests Berlin dropped {by_service}, over "
        f"{WORKER_CONCURRENCY} x the hang"
    )
    for label, value, ok in hung_lines:
        print(f"  {label:<40} {value!s:>16}  {'ok' if ok else 'MISSED'}")
    return 0 if all(ok for _, _, ok in lines + hung_lines) else 1


if __name__ == "__main__":
    sys.exit(main())
