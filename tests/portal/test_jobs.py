"""The job engine: steps advance, waits re-schedule instead of sleeping,
failures run the cleanup, stale and duplicate messages do nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone

from portal import cloud
from portal.jobs import (
    Kind,
    Step,
    StepFailed,
    Wait,
    job_advance,
    job_create,
    jobs_recover_stuck,
)
from portal.models import Job
from portal.texts import english

CALLS: list[str] = []


@dataclass
class TallyState:
    made: int = 0
    waits: int = 0
    undo_waited: bool = False


def _first(ctx):
    CALLS.append("first")
    ctx.state.made += 1


def _wait_twice(ctx):
    CALLS.append("wait")
    ctx.state.waits += 1
    if ctx.state.waits < 3:
        return Wait(progress="still waiting")
    return None


def _boom(ctx):
    raise StepFailed("the cloud said no")


def _unavailable(ctx):
    raise cloud.Unavailable("devcloud is unreachable")


def _cleanup(ctx):
    CALLS.append("cleanup")


def _cleanup_waits_once(ctx):
    CALLS.append("undo-wait")
    if not ctx.state.undo_waited:
        ctx.state.undo_waited = True
        return Wait(progress="undoing", observed=1)
    return None


class Waits(Kind):
    name = "test.waits"
    State = TallyState
    steps = (Step("first", "First", _first), Step("wait", "Waiting", _wait_twice))


class Fails(Kind):
    name = "test.fails"
    State = TallyState
    steps = (
        Step("first", "First", _first),
        Step("boom", "Exploding", _boom, undo=Step("cleanup", "Cleaning", _cleanup)),
    )


class FailsAndWaitsToUndo(Kind):
    name = "test.fails_and_waits_to_undo"
    State = TallyState
    cleanup = (
        Step("undo_wait", "Undoing", _cleanup_waits_once),
        Step("undo_boom", "Undo that fails", _boom),
        Step("cleanup", "Cleaning", _cleanup),
    )
    steps = (Step("boom", "Exploding", _boom, undo=cleanup), Step("never", "Never reached", _first))


class Flaky(Kind):
    name = "test.flaky"
    steps = (Step("call", "Calling", _unavailable),)


@pytest.fixture
def scheduled(monkeypatch):
    """Messages the engine hands to Celery (the boundary), instead of a broker."""
    sent = []
    from config.celery import app

    def send_task(name, args, countdown=0):
        if name == "portal.tasks.jobs_advance_task":  # several jobs, advanced in turn
            sent.extend({"args": tuple(job), "countdown": countdown} for job in args[0])
            return
        assert name == "portal.tasks.job_advance_task"
        sent.append({"args": tuple(args), "countdown": countdown})

    monkeypatch.setattr(app, "send_task", send_task)
    CALLS.clear()
    return sent


def _create(kind, django_capture_on_commit_callbacks, **kw):
    with django_capture_on_commit_callbacks(execute=True):
        return job_create(kind=kind, **kw)


def test_it_enqueues_after_commit_with_the_wake_token(
    db, scheduled, django_capture_on_commit_callbacks
):
    job = _create("test.waits", django_capture_on_commit_callbacks)
    assert scheduled == [{"args": (job.pk, job.wake), "countdown": 0}]
    assert job.status == Job.Status.PENDING
    assert [s["name"] for s in job.steps] == ["first", "wait"]


def test_a_waiting_step_reschedules_instead_of_sleeping(
    db, scheduled, django_capture_on_commit_callbacks, settings
):
    settings.JOB_POLL_MIN_SECONDS = 1
    settings.JOB_POLL_MAX_SECONDS = 2
    job = _create("test.waits", django_capture_on_commit_callbacks)
    countdown = job_advance(job.pk, job.wake)
    job.refresh_from_db()
    assert 1 <= countdown <= 2
    assert job.status == Job.Status.RUNNING
    assert job.progress == "still waiting"
    assert job.steps[0]["status"] == "done"
    assert job.steps[1]["status"] == "running"
    # The re-scheduled message carries a new token; the engine holds no lease meanwhile.
    assert scheduled[-1]["args"] == (job.pk, job.wake)
    assert job.lease_until is None

    job_advance(job.pk, job.wake)
    job.refresh_from_db()
    job_advance(job.pk, job.wake)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert job.state["made"] == 1  # the first step ran once
    assert CALLS.count("first") == 1
    assert all(s["status"] == "done" and s["finished_at"] for s in job.steps)
    assert job.finished_at is not None


def test_a_stale_or_duplicate_message_does_nothing(
    db, scheduled, django_capture_on_commit_callbacks
):
    job = _create("test.waits", django_capture_on_commit_callbacks)
    first_wake = job.wake
    job_advance(job.pk, first_wake)
    # The same message delivered again: its token is stale now.
    assert job_advance(job.pk, first_wake) is None
    assert CALLS == ["first", "wait"]


def test_a_job_held_by_another_worker_is_left_alone(
    db, scheduled, django_capture_on_commit_callbacks
):
    job = _create("test.waits", django_capture_on_commit_callbacks)
    Job.objects.filter(pk=job.pk).update(lease_until=timezone.now() + timedelta(minutes=1))
    assert job_advance(job.pk, job.wake) is None
    assert CALLS == []


def test_a_failing_step_fails_the_job_and_runs_cleanup(
    db, scheduled, django_capture_on_commit_callbacks
):
    job = _create("test.fails", django_capture_on_commit_callbacks)
    assert job_advance(job.pk, job.wake) is None
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert english(job.error) == "Exploding: the cloud said no"
    assert job.steps[1]["status"] == "failed"
    assert CALLS == ["first", "cleanup"]
    # The undo step is on the plan, after the forward steps, and shows what ran.
    assert [(s["name"], s["phase"], s["status"]) for s in job.steps] == [
        ("first", "forward", "done"), ("boom", "forward", "failed"), ("cleanup", "undo", "done"),
    ]  # fmt: skip


def test_undo_steps_may_wait_and_a_crash_resumes_them_not_the_failed_step(
    db, scheduled, django_capture_on_commit_callbacks
):
    job = _create("test.fails_and_waits_to_undo", django_capture_on_commit_callbacks)
    assert job_advance(job.pk, job.wake) is not None  # the undo step waits
    job.refresh_from_db()
    assert job.status == Job.Status.CLEANING_UP
    assert english(job.error) == "Exploding: the cloud said no"
    assert job.steps[1]["status"] == "not run"
    # A worker crashed here; the next delivery resumes the undo step, not "boom".
    CALLS.clear()
    assert job_advance(job.pk, job.wake) is None
    job.refresh_from_db()
    assert CALLS == ["undo-wait", "cleanup"]  # the failing undo step did not stop the last one
    assert job.status == Job.Status.FAILED
    assert (
        english(job.error) == "Exploding: the cloud said no"
    )  # never "succeeded" with an old error
    assert [english(p) for p in job.result["cleanup_problems"]] == [
        "Undo that fails: the cloud said no"
    ]


def test_an_unreachable_site_is_retried_until_the_step_times_out(
    db, scheduled, django_capture_on_commit_callbacks, settings
):
    job = _create("test.flaky", django_capture_on_commit_callbacks)
    assert job_advance(job.pk, job.wake) is not None
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING
    assert "retrying" in job.progress

    settings.JOB_NO_PROGRESS_SECONDS = 0
    job_advance(job.pk, job.wake)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "no progress" in job.error
    assert "devcloud is unreachable" in job.error


def test_stuck_jobs_are_handed_to_a_worker_again(
    db, scheduled, django_capture_on_commit_callbacks, settings
):
    job = _create("test.waits", django_capture_on_commit_callbacks)
    fresh = _create("test.waits", django_capture_on_commit_callbacks)
    # The worker that ran it died: its next run is 30 s overdue and nobody holds it.
    Job.objects.filter(pk=job.pk).update(due_at=timezone.now() - timedelta(seconds=30))
    Job.objects.filter(pk=fresh.pk).update(due_at=timezone.now() - timedelta(seconds=2))
    scheduled.clear()
    with django_capture_on_commit_callbacks(execute=True):
        recovered = jobs_recover_stuck()
    assert recovered == [job.pk]
    job.refresh_from_db()
    assert scheduled == [{"args": (job.pk, job.wake), "countdown": 0}]
    assert fresh.pk not in recovered


def _watched_wait(ctx):
    CALLS.append("watched")
    return Wait(progress="waiting for SHUTOFF", observed=len(CALLS), watch="server")


class Watched(Kind):
    name = "test.watched"
    steps = (Step("wait", "Waiting", _watched_wait),)


def test_a_step_the_watcher_wakes_is_parked_and_the_sweep_is_its_fallback_poll(
    db, scheduled, django_capture_on_commit_callbacks, settings
):
    job = _create("test.watched", django_capture_on_commit_callbacks)
    scheduled.clear()
    countdown = job_advance(job.pk, job.wake)
    job.refresh_from_db()
    assert countdown == settings.JOB_WATCHED_POLL_SECONDS
    assert job.waits_for == "server"
    assert scheduled == []  # no message waits in a worker: the watcher will wake it
    assert jobs_recover_stuck() == []  # not due yet
    assert scheduled == []

    Job.objects.filter(pk=job.pk).update(due_at=timezone.now() - timedelta(seconds=1))
    assert jobs_recover_stuck(backlog=True) == []  # routine, not a recovery...
    job.refresh_from_db()
    assert scheduled == [{"args": (job.pk, job.wake), "countdown": 0}]  # ...but sent


def test_while_workers_have_a_backlog_overdue_jobs_are_not_sent_again(
    db, scheduled, django_capture_on_commit_callbacks
):
    job = _create("test.waits", django_capture_on_commit_callbacks)
    Job.objects.filter(pk=job.pk).update(due_at=timezone.now() - timedelta(seconds=10))
    scheduled.clear()
    # Its message is most likely among those waiting: re-sending moves it to the back.
    assert jobs_recover_stuck(backlog=True) == []
    assert scheduled == []
    assert jobs_recover_stuck() == [job.pk]


def test_in_a_backlog_a_long_overdue_job_is_sent_again_once_a_minute_at_most(
    db, scheduled, django_capture_on_commit_callbacks, settings
):
    """A worker killed while holding the job's countdown message took it along (Redis
    gives it back after the visibility timeout only); the queue's backlog must not
    hide that for long, nor move a job that merely waits in a long queue back and
    back again."""
    job = _create("test.waits", django_capture_on_commit_callbacks)
    overdue = timezone.now() - timedelta(seconds=settings.JOB_RECOVER_BACKLOG_SECONDS + 1)
    Job.objects.filter(pk=job.pk).update(due_at=overdue)
    scheduled.clear()
    assert jobs_recover_stuck(backlog=True) == [job.pk]
    Job.objects.filter(pk=job.pk).update(due_at=overdue)  # still not run
    assert jobs_recover_stuck(backlog=True) == []  # not again within the minute
    assert len(scheduled) == 1


def test_many_jobs_overdue_at_once_are_a_backlog_not_lost_messages(
    db, scheduled, django_capture_on_commit_callbacks, settings
):
    """Workers hold the countdown messages that came due in their memory, where the
    broker's queue length does not show them: re-sending every overdue job would only
    move each to the back of the queue. A lost message is still recovered."""
    from portal.jobs.sweep import BACKLOG_JOBS

    jobs = [
        _create("test.waits", django_capture_on_commit_callbacks) for _ in range(BACKLOG_JOBS + 1)
    ]
    late = timezone.now() - timedelta(seconds=settings.JOB_RECOVER_AFTER_SECONDS + 5)
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(due_at=late)
    scheduled.clear()
    assert jobs_recover_stuck(backlog=False) == []
    assert scheduled == []
    # Long overdue, one is a lost message: sent again (once a minute at most).
    lost = timezone.now() - timedelta(seconds=settings.JOB_RECOVER_BACKLOG_SECONDS + 1)
    Job.objects.filter(pk=jobs[0].pk).update(due_at=lost)
    assert jobs_recover_stuck(backlog=False) == [jobs[0].pk]
