"""Locust users for bench/load_bench.py: each signed-in user asks for one page
every 2 s (`paced`), the pages a project member browses while jobs run. Runs in
the bench's own environment (var/bench-venv), never the portal's: it reads what to
ask for from the JSON file in LOAD_BENCH_PLAN (session cookies, instance, project
and job ids), written by the bench after seeding.

Each user begins at a random moment of its first 2 s. locust starts users in
groups (12 at once at the bench's spawn rate of 12.5 a second), and locust's
`constant_pacing` counts from the moment a user was made, so a group stayed in
step for the whole run: about half the users asked within the same ~0.1 s, twice
every 2 s, which independent users do not.

Every request carries an X-Request-Id, and is written to LOAD_BENCH_REQUESTS (a CSV:
id, page, when it was sent, locust's response time, bytes) when locust stops, so the
bench can split the percentiles by phase and set each beside gunicorn's own time for
the same request."""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
import time

import gevent
from locust import HttpUser, events, task

with open(os.environ["LOAD_BENCH_PLAN"]) as _plan:
    PLAN = json.load(_plan)
_sessions = itertools.cycle(PLAN["sessions"])
_request_ids = itertools.count(1)
_requests: list[tuple] = []


@events.request.add_listener
def _record(request_type, name, response_time, response_length, response, context,
            exception, start_time, **kwargs):  # fmt: skip
    request_id = response.request.headers.get("X-Request-Id", "") if response is not None else ""
    _requests.append((request_id, name, start_time, response_time, response_length,
                      int(exception is not None)))  # fmt: skip


@events.quitting.add_listener
def _write(environment, **kwargs):
    path = os.environ.get("LOAD_BENCH_REQUESTS")
    if path:
        with open(path, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["id", "page", "start", "ms", "bytes", "failed"])
            writer.writerows(_requests)


# The snapshot table as users narrow and order it (status, name, project filters;
# newest first, by name, by size).
SNAPSHOT_VIEWS = [
    "/snapshots/",
    "/snapshots/?status=active&sort=-created_at",
    "/snapshots/?name=snap&sort=name",
    "/snapshots/?project_name=alpha&sort=-size",
    "/snapshots/?q=bench&sort=name",
]


PACING_SECONDS = 2


def paced(user: PortalUser) -> float:
    """The wait until the user's next request: one every PACING_SECONDS from its own
    first request; at once, and counting from then, when a page took longer."""
    now = time.perf_counter()
    user.next_at = max(user.next_at + PACING_SECONDS, now)
    return user.next_at - now


class PortalUser(HttpUser):
    wait_time = paced

    def on_start(self):
        session = next(_sessions)
        self.rng = random.Random(session["cookie"])
        # Behind the TLS proxy (the portal trusts its X-Forwarded-Proto).
        self.client.headers.update({"X-Forwarded-Proto": "https"})
        self.client.cookies.set("sessionid", session["cookie"])
        self.servers = session["servers"]
        self.project = session["project"]
        # Its own moment within the pacing period (see the module's docstring).
        gevent.sleep(self.rng.uniform(0, PACING_SECONDS))
        self.next_at = time.perf_counter()

    def page(self, path: str, name: str) -> None:
        # A redirect (to the login page) or an error page is a failure, not a fast page.
        headers = {"X-Request-Id": str(next(_request_ids))}
        with self.client.get(path, name=name, allow_redirects=False, headers=headers,
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
