"""Advancing a job: claim it, run its steps until one waits or the job ends, and
turn what each step did (an outcome, a refusal, a site that does not answer, a
bug) into the job's bookkeeping, its wait policy and its ending.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext_noop

from portal import cloud, prepared
from portal.jobs import sending
from portal.jobs.kinds import (
    BadJobData,
    Done,
    Kind,
    Skipped,
    Step,
    StepContext,
    StepFailed,
    Wait,
    context_kept,
    headline_kept,
    job_kind_get,
    step_record,
)
from portal.jobs.outages import (
    LEASE,
    silence_wait,
    site_answered,
    site_display_name,
    site_silent,
)
from portal.jobs.parking import park_check, parked_on
from portal.models import Job
from portal.texts import say, span, text

log = logging.getLogger(__name__)


def _now():
    return timezone.now()


def _stamp(moment) -> str:
    return moment.isoformat()


def _claim_sql(quote, rows: Callable[[dict[str, str]], str]) -> str:
    """The claim's UPDATE for the job rows `rows(columns)` selects: a lease and a
    heartbeat, on the rows still unfinished and free. Its parameters, in order: see
    _claim_params."""
    names = ("id", "lease_until", "heartbeat_at", "status", "wake")
    column = {f.name: quote(f.column) for f in Job._meta.concrete_fields if f.name in names}
    finished = ", ".join(["%s"] * len(Job.FINISHED))
    return (
        f"UPDATE {quote(Job._meta.db_table)} SET {column['lease_until']} = %s, "
        f"{column['heartbeat_at']} = %s WHERE {rows(column)} "
        f"AND {column['status']} NOT IN ({finished}) "
        f"AND ({column['lease_until']} IS NULL OR {column['lease_until']} < %s)"
    )


def _claim_params(now: datetime, rows: list) -> list:
    stamp = prepared.db_value(Job, "lease_until", now)
    finished = [str(status) for status in Job.FINISHED]
    return [prepared.db_value(Job, "lease_until", now + LEASE), stamp, *rows, *finished, stamp]


def _claim(job_id: int, wake: str | None, now: datetime | None = None) -> datetime | None:
    """Hold the job, if it is unfinished, free, and `wake` is its current token: a
    message overtaken by a newer schedule (the watcher woke the job since) or a
    duplicate costs this one UPDATE that matches nothing. Returns the moment it was
    claimed (None: not claimed). Its SQL is built once (see portal.prepared): every
    run of every job starts here."""
    now = now or _now()

    def build(quote):
        return (
            _claim_sql(quote, lambda column: f"{column['id']} = %s"),
            _claim_sql(quote, lambda column: f"{column['id']} = %s AND {column['wake']} = %s"),
        )

    any_wake, this_wake = prepared.built("job_claim", build)
    if wake is None:
        claimed = prepared.run(any_wake, _claim_params(now, [job_id]))
    else:
        claimed = prepared.run(this_wake, _claim_params(now, [job_id, wake]))
    return now if claimed == 1 else None


def jobs_claim(jobs: list[tuple[int, str]]) -> tuple[datetime, set[int]]:
    """`_claim` for a batch's jobs (id, wake) at once: one UPDATE, not one per job
    (at 1,000 jobs the claims were a quarter of the engine's statements). Each job is
    held only with its own token, exactly as `_claim` holds it. Returns the moment
    and the ids claimed; a job the batch does not start in time must be let go
    (jobs_unclaim) before it is handed on."""
    now = _now()
    if not jobs:
        return now, set()
    if not connection.features.can_return_columns_from_insert:
        # SQLite before 3.35 has no RETURNING (PostgreSQL and Debian 12's SQLite do):
        # one claim per job, with the same outcome.
        return now, {job_id for job_id, wake in jobs if _claim(job_id, wake, now) is not None}

    def build(quote):
        ids = ", ".join(["%s"] * len(jobs))
        pairs = ", ".join(["(%s, %s)"] * len(jobs))
        # The ids alone first: SQLite finds rows by a list of row values only by
        # reading the whole table (every job the portal ever ran).
        rows = _claim_sql(
            quote,
            lambda column: (
                f"{column['id']} IN ({ids}) AND ({column['id']}, {column['wake']}) IN ({pairs})"
            ),
        )
        return f"{rows} RETURNING {quote(Job._meta.pk.column)}"

    sql = prepared.built(("jobs_claim", len(jobs)), build)
    ids = [job_id for job_id, _ in jobs]
    pairs = [value for job_id, wake in jobs for value in (job_id, wake)]
    return now, {row[0] for row in prepared.fetch(sql, _claim_params(now, [*ids, *pairs]))}


def jobs_unclaim(job_ids: list[int], claimed_at: datetime) -> None:
    """Let go of jobs that `jobs_claim` held at `claimed_at` and no run started, so
    that the message they are handed on in can claim them. A job whose lease has
    run out and was taken since is not touched: only the lease of that claim goes."""
    if not job_ids:
        return
    Job.objects.filter(pk__in=job_ids, lease_until=claimed_at + LEASE).update(lease_until=None)


# Reads that a batch of jobs shares (see jobs_preload), registered by the apps (the
# engine knows no mirror model): each puts what a job's steps read first into the
# job's `batch_reads` (its run's step cache), for the jobs it knows.
BATCH_READS: list[Callable[[list[Job]], None]] = []


def batch_reads_register(read: Callable[[list[Job]], None]) -> None:
    BATCH_READS.append(read)


def jobs_preload(jobs: list[tuple[int, str | None]]) -> dict[int, Job]:
    """The rows of a batch of jobs (id, wake), with what their steps read first, in
    one query each instead of one per job. Only a row whose wake token is the
    message's: every write to a job that no worker holds gives it a new token (a
    wake-up, the sweep), so a claim with that token proves the row unchanged since
    (see job_advance). Reads of the mirror may be as old as the batch (seconds): a
    job parks on what it read, and parking compares that with the mirror's now."""
    wanted = {job_id: wake for job_id, wake in jobs if wake}
    if len(wanted) < 2:
        return {}
    rows = Job.objects.select_related("site", "actor", "project").filter(pk__in=list(wanted))
    rows = rows.order_by()  # by id below: the model's order would only cost a sort
    found = [row for row in rows if row.wake == wanted[row.pk]]
    # One user object per actor, as in a request: what the steps read about their
    # actor once per object (its project roles, see portal.access) is read once.
    actors: dict = {}
    for row in found:
        if row.actor_id is not None:
            row.actor = actors.setdefault(row.actor_id, row.actor)
    for read in BATCH_READS:
        read(found)
    return {row.pk: row for row in found}


def _backoff(polls: int) -> float:
    low, high = settings.JOB_POLL_MIN_SECONDS, settings.JOB_POLL_MAX_SECONDS
    return min(high, low * (1.5 ** min(polls, 20)))


def _observed_hash(observed) -> str:
    text = json.dumps(observed, sort_keys=True, default=str)
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


def _no_progress_for(record: dict, outcome: Wait) -> float:
    """Seconds the step has waited without the cloud changing what it shows."""
    now = _now()
    if outcome.more:
        record["progress_at"] = _stamp(now)  # it did work this run
    elif outcome.observed is not None:
        seen = _observed_hash(outcome.observed)
        if record.get("observed") != seen:
            record["observed"] = seen
            record["progress_at"] = _stamp(now)
    since = record.get("progress_at") or record["started_at"]
    return (now - datetime.fromisoformat(since)).total_seconds()


@dataclass
class _Run:
    """One worker's advance of one job: the row, its kind, and what its steps see."""

    job: Job
    kind: type[Kind]
    context: StepContext
    began: float = field(default_factory=time.monotonic)
    ran: int = 0
    saved_state: str = ""

    def sync(self) -> None:
        """Bring the row up to date with the context: its state, its image, and the
        line the kind's state puts first in the error."""
        context_kept(self.job, self.context)
        headline_kept(self.job, self.kind.error_headline(self.context.state))

    def state_text(self) -> str:
        self.sync()
        return _state_text(self.job)


@dataclass(frozen=True)
class _Ran:
    """What running a step came to: its outcome, or why it failed; `unavailable`:
    the site did not answer (True), or is known silent and was not asked ("silent")."""

    outcome: Wait | Skipped | Done | None = None
    failed: str = ""
    unavailable: bool | str = False


def job_advance(
    job_id: int,
    wake: str | None = None,
    preloaded: Job | None = None,
    claimed_at: datetime | None = None,
) -> float | None:
    """Run the job's steps until one waits or the job ends.

    Returns the countdown after which to call again, or None when there is
    nothing more to do for this message (job ended, stale message, or another
    worker holds the job). `preloaded`: the row as jobs_preload read it, used when
    the claim (by the same wake token) proves it unchanged. `claimed_at`: the job
    is held already, by its batch's claim (jobs_claim) at that moment.
    """
    if claimed_at is None:
        claimed_at = _claim(job_id, wake)
    if claimed_at is None:
        return None
    if preloaded is not None and (wake is None or preloaded.wake != wake):
        preloaded = None
    run = _begin(job_id, preloaded, claimed_at)
    if run is None:
        return None
    job = run.job
    while job.step_index < len(job.steps):
        record = job.steps[job.step_index]
        step = run.kind.step_for(record)
        _step_starts(job, step, record)
        if run.ran and time.monotonic() - run.began > settings.JOB_RUN_SECONDS:
            # This run did its share: the next step starts in a new one, so no run
            # comes near the task's time limit and other jobs get the worker.
            run.sync()
            return _schedule(job, 0.0)
        countdown = _outcome_kept(run, step, record, _run_step(run, step, record))
        if countdown is not None:
            return countdown
    run.sync()
    ended = Job.Status.FAILED if job.status == Job.Status.CLEANING_UP else Job.Status.SUCCEEDED
    return _end(job, run.kind, ended)


def _begin(job_id: int, preloaded: Job | None, claimed_at: datetime) -> _Run | None:
    """Load the claimed job and what its steps see. A job whose stored params or
    state do not fit its kind ends failed with that said (None): its steps, and its
    undo, could only trip over it."""
    if preloaded is not None:
        job = preloaded
        job.lease_until, job.heartbeat_at = claimed_at + LEASE, claimed_at  # as claimed
    else:
        job = Job.objects.select_related("site", "actor", "project").get(pk=job_id)
    kind = job_kind_get(job.kind)
    if job.status == Job.Status.PENDING:
        job.status = Job.Status.RUNNING
        job.started_at = _now()
    try:
        context = kind.context(job)
    except BadJobData as exc:
        log.error("job %s cannot go on: %s", job.pk, exc)
        job.error = say(gettext_noop("This job cannot go on: %(problem)s."), problem=str(exc))
        for record in job.steps[job.step_index :]:
            record["status"] = "not run"
        job.step_index = len(job.steps)
        _end(job, kind, Job.Status.FAILED)
        return None
    context.cache.update(job.__dict__.pop("batch_reads", {}))
    run = _Run(job=job, kind=kind, context=context)
    run.saved_state = run.state_text()
    return run


def _step_starts(job: Job, step: Step, record: dict) -> None:
    """Bookkeeping as a step comes up: its first run starts its clock."""
    if record["started_at"] is None:
        record["started_at"] = _stamp(_now())
        record["status"] = "running"
        job.polls = 0
        job.state.pop("last_unavailable", None)
    job.progress = step.label


def _run_step(run: _Run, step: Step, record: dict) -> _Ran:
    """Run the step once and turn what happened (an outcome, a refusal, a site
    that does not answer, a bug) into a _Ran."""
    job = run.job
    silent = silence_wait(job)
    if silent is not None:
        return _Ran(outcome=silent, unavailable="silent")
    record["runs"] = record.get("runs", 0) + 1
    run.ran += 1
    # What earlier steps of this run recorded (an image id, "stopped by the
    # portal") is saved before the next step that acts on the cloud; the rest
    # of the bookkeeping waits for the end of the run. A crash re-runs a step,
    # which is safe; it never forgets what a finished step did before an action.
    # A step that checkpoints before it acts saves all that itself.
    if step.acts and not step.checkpoints and run.state_text() != run.saved_state:
        job.save()
        run.saved_state = _state_text(job)
    step_began, state_before = time.monotonic(), run.state_text()
    try:
        outcome = step.run(run.context)
    except SoftTimeLimitExceeded:
        # The run outlived its time: the site answers too slowly. Progress only
        # if the step recorded some (a batch that got half through).
        moved = run.state_text() != state_before
        job.state["last_unavailable"] = gettext_noop("the site took too long to answer")
        slow = gettext_noop("%(step)s (the site answers slowly, retrying)")
        outcome = Wait(progress=say(slow, step=text(step.label)), more=moved)
        return _Ran(outcome=outcome, unavailable=not moved)
    except cloud.Unavailable as exc:
        # The site hiccuped, or does not answer at all: the same step again later.
        job.state["last_unavailable"] = exc.message
        if exc.silent and job.site_id:
            site_silent(job.site_id)
        unanswered = gettext_noop("%(step)s (%(site)s not answering, retrying)")
        progress = say(unanswered, step=text(step.label), site=site_display_name(job))
        outcome = Wait(progress=progress)

        return _Ran(outcome=outcome, unavailable=True)
    except (StepFailed, cloud.CloudError) as exc:
        site_answered(job, step_began)
        if isinstance(exc, StepFailed):
            job.result.update(exc.result)
        message = exc.message if isinstance(exc, cloud.CloudError) else str(exc)
        return _Ran(failed=_step_says(step.label, message))
    except Exception as exc:  # a bug: record it on the job, never leave it running
        log.exception("job %s step %s crashed", job.pk, step.name)
        job.result["traceback"] = traceback.format_exc()
        internal = say(gettext_noop("internal error (%(name)s)"), name=exc.__class__.__name__)
        return _Ran(failed=_step_says(step.label, internal))
    site_answered(job, step_began)
    return _Ran(outcome=outcome)


def _outcome_kept(run: _Run, step: Step, record: dict, ran: _Ran) -> float | None:
    """Record what the step came to. Returns the countdown when this run stops here
    (the step waits), None when the next step (or the undo) goes on now."""
    job, outcome = run.job, ran.outcome
    if ran.failed:
        _step_failed(job, run.kind, record, ran.failed)
        return None
    if ran.unavailable:
        assert isinstance(outcome, Wait)  # _run_step waits on every unanswered call
        run.sync()
        return _outage_wait(job, run.kind, record, outcome, silent=ran.unavailable == "silent")
    job.state.pop("outage_since", None)
    job.state.pop("outages", None)
    if isinstance(outcome, Wait):
        return _wait_kept(run, step, record, outcome)
    if isinstance(outcome, (Skipped, Done)):
        job.result.update(outcome.result)
    record["status"] = "skipped" if isinstance(outcome, Skipped) else "done"
    if isinstance(outcome, Skipped) and outcome.reason:
        record["detail"] = outcome.reason
    elif isinstance(outcome, Done) and outcome.detail:
        record["detail"] = outcome.detail
    record["finished_at"] = _stamp(_now())
    job.step_index += 1
    return None


def _wait_kept(run: _Run, step: Step, record: dict, outcome: Wait) -> float | None:
    """The wait policy: fail a wait past its budget, or one the cloud shows no
    progress on for JOB_NO_PROGRESS_SECONDS; else schedule the next look (at once
    for more of a batch, a fallback poll for a watched wait, else a backoff)."""
    job = run.job
    stalled = _no_progress_for(record, outcome)
    if outcome.budget is not None:
        waited = (_now() - datetime.fromisoformat(record["started_at"])).total_seconds()
        if waited > outcome.budget:
            _step_failed(job, run.kind, record, _step_says(step.label, outcome.over_budget))
            return None
    elif stalled > settings.JOB_NO_PROGRESS_SECONDS:
        message = _no_progress(job, settings.JOB_NO_PROGRESS_SECONDS)
        _step_failed(job, run.kind, record, _step_says(step.label, message))
        return None
    job.waits_for = outcome.watch
    # What it parks on, as its step saw it (the row the step read): see parking.
    job.parked_on = parked_on(
        outcome.watch,
        run.context.cache.get(outcome.watch),
        site_id=job.site_id,
        target=job.target_image_id if outcome.watch == "image" else job.target_server_id,
    )
    if outcome.more:
        countdown = 0.0
    elif outcome.watch:
        countdown = settings.JOB_WATCHED_POLL_SECONDS
    else:
        countdown = _backoff(job.polls)
    job.polls += 1
    job.progress = outcome.progress or step.label
    run.sync()
    return _schedule(job, countdown, parked=bool(outcome.watch))


def _step_says(label: str, message: str) -> str:
    """A failed step's line: its label, then what went wrong (both stored texts)."""
    return say(gettext_noop("%(step)s: %(message)s"), step=text(label), message=text(message))


def _no_progress(job: Job, limit: float, *, undo: bool = False) -> str:
    """Why a wait gave up: no progress (an undo: no answer) for `limit` seconds,
    with the site's last answer (an outage's message, as the gateway wrote it)."""
    if undo:
        message = say(
            gettext_noop("%(site)s did not answer for %(limit)s"),
            site=site_display_name(job),
            limit=span(limit),
        )
    else:
        message = say(gettext_noop("the cloud showed no progress for %(limit)s"), limit=span(limit))
    if job.state.get("last_unavailable"):
        return say(
            gettext_noop("%(message)s (last answer: %(answer)s)"),
            message=text(message),
            answer=text(job.state["last_unavailable"]),
        )
    return message


def _outage_wait(
    job: Job, kind, record: dict, outcome: Wait, *, silent: bool = False
) -> float | None:
    """The step could not reach its site: try again with a backoff, never at once.

    A forward step gives up after JOB_NO_PROGRESS_SECONDS, as for any wait without
    progress. An undo step keeps trying for JOB_UNDO_OUTAGE_SECONDS (hours): it
    puts back what the job changed, e.g. starts the instance the job stopped, and
    a site down for an hour must not leave that undone. Returns the countdown, or
    None when the step failed."""
    now = _now()
    began = datetime.fromisoformat(job.state.setdefault("outage_since", _stamp(now)))
    undo = record.get("phase") == "undo"
    limit = settings.JOB_UNDO_OUTAGE_SECONDS if undo else settings.JOB_NO_PROGRESS_SECONDS
    since_progress = datetime.fromisoformat(record.get("progress_at") or record["started_at"])
    waited = (now - (began if undo else max(began, since_progress))).total_seconds()
    if waited > limit:
        message = _step_says(record["label"], _no_progress(job, limit, undo=undo))
        _step_failed(job, kind, record, message)
        return None
    job.state["outages"] = job.state.get("outages", 0) + 1
    high = settings.JOB_UNDO_OUTAGE_BACKOFF_SECONDS if undo else settings.JOB_OUTAGE_BACKOFF_SECONDS
    countdown = min(high, settings.JOB_POLL_MIN_SECONDS * (2 ** min(job.state["outages"], 16)))
    if silent:
        # The probe finds out when the site answers and wakes the job then: until
        # that, looking again on a short backoff would only cost messages.
        countdown = high
    # Parked: the recovery sweep sends it when the backoff is over, and the first
    # answer from the site (a probe, a sync, the watcher) wakes it before that.
    job.waits_for = "site"
    job.parked_on = ""
    job.polls += 1
    job.progress = outcome.progress or record["label"]
    return _schedule(job, countdown, parked=True)


def _state_text(job: Job) -> str:
    return json.dumps(job.state, sort_keys=True, default=str)


def _schedule(job: Job, countdown: float, *, parked: bool = False) -> float:
    """Release the job and send the next message, with a fresh wake token.

    A parked job (its step waits for a change the status watcher reports) gets no
    message: the watcher wakes it, or, once `due_at` has passed, the recovery sweep
    does (the fallback poll). Hundreds of waiting jobs then leave no timers in the
    workers and no stale messages behind each wake.
    """
    job.wake = uuid.uuid4().hex
    job.due_at = _now() + timedelta(seconds=countdown)
    _release(job)
    if not parked:
        sending.send_for(job.kind, job.pk, job.wake, countdown)
    elif park_check(job):  # the mirror moved before anyone could see it parked
        return 0.0
    return countdown


# What no run changes: set when the job was recorded, or by others while no worker
# holds the job (the sweep's resent_at). A release leaves them as they are: on
# SQLite an UPDATE rewrites the index entries of every column it sets, and these
# carry eight of the row's indexes; and a row read ahead for a batch must not
# write back a resent_at older than the sweep's.
_KEPT_BY_RUNS = frozenset({
    "kind", "actor", "project", "site", "target_server_id", "params", "created_at",
    "idempotency_key", "marker", "resent_at", "name_key",
})  # fmt: skip
_RELEASED_FIELDS = [
    field.name
    for field in Job._meta.concrete_fields
    if not field.primary_key and field.name not in _KEPT_BY_RUNS
]


def _release(job: Job) -> None:
    """Save what a run changes (its SQL built once, see portal.prepared), free."""
    job.lease_until = None
    job.heartbeat_at = _now()
    prepared.row_update(job, _RELEASED_FIELDS)


def _step_failed(job: Job, kind, record: dict, message: str) -> None:
    """Record a failed step. A forward step's failure starts the undo steps; an
    undo step's failure is noted and the next undo step runs anyway."""
    record["status"] = "failed"
    record["finished_at"] = _stamp(_now())
    record["detail"] = message
    job.step_index += 1
    if record.get("phase") == "undo":
        job.result.setdefault("cleanup_problems", []).append(message)
        return
    job.error = message
    job.status = Job.Status.CLEANING_UP
    for skipped in job.steps[job.step_index :]:
        skipped["status"] = "not run"
    job.step_index = len(job.steps)
    job.steps.extend(step_record(step, phase="undo") for step in kind.undo_plan(job))
    job.progress = "cleaning up"


def _end(job: Job, kind, status: str) -> None:
    """The bookkeeping of every ending: status, time, lease, then `on_finished`."""
    job.status = status
    job.progress = "done" if status == Job.Status.SUCCEEDED else "failed"
    job.finished_at = _now()
    _release(job)
    try:
        kind.on_finished(job)
    except Exception:
        log.exception("on_finished of job %s failed", job.pk)
    return None


def undo_details(job: Job) -> list[str]:
    """What the undo steps did, in words, for summaries and emails."""
    return [
        record["detail"]
        for record in job.steps
        if record.get("phase") == "undo" and record["status"] == "done" and record["detail"]
    ]
