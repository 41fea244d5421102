"""The job engine: a Job row is the truth, Celery only moves it forward.

A job kind is an ordered list of steps. A step is a function of the job that
either finishes (returns None), asks to be called again later (returns
`Wait`), or fails (raises `StepFailed`, or a cloud error). Steps keep what
they made in `job.state`, so running one twice finds its own work instead of
doing it again: duplicate deliveries and worker crashes are harmless.

Waiting never blocks a worker: `job_advance` returns a countdown and the task
re-schedules itself. Each scheduled message carries the job's current
`wake` token; a message whose token is stale (a duplicate, or one overtaken
by a newer schedule) is dropped, so a job never grows two polling chains.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal import cloud
from portal.models import Job

log = logging.getLogger(__name__)

# A worker holds a job this long at most per advance (longer than a task's hard limit).
LEASE = timedelta(seconds=240)

# The task that advances a job, by name: the engine never imports the wiring
# (portal.tasks) that defines it.
ADVANCE_TASK = "portal.tasks.job_advance_task"

# Metadata / property key tying a cloud object to the job that made it: a re-run
# step finds its own server or image by it instead of making a second one.
JOB_KEY = "portal_job"


def job_key(job: Job) -> str:
    """The value of JOB_KEY on what `job` creates."""
    return f"job-{job.pk}"


def busy_pks(rows, *, target: str) -> set[int]:
    """Pks of those mirror rows (servers or images) an unfinished job acts on, in one query.

    `target` is "server" or "image": which of the job's target ids to match.
    """
    by_key = {(row.site_id, row.openstack_id): row.pk for row in rows}
    if not by_key:
        return set()
    field_name = f"target_{target}_id"
    running = (
        Job.objects.exclude(status__in=Job.FINISHED)
        .filter(**{f"{field_name}__in": {key[1] for key in by_key}})
        .values_list("site_id", field_name)
    )
    return {by_key[key] for key in running if key in by_key}


@dataclass(frozen=True)
class Wait:
    """Call this step again later. `progress` is shown to the user meanwhile."""

    progress: str = ""


@dataclass(frozen=True)
class Skipped:
    """The step had nothing to do (e.g. no restart asked for); shown as skipped."""

    reason: str = ""


SKIPPED = Skipped()


class StepFailed(Exception):
    """A step cannot succeed; `str(exc)` is shown to the user."""


@dataclass(frozen=True)
class Step:
    name: str
    label: str
    run: Callable[[Job], Wait | Skipped | None]


@dataclass(frozen=True)
class JobKind:
    name: str
    steps: tuple[Step, ...]
    # Undo what the job did, after a failure (best effort, recorded on the job).
    cleanup: Callable[[Job], None] | None = None
    # Runs once the job ended (succeeded or failed), e.g. to send an email.
    on_finished: Callable[[Job], None] | None = None
    # What the job does, in words, for event logs and job pages.
    describe: Callable[[Job], str] = field(default=lambda job: job.kind)


_kinds: dict[str, JobKind] = {}


def job_kind_register(kind: JobKind) -> JobKind:
    _kinds[kind.name] = kind
    return kind


def job_kind_get(name: str) -> JobKind:
    return _kinds[name]


def _now():
    return timezone.now()


def _stamp(moment) -> str:
    return moment.isoformat()


def job_create(
    *,
    kind: str,
    actor=None,
    project=None,
    site=None,
    params: dict | None = None,
    target_server_id: str = "",
    target_image_id: str = "",
) -> Job:
    """Record a job and hand it to a worker once the surrounding transaction commits."""
    spec = job_kind_get(kind)
    job = Job.objects.create(
        kind=kind,
        actor=actor,
        project=project,
        site=site if site is not None else getattr(project, "site", None),
        params=params or {},
        target_server_id=target_server_id,
        target_image_id=target_image_id,
        steps=[
            {
                "name": s.name,
                "label": s.label,
                "status": "pending",
                "started_at": None,
                "finished_at": None,
                "detail": "",
            }
            for s in spec.steps
        ],  # fmt: skip
        state={"wake": uuid.uuid4().hex},
    )
    job_enqueue(job)
    return job


def _send(job_id: int, wake: str, countdown: float) -> None:
    current_app.send_task(ADVANCE_TASK, args=(job_id, wake), countdown=countdown)


def job_enqueue(job: Job, *, countdown: float = 0) -> None:
    """Hand the job to a worker once the surrounding transaction commits."""
    wake = job.state.get("wake", "")
    transaction.on_commit(lambda: _send(job.pk, wake, countdown))


def _claim(job_id: int) -> bool:
    now = _now()
    claimed = (
        Job.objects.filter(pk=job_id)
        .exclude(status__in=Job.FINISHED)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + LEASE, heartbeat_at=now)
    )
    return claimed == 1


def _backoff(polls: int) -> float:
    low, high = settings.JOB_POLL_MIN_SECONDS, settings.JOB_POLL_MAX_SECONDS
    return min(high, low * (1.5 ** min(polls, 20)))


def job_advance(job_id: int, wake: str | None = None) -> float | None:
    """Run the job's steps until one waits or the job ends.

    Returns the countdown after which to call again, or None when there is
    nothing more to do for this message (job ended, stale message, or another
    worker holds the job).
    """
    if not _claim(job_id):
        return None
    job = Job.objects.get(pk=job_id)
    if wake is not None and wake != job.state.get("wake"):
        _release(job)
        return None
    spec = job_kind_get(job.kind)
    if job.status == Job.Status.PENDING:
        job.status = Job.Status.RUNNING
        job.started_at = _now()

    while job.step_index < len(spec.steps):
        step = spec.steps[job.step_index]
        record = job.steps[job.step_index]
        if record["started_at"] is None:
            record["started_at"] = _stamp(_now())
            record["status"] = "running"
            job.polls = 0
        job.progress = step.label
        job.save()
        try:
            outcome = step.run(job)
        except cloud.Unavailable as exc:
            # The site hiccuped: try the same step again later, until the step times out.
            outcome = Wait(progress=f"{step.label} (site not answering, retrying)")
            record["detail"] = exc.message
            if _step_timed_out(record):
                return _fail(job, spec, f"{step.label}: {exc.message}")
        except (StepFailed, cloud.CloudError) as exc:
            message = exc.message if isinstance(exc, cloud.CloudError) else str(exc)
            return _fail(job, spec, f"{step.label}: {message}")
        except Exception as exc:  # a bug: record it on the job, never leave it running
            log.exception("job %s step %s crashed", job.pk, step.name)
            job.result["traceback"] = traceback.format_exc()
            return _fail(job, spec, f"{step.label}: internal error ({exc.__class__.__name__})")

        if isinstance(outcome, Wait):
            if _step_timed_out(record):
                return _fail(job, spec, f"{step.label}: timed out waiting for the cloud")
            job.polls += 1
            job.progress = outcome.progress or step.label
            job.state["wake"] = uuid.uuid4().hex
            countdown = _backoff(job.polls)
            _release(job)
            _send(job.pk, job.state["wake"], countdown)
            return countdown

        record["status"] = "skipped" if isinstance(outcome, Skipped) else "done"
        if isinstance(outcome, Skipped) and outcome.reason:
            record["detail"] = outcome.reason
        record["finished_at"] = _stamp(_now())
        job.step_index += 1

    return _end(job, spec, Job.Status.SUCCEEDED)


def _step_timed_out(record: dict) -> bool:
    started = record.get("started_at")
    if not started:
        return False
    elapsed = _now() - datetime.fromisoformat(started)
    return elapsed.total_seconds() > settings.JOB_STEP_TIMEOUT_SECONDS


def _release(job: Job) -> None:
    job.lease_until = None
    job.heartbeat_at = _now()
    job.save()


def _fail(job: Job, spec: JobKind, message: str) -> None:
    """Record the error, undo what the job did, and only then mark it failed,
    so whoever sees "failed" also sees what the cleanup did."""
    record = job.current_step
    if record is not None:
        record["status"] = "failed"
        record["finished_at"] = _stamp(_now())
        record["detail"] = message
    job.error = message
    job.progress = "cleaning up"
    job.save()
    if spec.cleanup is not None:
        try:
            spec.cleanup(job)
        except Exception as exc:
            log.exception("cleanup of job %s failed", job.pk)
            job.result["cleanup_error"] = str(exc)
    return _end(job, spec, Job.Status.FAILED)


def _end(job: Job, spec: JobKind, status: str) -> None:
    """The bookkeeping of every ending: status, time, lease, then `on_finished`."""
    job.status = status
    job.progress = "done" if status == Job.Status.SUCCEEDED else "failed"
    job.finished_at = _now()
    _release(job)
    if spec.on_finished is not None:
        try:
            spec.on_finished(job)
        except Exception:
            log.exception("on_finished of job %s failed", job.pk)
    return None


def jobs_recover_stuck() -> list[int]:
    """Re-enqueue unfinished jobs nobody has touched for JOB_STUCK_AFTER_SECONDS
    (a worker died, Redis lost the message). Safe: steps are idempotent."""
    cutoff = _now() - timedelta(seconds=settings.JOB_STUCK_AFTER_SECONDS)
    stuck = Job.objects.exclude(status__in=Job.FINISHED).filter(heartbeat_at__lt=cutoff)
    stuck = stuck.filter(Q(lease_until__isnull=True) | Q(lease_until__lt=_now()))
    recovered = []
    for job in stuck:
        job.state["wake"] = uuid.uuid4().hex
        job.lease_until = None
        job.heartbeat_at = _now()
        job.save(update_fields=["state", "lease_until", "heartbeat_at"])
        job_enqueue(job)
        recovered.append(job.pk)
    return recovered
