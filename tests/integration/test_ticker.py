"""Jobs keep moving without a beat process: every worker ticks, one holds the lease.

Two real workers, no `celery beat`. A parked job whose fallback poll is due, and
that no message will ever reach, is run by the recovery sweep the ticking worker
sends; after that worker is SIGKILLed, the other one takes the lease and the
sweep goes on.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from portal.jobs import job_kind_get
from portal.models import Job, Lease
from scripts.stack import child_env, start_worker, stop_process
from tests import conftest
from tests.conftest import _wait_for_worker, wait_for_job

pytestmark = pytest.mark.worker


def _parked_ping(tag: str) -> Job:
    """A job waiting for the watcher (parked), due a moment ago, with no message sent."""
    steps = [
        {"name": s.name, "label": s.label, "phase": "forward", "status": "pending",
         "started_at": None, "finished_at": None, "detail": ""}
        for s in job_kind_get("ping").steps
    ]  # fmt: skip
    return Job.objects.create(
        kind="ping", params={"message": tag}, steps=steps, wake=uuid.uuid4().hex,
        waits_for="server", due_at=timezone.now() - timedelta(seconds=1),
    )  # fmt: skip


def test_the_sweep_goes_on_when_the_ticking_worker_dies(
    transactional_db, devcloud_pair, own_redis, tmp_path
):
    import tests.job_kinds  # noqa: F401  (registers "ping" here too)

    env = child_env(
        DATABASE_URL=conftest.test_database_url(),
        REDIS_URL=own_redis.url,
        OS_CLIENT_CONFIG_FILE=devcloud_pair["clouds_yaml"],
        PORTAL_SITES="devcloud=Bielefeld",
        JOB_RECOVER_SWEEP_SECONDS="1",
        PORTAL_SYNC_INTERVAL="3600",
    )
    workers, logs = [], []
    try:
        for n in range(2):
            logs.append(tmp_path / f"worker-{n}.log")
            workers.append(
                start_worker(
                    env, concurrency=1, log_path=logs[-1], ticks=True, include=("tests.job_kinds",)
                )
            )
        for worker, log_path in zip(workers, logs, strict=True):
            _wait_for_worker(own_redis.url, worker, log_path)

        first = wait_for_job(_parked_ping("one"), timeout=30)
        assert first.status == Job.Status.SUCCEEDED
        holder = Lease.objects.get(name="tick").holder
        ticking = next(w for w in workers if f":{w.pid}:" in holder)
        os.kill(ticking.pid, signal.SIGKILL)
        ticking.wait()
        killed_at = time.monotonic()

        second = wait_for_job(_parked_ping("two"), timeout=40)
        assert second.status == Job.Status.SUCCEEDED
        assert second.result["reply"] == "pong two"
        assert time.monotonic() - killed_at < 30  # the lease (5 s) ran out, then the sweep
        assert f":{ticking.pid}:" not in Lease.objects.get(name="tick").holder
    finally:
        for worker in workers:
            stop_process(worker)
