"""The lease of a job a worker advances: kept by one thread per worker process, not
one thread started and joined for every advance (most take milliseconds)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from portal.jobs import lease_kept, outages
from portal.models import Job


@pytest.fixture
def held_job(transactional_db):
    """A job a worker holds: its lease runs out in LEASE."""
    return Job.objects.create(kind="test.lease", lease_until=timezone.now() + outages.LEASE)


def test_a_long_step_keeps_its_lease(held_job, monkeypatch):
    monkeypatch.setattr(outages, "LEASE_RENEW", 0.5)
    before = held_job.lease_until
    with lease_kept(held_job.pk):
        time.sleep(2.5)  # a step waiting for a slow cloud call
    held_job.refresh_from_db()
    assert held_job.lease_until > before


def test_a_released_job_is_not_extended(held_job, monkeypatch):
    monkeypatch.setattr(outages, "LEASE_RENEW", 0.5)
    Job.objects.filter(pk=held_job.pk).update(lease_until=None)  # the run let it go
    with lease_kept(held_job.pk):
        time.sleep(1.5)
    held_job.refresh_from_db()
    assert held_job.lease_until is None


def test_short_advances_start_no_thread_each(held_job, monkeypatch):
    started = []
    real_start = threading.Thread.start

    def counting_start(thread):
        started.append(thread.name)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    for _ in range(20):
        with lease_kept(held_job.pk):
            pass
    assert len(started) <= 1  # the process's keeper, once


def test_a_short_advance_leaves_the_lease_alone(held_job):
    Job.objects.filter(pk=held_job.pk).update(lease_until=timezone.now() + timedelta(seconds=2))
    held_job.refresh_from_db()
    before = held_job.lease_until
    with lease_kept(held_job.pk):
        pass
    time.sleep(1.2)  # a keeper round after the run ended
    held_job.refresh_from_db()
    assert held_job.lease_until == before
