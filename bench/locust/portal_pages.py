"""Locust users for bench/load_bench.py: each signed-in user asks for one page
every 2 s (`constant_pacing(2)`), the pages a project member browses while jobs
run. Runs in the bench's own environment (var/bench-venv), never the portal's:
it reads what to ask for from the JSON file in LOAD_BENCH_PLAN (session cookies,
instance, project and job ids), written by the bench after seeding."""

from __future__ import annotations

import itertools
import json
import os
import random

from locust import HttpUser, constant_pacing, task

with open(os.environ["LOAD_BENCH_PLAN"]) as _plan:
    PLAN = json.load(_plan)
_sessions = itertools.cycle(PLAN["sessions"])

# The snapshot table as users narrow and order it (status, name, project filters;
# newest first, by name, by size).
SNAPSHOT_VIEWS = [
    "/snapshots/",
    "/snapshots/?status=active&sort=-created_at",
    "/snapshots/?name=snap&sort=name",
    "/snapshots/?project_name=alpha&sort=-size",
    "/snapshots/?q=bench&sort=name",
]


class PortalUser(HttpUser):
    wait_time = constant_pacing(2)

    def on_start(self):
        session = next(_sessions)
        self.rng = random.Random(session["cookie"])
        # Behind the TLS proxy (the portal trusts its X-Forwarded-Proto).
        self.client.headers.update({"X-Forwarded-Proto": "https"})
        self.client.cookies.set("sessionid", session["cookie"])
        self.servers = session["servers"]
        self.project = session["project"]

    def page(self, path: str, name: str) -> None:
        # A redirect (to the login page) or an error page is a failure, not a fast page.
        with self.client.get(path, name=name, allow_redirects=False,
                             catch_response=True) as response:  # fmt: skip
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")

    @task(4)
    def overview(self):
        self.page("/instances/", "overview /instances/")

    @task(3)
    def instance_detail(self):
        self.page(f"/instances/{self.rng.choice(self.servers)}/", "instance detail")

    @task(4)
    def snapshot_table(self):
        self.page(self.rng.choice(SNAPSHOT_VIEWS), "snapshot table (filters, sorts)")

    @task(1)
    def project_snapshots(self):
        self.page(f"/snapshots/project/{self.project}/", "project snapshots")

    @task(2)
    def images(self):
        self.page("/images/", "images")

    @task(2)
    def job_list(self):
        self.page("/jobs/", "job list")

    @task(2)
    def job_detail(self):
        jobs = PLAN["jobs"]
        if jobs:
            self.page(f"/jobs/{self.rng.choice(jobs)}/", "job detail")
        else:
            self.page("/jobs/", "job list")
