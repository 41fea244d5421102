"""Jobs through a real Celery worker process, real Redis and devcloud."""

from __future__ import annotations

import pytest

from portal.jobs import job_create
from portal.models import Job
from tests import job_kinds  # noqa: F401  (registers the ping kind here too)
from tests.conftest import wait_for_job

pytestmark = pytest.mark.worker


def test_a_trivial_job_runs_through_the_worker_and_waits_without_sleeping(live_demo):
    job = job_create(kind="ping", params={"message": "hello", "wait_seconds": 1})
    job = wait_for_job(job, timeout=30)
    assert job.status == Job.Status.SUCCEEDED
    assert job.result["reply"] == "pong hello"
    # The wait step was re-scheduled (polled) rather than sleeping in the worker.
    assert job.steps[0]["status"] == "done"
    assert job.started_at <= job.finished_at
