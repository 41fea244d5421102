"""Do the pages cost the same on a facility-sized mirror as on a small one?

Seeds two throwaway databases straight into the mirror tables (what a sync
would have written; no cloud is involved, pages never call one): a small
mirror (10 instances, 100 snapshots) and a big one (10,000 instances, 100,000
snapshots), both with the same 20 base images per site, ten projects, half of
everything in `alpha`, a job behind each snapshot and a boot test behind every
third. Then renders every page and htmx partial through
Django's test client as alpha's project admin and as the superuser, one warm-up
and the median of --runs, counting SQL queries and timing them. Prints big/small per page with
its goal (≤ 2×, equal query counts) and exits non-zero when one misses; for a
page over 2× it says whether its SQL time grew too (a real miss) or not (the
time went elsewhere: on a busy machine, likely noise).

    make bench
    .venv/bin/python bench/pages_bench.py --runs 3
    DATABASE_URL=postgres://portal:portal@127.0.0.1:5432/portal .venv/bin/python bench/pages_bench.py

Each size runs in its own process (its own database: a SQLite file, or on
PostgreSQL a database `<name>_bench_<size>` created and dropped by the bench).
A page slower than --slow seconds after its warm-up is timed once, not --runs
times, so a page that does not scale cannot make the bench run for an hour (the
first request of the process is slow once, whatever its page: never timed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.throwaway_db import engine_name, throwaway_database  # noqa: E402

GOAL_RATIO = 2.0
PROJECTS = 10
BASE_IMAGES = 20  # per site, in both sizes


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", default="10,100", help="instances,snapshots")
    parser.add_argument("--big", default="10000,100000", help="instances,snapshots")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--slow", type=float, default=3.0)
    parser.add_argument(
        "--only", action="append", default=[],
        help="run pages whose label contains this (repeat it for several)",
    )  # fmt: skip
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    work = Path(tempfile.mkdtemp(prefix="pages-bench-"))
    results = {}
    for size in ("small", "big"):
        servers, snapshots = (int(n) for n in getattr(args, size).split(","))
        with throwaway_database(work, f"bench_{size}") as db_url:
            engine = engine_name(db_url)
            results[size] = measure_size(args, work, db_url, servers, snapshots, size)
    return report(results, engine)


def measure_size(args, work: Path, db_url: str, servers: int, snapshots: int, size: str) -> dict:
    """Seed one database of one size in a child process and measure every page there."""
    # As in production: DEBUG off (with it, Django logs every query and templates
    # track their origins, which inflates the cost of every row alike).
    env = dict(os.environ, DATABASE_URL=db_url, DEBUG="0", SECRET_KEY="bench-only",
               PORTAL_VAR_DIR=str(work), STATIC_ROOT=str(work / "static"),
               LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE="config.settings")  # fmt: skip
    if not (work / "static").exists():  # the hashed file names pages link to
        subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
                       cwd=ROOT, env=env, check=True)  # fmt: skip
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--child", f"{servers},{snapshots}", "--runs",
         str(args.runs), "--slow", str(args.slow)]
        + [arg for only in args.only for arg in ("--only", only)],
        cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, text=True,
    ).stdout  # fmt: skip
    print(f"{size}: {servers:,} instances, {snapshots:,} snapshots "
          f"({time.perf_counter() - started:.0f}s with seeding)", flush=True)  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def report(results: dict, engine: str) -> int:
    small, big = results["small"], results["big"]
    print(f"\npages on {engine}: median of runs, big mirror / small mirror; "
          f"goal ≤ {GOAL_RATIO:g}× and equal query counts")  # fmt: skip
    print("(SQL ms: the least of the runs, small/big; for a page over 2×, whether it grew too)")
    print(f"{'page':<62} {'small ms':>9} {'big ms':>9} {'ratio':>7} {'SQL ms':>11} "
          f"{'queries':>9} {'rows':>9} {'KB big':>7}")  # fmt: skip
    missed, unequal = [], []
    for label, s in small.items():
        b = big[label]
        ratio = b["ms"] / s["ms"]
        # A page that did not render (a redirect, an error) is never "within the goal".
        ok = (
            ratio <= GOAL_RATIO
            and s["queries"] == b["queries"]
            and b["status"] == s["status"] == 200
        )
        # A table the small mirror cannot fill (a page of 100 of its 10 instances)
        # shows less there: its ratio measures rows drawn, not the facility's size.
        # Printed, with its query counts checked, but not judged by time.
        rows_differ = s.get("rows") != b.get("rows")
        if rows_differ:
            ok = s["queries"] == b["queries"] and b["status"] == s["status"] == 200
            unequal.append(label)
        if not ok:
            missed.append(label)
        queries = f"{s['queries']}/{b['queries']}"
        rows = "" if s.get("rows") is None else f"{s['rows']}/{b['rows']}"
        verdict = "MISSED" if not ok else ("(rows differ)" if rows_differ else "ok")
        sql = f"{s['sql_ms']:.1f}/{b['sql_ms']:.1f}"
        if ratio > GOAL_RATIO:
            verdict += f"  ({sql_verdict(s['sql_ms'], b['sql_ms'])})"
        print(f"{label:<62} {s['ms']:9.1f} {b['ms']:9.1f} {ratio:6.1f}× {sql:>11} {queries:>9} "
              f"{rows:>9} {b['kb']:7.0f}  {verdict}")  # fmt: skip
    print(f"\n{len(small) - len(missed)} of {len(small)} pages within the goal "
          f"({len(unequal)} of them show fewer rows in the small mirror: judged by query "
          f"counts only)")  # fmt: skip
    for label in missed:
        print(f"missed: {label}")
    return 1 if missed else 0


# SQL time below this at 100k is too little to grow by: a page over 2× whose SQL
# stays under it is Python (or the machine), not the facility's size.
SQL_NOISE_MS = 1.0


def sql_verdict(small_ms: float, big_ms: float) -> str:
    """For a page over 2×: whether its SQL time grew too, i.e. whether the database
    reads more at 100k (a real miss) or the extra time is elsewhere (noise, GC,
    another process on the machine)."""
    if big_ms < SQL_NOISE_MS or big_ms <= GOAL_RATIO * max(small_ms, SQL_NOISE_MS / 2):
        return "SQL did not grow: noise?"
    return f"SQL grew {big_ms / max(small_ms, 0.01):.1f}×: a real miss"


# --- the child: one database, one size -------------------------------------------


def child(args) -> int:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    servers, snapshots = (int(n) for n in args.child.split(","))
    world = seed(servers, snapshots)
    pages = page_list(world)
    sql_clock_install()
    results = {}
    for label, who, path, headers in pages:
        if args.only and not any(only in label for only in args.only):
            continue
        results[label] = measure(world[who], path, headers, runs=args.runs, slow=args.slow)
        print(f"  {label:<62} {results[label]['ms']:9.1f} ms", file=sys.stderr, flush=True)
    print(json.dumps(results))
    return 0


def seed(n_servers: int, n_snapshots: int) -> dict:
    """Mirror rows as a sync writes them, in bulk."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from images.models import Image
    from instances.models import Flavor, Server
    from portal.models import Membership, Project, Site

    User = get_user_model()
    alice = User.objects.create_user("alice", "alice@example.org", "x")
    admin = User.objects.create_superuser("admin", "admin@example.org", "x")
    sites = [Site.objects.create(name="devcloud", display_name="Bielefeld"),
             Site.objects.create(name="devcloud2", display_name="Heidelberg")]  # fmt: skip
    projects = [
        Project.objects.create(site=sites[0] if i < 7 else sites[1], openstack_id=f"p-{i:02d}",
                               name="alpha" if i == 0 else f"project-{i:02d}",
                               quota_instances=100000, quota_cores=100000, quota_ram_mib=1 << 40)
        for i in range(PROJECTS)
    ]  # fmt: skip
    Membership.objects.create(user=alice, project=projects[0], role="admin")
    for site in sites:
        Flavor.objects.bulk_create(
            Flavor(site=site, openstack_id=f"f-{ram}", name=f"de.NBI {ram}", vcpus=2,
                   ram_mib=ram * 1024, disk_gb=50)
            for ram in (2, 4, 16, 64, 512)
        )  # fmt: skip
    now = timezone.now()
    bases = {site.pk: [] for site in sites}
    rows = []
    for site in sites:
        for i in range(BASE_IMAGES):
            image_id = f"base-{site.pk}-{i:02d}-{uuid.uuid4()}"
            bases[site.pk].append(image_id)
            rows.append(Image(
                site=site, openstack_id=image_id, name=f"Ubuntu-{i:02d}.04", name_key=f"ubuntu-{i:02d}.04",
                status="active", visibility="public", size=1 << 30, min_disk=20, checksum=f"c{i}",
                tags=["base"], properties={"os_distro": "ubuntu", "os_version": f"{i}.04"},
                created_at=now - timedelta(days=400),
            ))  # fmt: skip
    Image.objects.bulk_create(rows, batch_size=1000)

    def project_of(i: int) -> Project:
        # Half of everything in alpha, the rest spread over the other projects.
        return projects[0] if i % 2 == 0 else projects[1 + (i // 2) % (PROJECTS - 1)]

    server_rows = []
    for i in range(n_servers):
        project = project_of(i)
        name = f"vm-{i:05d}"
        server_rows.append(Server(
            site=project.site, openstack_id=str(uuid.UUID(int=i + 1)), name=name, name_key=name,
            project=project, project_openstack_id=project.openstack_id,
            status="ACTIVE" if i % 5 else "SHUTOFF", power_state=1, vm_state="active",
            flavor_name="de.NBI 4", flavor_vcpus=2, flavor_ram_mib=4096, flavor_disk_gb=50,
            image_openstack_id=bases[project.site_id][i % BASE_IMAGES],
            addresses=[f"10.0.{i // 250 % 250}.{i % 250}"], created_at=now - timedelta(minutes=i),
        ))  # fmt: skip
    Server.objects.bulk_create(server_rows, batch_size=1000)
    servers = list(Server.objects.values_list("openstack_id", "site_id", "project_id"))
    image_rows = []
    for i in range(n_snapshots):
        server_id, site_id, project_id = servers[i % len(servers)]
        project = projects[[p.pk for p in projects].index(project_id)]
        name = f"snap-{project.name}-{i:06d}"
        image_rows.append(Image(
            site_id=site_id, openstack_id=str(uuid.UUID(int=(1 << 64) + i)), name=name,
            name_key=name, status="active", visibility="private", project=project,
            owner_openstack_id=project.openstack_id, size=1 << 30, min_disk=20, checksum=f"s{i}",
            is_snapshot=True, source_server_openstack_id=server_id,
            base_image_openstack_id=bases[site_id][i % BASE_IMAGES],
            properties={"image_type": "snapshot"}, created_at=now - timedelta(seconds=i * 30),
            boot_outcome=boot_outcome_of(i),  # as images.services.boot_test_save leaves it
        ))  # fmt: skip
        if len(image_rows) == 5000:
            Image.objects.bulk_create(image_rows, batch_size=1000)
            image_rows = []
    Image.objects.bulk_create(image_rows, batch_size=1000)
    boot_tests_seed(n_snapshots, servers=servers, now=now)
    jobs_seed(n_snapshots, servers=servers, alice=alice, admin=admin, projects=projects, now=now)
    bob = small_project_seed(site=sites[0], base=bases[sites[0].pk][0], now=now)
    from django.db import connection

    if connection.vendor == "postgresql":
        # What autovacuum does to the fresh tables within a minute (PostgreSQL 13+
        # vacuums after inserts too), done now: with ANALYZE alone, it vacuumed
        # the 100,000-row tables while the first big pages were timed, and until
        # then each index-only count read the table too (no visibility map yet).
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    # What the first full sync does after writing the mirror (a sampled ANALYZE on SQLite).
    from portal.mirror.sqlite import planner_statistics_refresh

    planner_statistics_refresh()
    alpha_server = Server.objects.filter(project=projects[0]).order_by("pk").first()
    return {"alice": alice, "admin": admin, "bob": bob, "alpha": projects[0],
            "server": alpha_server, "site": sites[0]}  # fmt: skip


def small_project_seed(*, site, base: str, now):
    """bob, the one member of `omega`: a project of the same few rows in both sizes
    (3 instances, 12 snapshots, 12 jobs), all older than everyone else's. What a
    list walks for him must not grow with what the rest of the facility holds."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model

    from images.models import Image
    from instances.models import Server
    from portal.models import Job, Membership, Project

    bob = get_user_model().objects.create_user("bob", "bob@example.org", "x")
    omega = Project.objects.create(site=site, openstack_id="p-omega", name="omega",
                                   quota_instances=100, quota_cores=100, quota_ram_mib=1 << 20)  # fmt: skip
    Membership.objects.create(user=bob, project=omega, role="member")
    old = now - timedelta(days=800)
    for i in range(3):
        Server.objects.create(
            site=site, openstack_id=f"omega-server-{i}", name=f"omega-vm-{i}",
            name_key=f"omega-vm-{i}", project=omega, project_openstack_id="p-omega",
            status="ACTIVE", flavor_name="de.NBI 4", flavor_vcpus=2, flavor_ram_mib=4096,
            flavor_disk_gb=50, image_openstack_id=base, created_by=bob,
            created_at=old - timedelta(minutes=i),
        )  # fmt: skip
    for i in range(12):
        Image.objects.create(
            site=site, openstack_id=f"omega-snap-{i}", name=f"omega-snap-{i:02d}",
            name_key=f"omega-snap-{i:02d}", status="active", visibility="private",
            project=omega, owner_openstack_id="p-omega", size=1 << 30, min_disk=20,
            is_snapshot=True, source_server_openstack_id=f"omega-server-{i % 3}",
            base_image_openstack_id=base, created_by=bob, created_at=old - timedelta(hours=i),
        )  # fmt: skip
        Job.objects.create(
            kind="snapshot.create", status="succeeded", actor=bob, site=site,
            project=None if i % 6 == 5 else omega, params={"name": f"omega-snap-{i:02d}"},
            target_server_id=f"omega-server-{i % 3}", target_image_id=f"omega-snap-{i}",
            created_at=old - timedelta(hours=i), finished_at=old - timedelta(hours=i),
        )  # fmt: skip
    return bob


def boot_outcome_of(i: int) -> str:
    """The boot test outcome of snapshot i ("": never tested). Half are tested (of
    alpha's and of the others'), and of those 40 % failed, a few were skipped or are
    running, the rest boot: as many as fill a page of 10 of each outcome for alice
    in the small mirror, so each `?boot=` is judged by time at both sizes."""
    if (i // 2) % 2:
        return ""
    step = (i // 4) % 20
    if step in (9, 19):
        return "running" if step == 9 else "skipped"
    return "failed" if step % 10 in (0, 2, 5, 7) else "verified"


def boot_tests_seed(n_snapshots: int, *, servers: list, now) -> None:
    """The boot tests a facility has behind it (see boot_outcome_of): at 100,000
    snapshots 20,000 failed ones, which `?boot=failed` must not read to show 10."""
    from datetime import timedelta

    from images.models import BootTest

    rows = []
    for i in range(n_snapshots):
        outcome = boot_outcome_of(i)
        if not outcome:
            continue
        rows.append(BootTest(
            site_id=servers[i % len(servers)][1], openstack_id=str(uuid.UUID(int=(1 << 64) + i)),
            outcome=outcome, flavor_name="de.NBI 2", checked_at=now - timedelta(seconds=i * 30 - 600),
            reason="Kernel panic" if outcome == "failed" else "",
        ))  # fmt: skip
        if len(rows) == 5000:
            BootTest.objects.bulk_create(rows, batch_size=1000)
            rows = []
    BootTest.objects.bulk_create(rows, batch_size=1000)


def jobs_seed(n_jobs: int, *, servers: list, alice, admin, projects: list, now) -> None:
    """The jobs a facility of that size has behind it: the one that made each
    snapshot (snapshot i of `seed`, its server and image as targets), newest first,
    alice's in alpha and the superuser's elsewhere; every fiftieth a bulk action
    without a project; five of the newest still running (jobs 5-9: in the small mirror
    jobs 0-4 made alpha's one shut-off instance busy, and a busy row draws no
    actions, so its page asked one query fewer than the big one)."""
    from datetime import timedelta

    from portal.models import Job

    by_pk = {p.pk: p for p in projects}
    rows = []
    for i in range(n_jobs):
        server_id, site_id, project_id = servers[i % len(servers)]
        project = by_pk[project_id]
        bulk = i % 100 in (98, 99)  # one of alice's, one of the superuser's
        status = Job.Status.RUNNING if 5 <= i < 10 else Job.Status.SUCCEEDED
        if i % 10 == 3:
            status = Job.Status.FAILED
        rows.append(Job(
            kind="snapshot.delete" if bulk else "snapshot.create",
            params={} if bulk else {"name": f"snap-{project.name}-{i:06d}"},
            status=status, error="Nova refused the snapshot." if status == "failed" else "",
            actor=alice if project == projects[0] else admin,
            project=None if bulk else project, site_id=site_id,
            target_server_id="" if bulk else server_id,
            target_image_id="" if bulk else str(uuid.UUID(int=(1 << 64) + i)),
            created_at=now - timedelta(seconds=i * 30),
            finished_at=None if status == "running" else now - timedelta(seconds=i * 30 - 20),
        ))  # fmt: skip
        if len(rows) == 5000:
            Job.objects.bulk_create(rows, batch_size=1000)
            rows = []
    Job.objects.bulk_create(rows, batch_size=1000)


# A sample value for every filter a table offers, chosen to match a few rows in
# both sizes. A filter added to a FilterSet without one here stops the bench (a
# KeyError), so every filter is benched.
SNAPSHOT_FILTER_SAMPLES = {
    "q": ["snap-alpha-00000", "*alpha-00000"],
    "name": ["snap-alpha-00000", "*alpha-00000"],
    "project_name": ["alpha"],
    "openstack_id": ["00000000-0000-0001-0000-00000000000"],
    "status": ["active"],
    "site": ["<site>"],
    "boot": ["verified", "failed", "untested"],
}
# Filters shown a page of 10, not the default 25: what the small mirror can fill
# (half of its 100 snapshots are tested: 20 failed, 10 of them alice's).
SMALL_PAGE_FILTERS = {"boot"}
SERVER_FILTER_SAMPLES = {
    "q": ["vm-0000", "00000000-0000-0000-0000-00000000000", "*m-0000"],
    "status": ["SHUTOFF"],
    "project": ["<alpha>"],
    "site": ["<site>"],
    "flavor": ["de.NBI 4"],
}
IMAGE_FILTER_SAMPLES = {"name": ["ubuntu-1"], "tag": ["base"], "site": ["<site>"]}


def sorts_of(table_class) -> list[str]:
    """Every `?sort=` the table's headers offer, both directions."""
    names = [column.name for column in table_class([]).columns if column.orderable]
    return [sort for name in names for sort in (name, f"-{name}")]


def filters_of(filterset_class, samples: dict, world: dict) -> list[tuple[str, str]]:
    """(label, query) for every filter of the FilterSet with each of its sample values."""
    from urllib.parse import urlencode

    stand_in = {"<site>": str(world["site"].pk), "<alpha>": str(world["alpha"].pk)}
    out = []
    for name in filterset_class.base_filters:
        page = {"per_page": 10} if name in SMALL_PAGE_FILTERS else {}
        for value in samples[name]:
            out.append((f"{name}={value}", urlencode({name: stand_in.get(value, value), **page})))
    return out


def page_list(world: dict) -> list[tuple[str, str, str, dict]]:
    """Every page, every htmx partial, and every sort, filter and page size of each
    table (read from the table and filter classes: a new column or filter is benched
    without a change here), alone and as users combine them (a filter, then a sort)."""
    from images.filters import ImageFilterSet
    from instances.filters import ServerFilterSet
    from instances.tables import ServerTable
    from portal.tables import PAGE_SIZES
    from snapshots.filters import SnapshotFilterSet
    from snapshots.tables import SnapshotTable

    htmx = {"HTTP_HX_REQUEST": "true"}
    alpha = world["alpha"].pk
    server = world["server"].pk
    snapshot_sorts = sorts_of(SnapshotTable)
    server_sorts = sorts_of(ServerTable)
    snapshot_filters = filters_of(SnapshotFilterSet, SNAPSHOT_FILTER_SAMPLES, world)
    server_filters = filters_of(ServerFilterSet, SERVER_FILTER_SAMPLES, world)
    image_filters = filters_of(ImageFilterSet, IMAGE_FILTER_SAMPLES, world)
    pages = []
    # bob, a member of a small project (small_project_seed): his lists, every sort.
    pages.append(("bob /jobs/", "bob", "/jobs/", {}))
    for base, sorts in (("/snapshots/", snapshot_sorts), ("/instances/", server_sorts)):
        pages.append((f"bob {base}", "bob", f"{base}?per_page=10", {}))
        for sort in sorts:
            pages.append(
                (f"bob {base}?sort={sort}", "bob", f"{base}?per_page=10&sort={sort}", htmx)
            )
    for who in ("alice", "admin"):
        pages += [
            (f"{who} /instances/", who, "/instances/?per_page=10", {}),
            (f"{who} /instances/ htmx", who, "/instances/?per_page=10", htmx),
            (f"{who} /instances/<id>/", who, f"/instances/{server}/", {}),
            (f"{who} /instances/<id>/row/", who, f"/instances/{server}/row/", htmx),
            (f"{who} /instances/new/", who, f"/instances/new/?project={alpha}", {}),
            (f"{who} /instances/new/ htmx", who, f"/instances/new/?project={alpha}&tab=snapshots", htmx),
            (f"{who} /instances/new/?image_q=<name>", who, f"/instances/new/?project={alpha}&image_q=snap-alpha-00000", htmx),
            (f"{who} /instances/new/?image_q=*<name>", who, f"/instances/new/?project={alpha}&image_q=*alpha-00000", htmx),
            (f"{who} /images/", who, "/images/", {}),
            (f"{who} /snapshots/", who, "/snapshots/?per_page=10", {}),
            (f"{who} /snapshots/ htmx", who, "/snapshots/?per_page=10", htmx),
            (f"{who} /snapshots/project/alpha/", who, f"/snapshots/project/{alpha}/?per_page=10", {}),
            (f"{who} delete select all matching (confirm)", who, "/snapshots/delete/?all_matching=1", {}),
            (f"{who} delete all matching ?name=snap-alpha", who, "/snapshots/delete/?all_matching=1&name=snap-alpha", {}),
            (f"{who} /jobs/", who, "/jobs/", {}),
        ]  # fmt: skip
        for label, query in image_filters:
            pages.append((f"{who} /images/?{label}", who, f"/images/?{query}", htmx))
        for base, sorts, filters in (
            ("/snapshots/", snapshot_sorts, snapshot_filters),
            (f"/snapshots/project/{alpha}/", snapshot_sorts, snapshot_filters),
            ("/instances/", server_sorts, server_filters),
        ):
            shown = base.replace(f"/{alpha}/", "/alpha/")
            for size in PAGE_SIZES:
                pages.append(
                    (f"{who} {shown}?per_page={size}", who, f"{base}?per_page={size}", htmx)
                )
            for sort in sorts:
                pages.append(
                    (f"{who} {shown}?sort={sort}", who, f"{base}?per_page=10&sort={sort}", htmx)
                )
            for label, query in filters:
                pages.append((f"{who} {shown}?{label}", who, f"{base}?{query}", htmx))
                # What users do next: sort what they filtered (newest first, by name).
                for sort in ("name", "-created_at"):
                    pages.append(
                        (
                            f"{who} {shown}?{label}&sort={sort}",
                            who,
                            f"{base}?{query}&sort={sort}",
                            htmx,
                        )
                    )
    return pages


def measure(user, path: str, headers: dict, *, runs: int, slow: float) -> dict:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)
    times, sql_times = [], []
    queries = 0
    response = None
    for run in range(runs + 1):
        # The log keeps the last 9,000 queries; once full, a capture of it counts 0.
        connection.queries_log.clear()
        with CaptureQueriesContext(connection) as captured:
            SqlClock.seconds = 0.0
            t0 = time.perf_counter()
            response = client.get(path, secure=True, **headers)  # as behind the TLS proxy
            seconds = time.perf_counter() - t0
        queries = len(captured.captured_queries)
        if run == 0:  # warm-up (templates, caches)
            continue
        times.append(seconds)
        sql_times.append(SqlClock.seconds)
        if seconds > slow:  # timed once: a page that does not scale must not take an hour
            break
    return {
        "ms": statistics.median(times) * 1000,
        # The least of the runs: what the database had to do, with the least of
        # the other processes' interference (on a busy machine the median of the
        # SQL time swells with the rest, and would call noise a miss).
        "sql_ms": min(sql_times) * 1000,
        "queries": queries,
        "status": response.status_code,
        "kb": len(response.content) / 1024,
        "rows": rows_shown(response),
    }


class SqlClock:
    """Seconds spent in the database driver since last reset: executing and fetching."""

    seconds = 0.0


def sql_clock_install() -> None:
    """Time every query's execute and fetches (CursorWrapper is what every query,
    debug cursor or not, goes through). SQLite does much of a query's work in the
    fetches (rows are stepped as they are read), so execute alone would miss it."""
    from django.db.backends import utils

    def timed(call):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                SqlClock.seconds += time.perf_counter() - t0

        return wrapper

    plain_getattr = utils.CursorWrapper.__getattr__

    def getattr_timed(self, attr):
        value = plain_getattr(self, attr)
        return timed(value) if attr in ("fetchone", "fetchmany", "fetchall") else value

    utils.CursorWrapper.__getattr__ = getattr_timed
    utils.CursorWrapper._execute = timed(utils.CursorWrapper._execute)
    utils.CursorWrapper._executemany = timed(utils.CursorWrapper._executemany)


def rows_shown(response) -> int | None:
    """How many rows the page's table shows (None: no table body)."""
    import re

    body = re.search(rb"<tbody>(.*?)</tbody>", response.content, re.S)
    return body.group(1).count(b"<tr") if body else None


if __name__ == "__main__":
    sys.exit(main())
