"""The engine when a site hangs or is down: a soft-limit hit is not progress, a
site that gives no answer at all is probed by one job while the others wait
without calling, undo steps outlast outages, and a run starts no step after its
time. The cloud is mocked at the gateway boundary (the steps raise its errors)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from portal import cloud
from portal.errors import ActionRefused
from portal.jobs import (
    Kind,
    Step,
    StepFailed,
    job_advance,
    job_create,
    job_key,
    jobs_create,
    site_answers,
    sites_to_probe,
)
from portal.models import Job
from portal.texts import english

CALLS: list[str] = []


def _slow(job):
    CALLS.append("slow")
    raise SoftTimeLimitExceeded()


def _silent(job):
    CALLS.append("silent")
    raise cloud.Unavailable("devcloud is unreachable: read timed out", site="devcloud")


def _answers_503(job):
    CALLS.append("503")
    raise cloud.Unavailable("devcloud answered 503", site="devcloud", status=503)


def _boom(job):
    raise StepFailed("the cloud said no")


def _quick(job):
    CALLS.append("quick")


class Slow(Kind):
    name = "test.slow"
    steps = (Step("call", "Calling", _slow),)


class Silent(Kind):
    name = "test.silent"
    steps = (Step("call", "Calling", _silent),)


class Answers503(Kind):
    name = "test.503"
    steps = (Step("call", "Calling", _answers_503),)


class UndoInOutage(Kind):
    name = "test.undo_in_outage"
    steps = (
        Step("boom", "Exploding", _boom, undo=Step("undo", "Starting the instance again", _silent)),
    )


class ThreeSteps(Kind):
    name = "test.three_steps"
    steps = (Step("a", "A", _quick), Step("b", "B", _quick), Step("c", "C", _quick))


@pytest.fixture
def sent(monkeypatch):
    """Messages the engine hands to Celery (the boundary), instead of a broker."""
    from config.celery import app

    messages = []

    def send_task(name, args, countdown=0):
        if name == "portal.tasks.jobs_advance_task":  # several jobs, advanced in turn
            messages.extend((tuple(job), countdown) for job in args[0])
        else:
            messages.append((args, countdown))

    monkeypatch.setattr(app, "send_task", send_task)
    CALLS.clear()
    return messages


def _job(kind, site, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return job_create(kind=kind, site=site)


def test_a_step_cut_off_by_the_soft_limit_backs_off_and_times_out(
    site, sent, django_capture_on_commit_callbacks, settings
):
    """Before, a soft-limit hit meant "continue at once", which counted as progress:
    a site that never answered looped its jobs forever at countdown 0."""
    job = _job("test.slow", site, django_capture_on_commit_callbacks)
    countdown = job_advance(job.pk, job.wake)
    assert countdown > 0
    job.refresh_from_db()
    assert "answers slowly" in job.progress
    settings.JOB_NO_PROGRESS_SECONDS = 0
    job_advance(job.pk, job.wake)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "no progress" in job.error
    assert "took too long to answer" in job.error


def test_jobs_on_a_site_that_gives_no_answer_wait_without_calling_until_a_probe_answers(
    site, sent, django_capture_on_commit_callbacks, settings, monkeypatch
):
    first = _job("test.silent", site, django_capture_on_commit_callbacks)
    others = [_job("test.silent", site, django_capture_on_commit_callbacks) for _ in range(3)]
    assert job_advance(first.pk, first.wake) > 0
    site.refresh_from_db()
    assert site.silent_since is not None
    for job in [first, *others]:
        job.refresh_from_db()
        job_advance(job.pk, job.wake)
        job.refresh_from_db()
        assert job.status == Job.Status.RUNNING
        assert "Bielefeld has not answered since" in english(job.progress)
        assert job.waits_for == "site"  # parked: no timer in a worker
    assert CALLS == ["silent"]  # one call cost the timeout, not one per job and run

    # The probe: claimed once per JOB_SILENT_PROBE_SECONDS, whoever asks.
    settings.JOB_SILENT_PROBE_SECONDS = 0
    assert sites_to_probe() == [site.pk]
    settings.JOB_SILENT_PROBE_SECONDS = 3600
    assert sites_to_probe() == []

    # The probe's first answer wakes every waiting job at once.
    sent.clear()
    woken = site_answers(site.pk)
    assert set(woken) == {first.pk, *(job.pk for job in others)}
    assert {args[0] for args, countdown in sent} == set(woken)
    site.refresh_from_db()
    assert site.silent_since is None


def test_a_passing_503_does_not_make_the_site_silent(
    site, sent, django_capture_on_commit_callbacks
):
    job = _job("test.503", site, django_capture_on_commit_callbacks)
    job_advance(job.pk, job.wake)
    site.refresh_from_db()
    assert site.silent_since is None


def test_jobs_on_an_unreachable_site_back_off_instead_of_spinning(
    site, sent, django_capture_on_commit_callbacks, settings
):
    settings.JOB_POLL_MIN_SECONDS = 2
    settings.JOB_OUTAGE_BACKOFF_SECONDS = 60
    settings.JOB_SILENT_PROBE_SECONDS = 0
    job = _job("test.silent", site, django_capture_on_commit_callbacks)
    countdowns = []
    for _ in range(6):
        job.refresh_from_db()
        countdowns.append(job_advance(job.pk, job.wake))
    # Its own call timed out: a short backoff. Then the site is known silent: the job
    # sleeps the longest backoff, since the probe's first answer wakes it anyway.
    assert countdowns == [4, 60, 60, 60, 60, 60]


def test_a_passing_503_backs_off_step_by_step(
    site, sent, django_capture_on_commit_callbacks, settings
):
    settings.JOB_POLL_MIN_SECONDS = 2
    settings.JOB_OUTAGE_BACKOFF_SECONDS = 60
    job = _job("test.503", site, django_capture_on_commit_callbacks)
    countdowns = []
    for _ in range(6):
        job.refresh_from_db()
        countdowns.append(job_advance(job.pk, job.wake))
    assert countdowns == [4, 8, 16, 32, 60, 60]


def test_an_undo_step_keeps_trying_through_an_outage_for_hours(
    site, sent, django_capture_on_commit_callbacks, settings
):
    """A forward step gives up after the no-progress limit; the undo that starts the
    instance again must not: it keeps trying (backing off) for JOB_UNDO_OUTAGE_SECONDS."""
    settings.JOB_NO_PROGRESS_SECONDS = 0
    settings.JOB_SILENT_PROBE_SECONDS = 0
    job = _job("test.undo_in_outage", site, django_capture_on_commit_callbacks)
    for _ in range(4):
        job.refresh_from_db()
        assert job_advance(job.pk, job.wake) > 0
    job.refresh_from_db()
    assert job.status == Job.Status.CLEANING_UP
    assert CALLS == ["silent"]  # then it waits for the site's first answer, calling nothing

    settings.JOB_UNDO_OUTAGE_SECONDS = 0
    job_advance(job.pk, job.wake)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert [english(p) for p in job.result["cleanup_problems"]] == [
        "Starting the instance again: Bielefeld did not answer for 0 s "
        "(last answer: devcloud is unreachable: read timed out)"
    ]


def test_a_run_starts_no_step_after_its_time(
    site, sent, django_capture_on_commit_callbacks, settings
):
    settings.JOB_RUN_SECONDS = 0
    job = _job("test.three_steps", site, django_capture_on_commit_callbacks)
    assert job_advance(job.pk, job.wake) == 0  # one step, then the rest in a new message
    assert CALLS == ["quick"]
    job.refresh_from_db()
    job_advance(job.pk, job.wake)
    job.refresh_from_db()
    job_advance(job.pk, job.wake)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert CALLS == ["quick"] * 3


def test_two_unfinished_jobs_on_one_server_are_refused_by_the_database(
    site, sent, django_capture_on_commit_callbacks
):
    """Two requests that passed the checks at the same moment: the second is refused
    with a message, not a 500 and not a second job."""
    target = {"site": site, "target_server_id": "srv-1"}
    with django_capture_on_commit_callbacks(execute=True):
        jobs_create(kind="test.three_steps", actor=None, targets=[target])
    with pytest.raises(ActionRefused, match="Another portal job started on this instance"):
        jobs_create(kind="test.three_steps", actor=None, targets=[target])
    assert Job.objects.filter(target_server_id="srv-1").count() == 1
    # Once it ended, the next one may start.
    Job.objects.filter(target_server_id="srv-1").update(status=Job.Status.SUCCEEDED)
    jobs_create(kind="test.three_steps", actor=None, targets=[target])


def test_markers_name_the_installation_and_a_token_of_the_job(site, sent, settings):
    """The pk alone repeats in a staging copy on the same cloud, or after a restore."""
    first = job_create(kind="test.three_steps", site=site)
    settings.PORTAL_INSTALLATION_ID = "staging1"
    assert job_key(first).startswith(f"staging1-job-{first.pk}-")
    restored = Job.objects.get(pk=first.pk)
    restored.marker = "other-token"  # the same pk, handed out again after a restore
    assert job_key(restored) != job_key(first)


def test_a_job_recorded_while_the_broker_is_down_is_sent_by_the_sweep(
    site, monkeypatch, django_capture_on_commit_callbacks, settings
):
    """Redis down at submit: the request still succeeds (the row is the truth), and
    the recovery sweep sends the job once Redis is back."""
    from kombu.exceptions import OperationalError

    from config.celery import app
    from portal.jobs import jobs_recover_stuck

    def down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(app, "send_task", down)
    with django_capture_on_commit_callbacks(execute=True):
        job = job_create(kind="test.three_steps", site=site)
    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, args, countdown=0: sent.append(args))
    settings.JOB_RECOVER_AFTER_SECONDS = 0
    Job.objects.filter(pk=job.pk).update(due_at=timezone.now() - timedelta(seconds=1))
    assert jobs_recover_stuck() == [job.pk]
    assert sent
    assert sent[0][0] == job.pk


def test_an_answering_site_costs_no_write_when_it_was_not_silent(site):
    """Asked after every step that called the site: a read, no UPDATE (an UPDATE
    that matches nothing still takes SQLite's write lock)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert site_answers(site.pk) == []
    assert not [q for q in queries if q["sql"].startswith("UPDATE")]


def test_a_quick_step_at_a_site_that_was_answering_asks_nothing_about_silence(site):
    """The site row came with the job: a step that got its answers quickly costs no
    read of the site (it was three queries of every snapshot job)."""
    import time

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal.cloud.util import answer_note
    from portal.jobs.outages import site_answered

    job = Job(site=site)
    began = time.monotonic()
    answer_note(site.name)
    with CaptureQueriesContext(connection) as queries:
        site_answered(job, began)
    assert len(queries) == 0


def test_a_long_step_that_got_an_answer_ends_the_silence_marked_meanwhile(site, settings):
    """A call that went unanswered long enough for the site to be marked silent while
    the step ran (by this worker's lease keeper), then answered, clears the mark."""
    import time

    from portal.cloud.util import answer_note
    from portal.jobs.outages import site_answered

    job = Job(site=site)
    began = time.monotonic() - settings.JOB_SILENT_AFTER_SECONDS - 1
    site.__class__.objects.filter(pk=site.pk).update(silent_since=timezone.now())
    answer_note(site.name)
    site_answered(job, began)
    site.refresh_from_db()
    assert site.silent_since is None


def test_an_overdue_job_sent_again_keeps_its_place_in_the_queue(
    site, sent, django_capture_on_commit_callbacks, settings
):
    """Under load a job's message waits behind many: the sweep's copy carries the same
    token, so the message already queued still runs the job (it is not sent to the
    back), and the copy that comes second does nothing."""
    from portal.jobs import jobs_recover_stuck

    job = _job("test.three_steps", site, django_capture_on_commit_callbacks)
    queued = job.wake
    settings.JOB_RECOVER_AFTER_SECONDS = 0
    Job.objects.filter(pk=job.pk).update(due_at=timezone.now() - timedelta(seconds=1))
    assert jobs_recover_stuck() == [job.pk]
    assert job_advance(job.pk, queued) is None  # the queued message ran it to the end
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert CALLS == ["quick", "quick", "quick"]
    assert job_advance(job.pk, queued) is None  # the copy: nothing to do
    assert CALLS == ["quick", "quick", "quick"]
