"""The job engine: a Job row is the truth, Celery only moves it forward.

A job kind is a `Kind` class: its typed `Params` and `State` (dataclasses, kept
in the row's JSON fields and checked on load), and its ordered steps, each
naming its own undo (a saga). A step is a function of a `StepContext` (params,
state, site, actor, project, `checkpoint()`) that either finishes (returns
None, `Done` or `Skipped`), asks to be called again (returns `Wait`), or fails
(raises `StepFailed`, or a cloud error). Steps keep what they made in their
state, so running one twice finds its own work instead of doing it again:
duplicate deliveries and worker crashes are harmless. The engine alone writes
the job's status, error and result: a step says what it has to say in what it
returns (`Done(detail, result=...)`), and a kind's `error_headline(state)` is
kept as the error's first line.

When a forward step fails, the job records the error, appends the undo of each
step that ran (the failed one too: it may have done part of its work; not a
skipped one), the latest first, and turns "cleaning up". Undo steps are ordinary
steps: they may wait, they are idempotent, and a crash resumes them, not the
failed step. "Failed" is written only when the last undo step has ended, so
whoever sees "failed" also sees what the cleanup did. A failing undo step is
recorded and the next one still runs.

A whole kind, in an app's jobs.py (imported by its AppConfig.ready); the gateway
has no `server_reboot` yet, it stands for any call:

    @dataclass
    class RebootParams:
        hard: bool = False

    @dataclass
    class RebootState:
        asked: bool = False

    def step_reboot(ctx: StepContext) -> Done:
        ctx.state.asked = True
        ctx.checkpoint()  # saved before the request: a re-run knows it may have gone
        cloud.server_reboot(ctx.site.name, server_id=ctx.target_server_id, hard=ctx.params.hard)
        return Done("reboot asked", result={"rebooted": True})

    def undo_reboot(ctx: StepContext) -> Skipped:
        return Skipped("a reboot needs no undo")

    class ServerReboot(Kind):
        name = "server.reboot"  # the only place the name is written
        Params = RebootParams
        State = RebootState
        steps = (Step("reboot", "Reboot requested", step_reboot, undo=Step(
            "undo_reboot", "Nothing to undo", undo_reboot)),)

        @classmethod
        def title(cls, params: RebootParams) -> str:
            return "Reboot instance"

    # a service: ServerReboot.create(actor=user, project=server.project, site=server.site,
    #     target_server_id=server.openstack_id, params=ServerReboot.Params(hard=True))

Waiting never blocks a worker: `job_advance` returns a countdown and the task
re-schedules itself. No step does unbounded work in one run: a step that did a
batch returns `Wait(more=True)` to be called again at once, and Celery's soft
time limit means "continue later", never an error. A wait fails only when the
cloud has shown no progress (`Wait.observed` unchanged) for
JOB_NO_PROGRESS_SECONDS, so a 500 GB upload that advances is never cut short.

Each scheduled message carries the job's current `wake` token; a message whose
token is stale (a duplicate, or one overtaken by a newer schedule) is dropped,
so a job never grows two polling chains. A worker holds a job under a short
lease; a job whose lease ran out and whose next run is overdue (its worker
died) is handed to a worker again by `jobs_recover_stuck` within seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import ClassVar, cast

from celery import current_app
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from portal import cloud
from portal.errors import ActionRefused
from portal.mirror.authorship import authorship_record
from portal.models import Job, Site

log = logging.getLogger(__name__)

# A worker holds a job this long, renewed every LEASE_RENEW while its advance runs
# (see lease_kept): a job whose worker died is picked up again within seconds, and
# a live worker whose step waits OPENSTACK_TIMEOUT for a hung site keeps it.
LEASE = timedelta(seconds=10)
LEASE_RENEW = 3.0

# The task that advances a job, by name: the engine never imports the wiring
# (portal.tasks) that defines it.
ADVANCE_TASK = "portal.tasks.job_advance_task"

# Metadata / property key tying a cloud object to the job that made it: a re-run
# step finds its own server or image by it instead of making a second one.
JOB_KEY = "portal_job"


def job_key(job: Job) -> str:
    """The value of JOB_KEY on what `job` creates: this installation, the job's pk
    and its random token. The pk alone is not unique on a cloud: a second portal
    (a staging copy) counts from 1 too, and after a database restore this one
    hands out again the pks of jobs whose servers still carry them. A stranger's
    marker never matches, so no step adopts what it did not make."""
    if not job.marker:  # a job recorded before markers had a token
        return f"job-{job.pk}"
    return f"{settings.PORTAL_INSTALLATION_ID}-job-{job.pk}-{job.marker}"


def made_by_job(
    job: Job, found: cloud.CloudServer | cloud.CloudImage, *, asked_at: str | None
) -> bool:
    """Whether `found` is provably what `job` asked the cloud for: a re-run of a cut-off
    create may adopt it, and the job's cleanup may delete it, only then.

    The marker alone proves nothing: anyone with API access in the project may
    create a server with a seat's name and `portal_job=<key>` (job ids are in the
    portal's URLs, and the marker is on the job's other servers). So, besides the
    marker (job_key: this installation, this job, its token):
    - it is in the job's project (a server's project, an image's owner);
    - a server was created by the portal's own service account on the site: Nova
      sets `user_id` from the token, and no one else can make it the portal's. Glance
      records no creator of an image; a snapshot must be of the job's own server
      (`instance_uuid`, which Nova sets; see snapshots.jobs._find_own_image);
    - it was created at or after the job asked (`asked_at`, saved before the request,
      in the portal's clock; without one, the job's start): compared in the cloud's
      clock, less JOB_ADOPT_SKEW_SECONDS for an offset known only roughly.
    """
    metadata = found.metadata if isinstance(found, cloud.CloudServer) else found.properties
    if job.project is None or metadata.get(JOB_KEY) != job_key(job):
        return False
    if isinstance(found, cloud.CloudServer):
        if found.project_id != job.project.openstack_id:
            return False
        if not found.user_id or found.user_id != cloud.own_user_id(job.site.name):
            return False
    elif found.owner != job.project.openstack_id:
        return False
    if found.created_at is None:
        return False
    return found.created_at >= _asked_in_cloud_time(job, asked_at)


def _asked_in_cloud_time(job: Job, asked_at: str | None) -> datetime:
    """The earliest creation time, in the cloud's clock, of what the job made."""
    asked = datetime.fromisoformat(asked_at) if asked_at else (job.started_at or job.created_at)
    offset = cloud.clock_offset(job.site.name)
    if offset is None:  # this process has not listed there yet: the last sync's reading
        offset = job.site.clock_offset_seconds
    return asked + timedelta(seconds=offset - settings.JOB_ADOPT_SKEW_SECONDS)


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
    """Call this step again later. `progress` is shown to the user meanwhile.

    `observed`: what the step saw of the cloud (status, size, task_state,
    updated_at...), JSON-serialisable. While it keeps changing the step is
    making progress; a step that gives none is judged by its age instead.
    `more`: the step did a bounded batch and has more to do: call again at once.
    `watch`: "server" or "image": the step waits for the job's target server (or
    image) to change, read from a mirror the site's status watcher keeps current;
    the watcher wakes the job when that object's status changes, so the next poll,
    only a fallback, is JOB_WATCHED_POLL_SECONDS away instead of the backoff.
    `budget`: for a wait the cloud shows no progress on although it is working
    (Nova uploading a snapshot: Glance shows nothing until the end), the seconds
    the step may wait in all, instead of the no-progress limit; `over_budget` is
    the error then.
    """

    progress: str = ""
    observed: object = None
    more: bool = False
    watch: str = ""
    budget: float | None = None
    over_budget: str = ""


@dataclass(frozen=True)
class Skipped:
    """The step had nothing to do (e.g. no restart asked for); shown as skipped.
    `result`: what the step has to say to the job's result (the engine stores it)."""

    reason: str = ""
    result: dict = field(default_factory=dict, compare=False)


SKIPPED = Skipped()


@dataclass(frozen=True)
class Done:
    """The step finished; `detail` says what it did (shown on the job page), and
    `result` what goes into the job's result (the engine stores it)."""

    detail: str = ""
    result: dict = field(default_factory=dict, compare=False)


class StepFailed(Exception):
    """A step cannot succeed; `str(exc)` is shown to the user. `result`: what the
    job's result should say all the same (e.g. a launch's per-seat summary)."""

    def __init__(self, message: str = "", *, result: dict | None = None):
        super().__init__(message)
        self.result = result or {}


@dataclass(frozen=True)
class Step:
    name: str
    label: str
    run: Callable[..., Wait | Skipped | Done | None]
    # False for a step that only reads (waits, summaries): it changes nothing in the
    # cloud, so what earlier steps recorded need not be saved before it runs.
    acts: bool = True
    # What puts back what this step did, when it or a later step fails: one step,
    # or several in order (a compensation may wait, e.g. start, then wait for ACTIVE).
    undo: Step | tuple[Step, ...] = ()

    @property
    def undo_steps(self) -> tuple[Step, ...]:
        return self.undo if isinstance(self.undo, tuple) else (self.undo,)


class BadJobData(Exception):
    """A job's stored params or state do not fit its kind (a key unknown or missing)."""


# The engine's own bookkeeping in Job.state, beside a kind's State (see _outage_wait).
ENGINE_STATE_KEYS = ("outage_since", "outages", "last_unavailable", "error_headline")
# Keys earlier versions wrote to Job.state that nothing reads any more: an
# unfinished job that carries one still loads (they are dropped).
RETIRED_STATE_KEYS = ("wake", "undo_start_attempts")


def _load(cls: type, data: dict, *, what: str, kind: str):
    """`data` (a JSON field) as the dataclass `cls`: a clear error for a key it does
    not know or one it lacks, instead of a KeyError deep inside a step."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    missing = sorted(
        name for name, f in known.items()
        if name not in data and f.default is MISSING and f.default_factory is MISSING
    )  # fmt: skip
    if unknown or missing:
        problems = [f"unknown {', '.join(unknown)}"] if unknown else []
        problems += [f"missing {', '.join(missing)}"] if missing else []
        raise BadJobData(f"its stored {what} do not fit the kind {kind} ({'; '.join(problems)})")
    return cls(**data)


@dataclass
class NoParams:
    """Params of a kind that takes none."""


@dataclass
class NoState:
    """State of a kind whose steps record nothing."""


class StepContext:
    """What a step of a `Kind` sees of its job: the typed params and state, where
    and for whom it acts, and `checkpoint()` to save the state before an action
    whose outcome a re-run must find. The job's status, error and result are the
    engine's: a step says what it has to say by what it returns."""

    def __init__(self, job: Job, params, state):
        self._job = job
        self.params = params
        self.state = state
        # A kind that acts on the cloud acts at one site; one that does not never reads it.
        self.site = cast(Site, job.site)
        self.actor = job.actor
        self.project = job.project
        self.job_id: int = job.pk
        self.target_server_id: str = job.target_server_id
        # A step that learns its image (a snapshot's) sets it; the engine stores it.
        self.target_image_id: str = job.target_image_id
        self.started_at: datetime = job.started_at or job.created_at
        # Reads one run reuses until the job acts again (see instances.jobs.server_of).
        self.cache: dict = {}

    @property
    def key(self) -> str:
        """The job's marker on what it creates (see job_key)."""
        return job_key(self._job)

    def made_by_me(self, found, *, asked_at: str | None) -> bool:
        """Whether `found` is provably what this job asked for (see made_by_job)."""
        return made_by_job(self._job, found, asked_at=asked_at)

    def authorship_record(self, openstack_id: str) -> None:
        """Record that the job's actor made this object through this job."""
        authorship_record(site=self.site, openstack_id=openstack_id, user=self.actor, job=self._job)

    def checkpoint(self) -> None:
        """Save the state now: what a step records before an action (it asked for
        an image) must survive a crash during that action."""
        _kept(self._job, self)
        self._job.save(update_fields=["state"])


def step_run_once(run: Callable, job: Job):
    """Run one step function on `job` outside the engine (a test, a shell), as the
    engine would: what the step records lands in the job's fields (not saved), and
    its result and the kind's error headline are applied. Reads are kept between
    calls on the same job object (`job.step_cache`), like one run of the engine."""
    kind = job_kind_get(job.kind)
    context = kind.context(job)
    context.cache = job.__dict__.setdefault("step_cache", {})
    try:
        outcome = run(context)
    except StepFailed as exc:
        job.result.update(exc.result)
        raise
    finally:
        _kept(job, context)
        _headline_kept(job, kind.error_headline(context.state))
    if isinstance(outcome, (Done, Skipped)):
        job.result.update(outcome.result)
    return outcome


def _kept(job: Job, context: StepContext) -> None:
    """Copy what the steps recorded in `context` into the job row (not saved)."""
    engine = {k: job.state[k] for k in ENGINE_STATE_KEYS if k in job.state}
    job.state = {**_stored(context.state), **engine}
    job.target_image_id = context.target_image_id


def _stored(fields_of) -> dict:
    """Params or state as the job row keeps them. A field left None is left out, as
    before they were typed: queries on the JSON field ask for a key's presence (a
    launch's `retry_of`), and pages for a key (`"image_id" in job.state`)."""
    return {key: value for key, value in asdict(fields_of).items() if value is not None}


class Kind:
    """A job kind: subclass it, name it, give it `Params`, `State` and `steps`; it is
    registered under `name`, and `create` records a job of it. See the module's
    docstring for a whole example."""

    name: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    State: ClassVar[type] = NoState
    steps: ClassVar[tuple[Step, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            _kinds[cls.name] = cls

    @classmethod
    def create(
        cls, *, params=None, actor=None, project=None, site=None,
        target_server_id: str = "", target_image_id: str = "", idempotency_key: str = "",
    ) -> Job:  # fmt: skip
        """Record a job of this kind (see job_create)."""
        return job_create(
            kind=cls.name, actor=actor, project=project, site=site,
            params=_stored(params if params is not None else cls.Params()),
            target_server_id=target_server_id, target_image_id=target_image_id,
            idempotency_key=idempotency_key,
        )  # fmt: skip

    @classmethod
    def create_many(cls, *, actor, targets: list[dict], idempotency_key: str = "") -> list[Job]:
        """One job per target, in one INSERT (see jobs_create); each target's
        "params" is a `Params`."""
        rows = [{**target, "params": _stored(target["params"])} for target in targets]
        return jobs_create(
            kind=cls.name, actor=actor, targets=rows, idempotency_key=idempotency_key
        )

    # What the job does, in words, for event logs and job pages.
    @classmethod
    def title(cls, params) -> str:
        return cls.name

    @classmethod
    def describe(cls, job: Job) -> str:
        try:
            return cls.title(_load(cls.Params, job.params, what="params", kind=cls.name))
        except BadJobData:
            return cls.name

    @classmethod
    def error_headline(cls, state) -> str:
        """A line the job's error starts with while the state says so (e.g. "the
        instance is left stopped"): the engine keeps it first, and drops it again."""
        return ""

    @classmethod
    def on_finished(cls, job: Job) -> None:
        """Runs once the job ended (succeeded or failed), e.g. to send an email."""

    # --- the engine's side ---

    @classmethod
    def context(cls, job: Job) -> StepContext:
        ignored = ENGINE_STATE_KEYS + RETIRED_STATE_KEYS
        state = {k: v for k, v in job.state.items() if k not in ignored}
        return StepContext(
            job,
            _load(cls.Params, job.params, what="params", kind=cls.name),
            _load(cls.State, state, what="state", kind=cls.name),
        )

    @classmethod
    def step_for(cls, record: dict) -> Step:
        steps = cls.steps
        if record.get("phase") == "undo":
            steps = tuple(undo for step in cls.steps for undo in step.undo_steps)
        return next(step for step in steps if step.name == record["name"])

    @classmethod
    def undo_plan(cls, job: Job) -> list[Step]:
        """The undo of each forward step that ran (done, or the one that failed: it
        may have done part of its work), the latest first. A skipped step did
        nothing, so it has nothing to undo; a step never reached neither."""
        ran = [
            cls.step_for(record) for record in job.steps
            if record.get("phase") != "undo" and record["status"] in ("done", "failed")
        ]  # fmt: skip
        return [undo for step in reversed(ran) for undo in step.undo_steps]


# Every kind, by name: a `Kind` subclass with a name registers itself here.
_kinds: dict[str, type[Kind]] = {}


def job_kind_get(name: str) -> type[Kind]:
    return _kinds[name]


def _step_record(step: Step, *, phase: str) -> dict:
    return {
        "name": step.name,
        "label": step.label,
        "phase": phase,
        "status": "pending",
        "started_at": None,
        "finished_at": None,
        "detail": "",
    }


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
    idempotency_key: str = "",
) -> Job:
    """Record a job and hand it to a worker once the surrounding transaction commits.

    With an `idempotency_key` (from the form that asks), a second request with
    the same key returns the first job, even when both arrive at once.
    """
    target = {"project": project, "site": site, "params": params or {},
              "target_server_id": target_server_id, "target_image_id": target_image_id}  # fmt: skip
    return jobs_create(kind=kind, actor=actor, targets=[target], idempotency_key=idempotency_key)[0]


def jobs_create(*, kind: str, actor, targets: list[dict], idempotency_key: str = "") -> list[Job]:
    """Record one job of `kind` per target (a dict of project, site, params,
    target_server_id, target_image_id) in one INSERT, then hand them all to the
    workers when the transaction commits: a workshop's 200 snapshots cost one
    INSERT, not 200 round trips. The first job carries the `idempotency_key`: a
    repeated request gets that first job alone, [job]."""
    spec = job_kind_get(kind)
    steps = [_step_record(step, phase="forward") for step in spec.steps]
    for target in targets:  # its params must fit the kind now, not in a worker later
        _load(spec.Params, target.get("params") or {}, what="params", kind=kind)
    now = _now()
    jobs = []
    for n, target in enumerate(targets):
        project = target.get("project")
        site = target.get("site") or getattr(project, "site", None)
        jobs.append(
            Job(
                kind=kind,
                actor=actor,
                project=project,
                site=site,
                params=target.get("params") or {},
                target_server_id=target.get("target_server_id", ""),
                target_image_id=target.get("target_image_id", ""),
                steps=[dict(record) for record in steps],
                wake=uuid.uuid4().hex,
                marker=uuid.uuid4().hex[:12],
                due_at=now,
                idempotency_key=idempotency_key[:64] if n == 0 else "",
            )  # fmt: skip
        )
    try:
        with transaction.atomic():
            Job.objects.bulk_create(jobs)
    except IntegrityError:
        repeated = job_repeated(actor=actor, key=idempotency_key)
        if repeated is not None:
            return [repeated]
        taken = _target_taken(kind, targets)
        if taken:
            # Two requests passed the checks at once; the database let one through.
            raise ActionRefused(
                f"Another portal job started on this {taken} a moment ago; "
                "wait until it ends, then try again."
            ) from None
        raise
    sends = [(job.pk, job.wake) for job in jobs]
    transaction.on_commit(lambda: _send_new(sends))
    return jobs


def _target_taken(kind: str, targets: list[dict]) -> str:
    """What an unfinished job already acts on, of these targets: "instance" (one of
    their servers), "snapshot" (their image, for a kind of Job.ONE_PER_IMAGE_KINDS),
    or "" (none): the database's unique constraints on Job, asked again."""
    unfinished = Job.objects.exclude(status__in=Job.FINISHED)
    for target in targets:
        server_id, image_id = target.get("target_server_id"), target.get("target_image_id")
        site = target.get("site") or getattr(target.get("project"), "site", None)
        if server_id and unfinished.filter(site=site, target_server_id=server_id).exists():
            return "instance"
        if (
            image_id
            and kind in Job.ONE_PER_IMAGE_KINDS
            and unfinished.filter(site=site, target_image_id=image_id, kind=kind).exists()
        ):
            return "snapshot"
    return ""


def _send_new(sends: list[tuple[int, str]]) -> None:
    """Hand freshly recorded jobs to the workers. The row is the truth: when the
    broker is down the request still succeeds (the user gets the job's page), and
    the recovery sweep sends each job once its next run is overdue."""
    for job_id, wake in sends:
        try:
            _send(job_id, wake, 0)
        except Exception as exc:  # kombu's OperationalError, a refused socket...
            log.warning("job %s recorded, not sent (the sweep will send it): %s", job_id, exc)
            return


def job_repeated(*, actor, key: str) -> Job | None:
    """The job `actor` already started with this form's key, if any."""
    if not key or actor is None:
        return None
    return Job.objects.filter(actor=actor, idempotency_key=key[:64]).first()


def _send(job_id: int, wake: str, countdown: float) -> None:
    current_app.send_task(ADVANCE_TASK, args=(job_id, wake), countdown=countdown)


def _claim(job_id: int, wake: str | None) -> bool:
    """Hold the job, if it is unfinished, free, and `wake` is its current token: a
    message overtaken by a newer schedule (the watcher woke the job since) or a
    duplicate costs this one UPDATE that matches nothing."""
    now = _now()
    jobs = Job.objects.filter(pk=job_id).exclude(status__in=Job.FINISHED)
    if wake is not None:
        jobs = jobs.filter(wake=wake)
    claimed = jobs.filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now)).update(
        lease_until=now + LEASE, heartbeat_at=now
    )
    return claimed == 1


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
        _kept(self.job, self.context)
        _headline_kept(self.job, self.kind.error_headline(self.context.state))

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


def job_advance(job_id: int, wake: str | None = None) -> float | None:
    """Run the job's steps until one waits or the job ends.

    Returns the countdown after which to call again, or None when there is
    nothing more to do for this message (job ended, stale message, or another
    worker holds the job).
    """
    if not _claim(job_id, wake):
        return None
    run = _begin(job_id)
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


def _begin(job_id: int) -> _Run | None:
    """Load the claimed job and what its steps see. A job whose stored params or
    state do not fit its kind ends failed with that said (None): its steps, and its
    undo, could only trip over it."""
    job = Job.objects.select_related("site", "actor", "project").get(pk=job_id)
    kind = job_kind_get(job.kind)
    if job.status == Job.Status.PENDING:
        job.status = Job.Status.RUNNING
        job.started_at = _now()
    try:
        context = kind.context(job)
    except BadJobData as exc:
        log.error("job %s cannot go on: %s", job.pk, exc)
        job.error = f"This job cannot go on: {exc}."
        for record in job.steps[job.step_index :]:
            record["status"] = "not run"
        job.step_index = len(job.steps)
        _end(job, kind, Job.Status.FAILED)
        return None
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
    silent = _site_silent(job)
    if silent is not None:
        return _Ran(outcome=silent, unavailable="silent")
    record["runs"] = record.get("runs", 0) + 1
    run.ran += 1
    # What earlier steps of this run recorded (an image id, "stopped by the
    # portal") is saved before the next step that acts on the cloud; the rest
    # of the bookkeeping waits for the end of the run. A crash re-runs a step,
    # which is safe; it never forgets what a finished step did before an action.
    if step.acts and run.state_text() != run.saved_state:
        job.save()
        run.saved_state = _state_text(job)
    step_began, state_before = time.monotonic(), run.state_text()
    try:
        outcome = step.run(run.context)
    except SoftTimeLimitExceeded:
        # The run outlived its time: the site answers too slowly. Progress only
        # if the step recorded some (a batch that got half through).
        moved = run.state_text() != state_before
        job.state["last_unavailable"] = "the site took too long to answer"
        outcome = Wait(progress=f"{step.label} (the site answers slowly, retrying)", more=moved)
        return _Ran(outcome=outcome, unavailable=not moved)
    except cloud.Unavailable as exc:
        # The site hiccuped, or does not answer at all: the same step again later.
        job.state["last_unavailable"] = exc.message
        if exc.silent and job.site_id:
            site_silent(job.site_id)
        outcome = Wait(progress=f"{step.label} ({_site_name(job)} not answering, retrying)")
        return _Ran(outcome=outcome, unavailable=True)
    except (StepFailed, cloud.CloudError) as exc:
        _site_answered(job, step_began)
        if isinstance(exc, StepFailed):
            job.result.update(exc.result)
        message = exc.message if isinstance(exc, cloud.CloudError) else str(exc)
        return _Ran(failed=f"{step.label}: {message}")
    except Exception as exc:  # a bug: record it on the job, never leave it running
        log.exception("job %s step %s crashed", job.pk, step.name)
        job.result["traceback"] = traceback.format_exc()
        return _Ran(failed=f"{step.label}: internal error ({exc.__class__.__name__})")
    _site_answered(job, step_began)
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
            _step_failed(job, run.kind, record, f"{step.label}: {outcome.over_budget}")
            return None
    elif stalled > settings.JOB_NO_PROGRESS_SECONDS:
        message = f"{step.label}: the cloud showed no progress for "
        message += _span(settings.JOB_NO_PROGRESS_SECONDS)
        if job.state.get("last_unavailable"):
            message += f" (last answer: {job.state['last_unavailable']})"
        _step_failed(job, run.kind, record, message)
        return None
    job.waits_for = outcome.watch
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


def _headline_kept(job: Job, headline: str) -> None:
    """Keep `headline` (the kind's, from its state) as the first line of the job's
    error, in place of the one it put there before, if any."""
    before = job.state.get("error_headline", "")
    rest = job.error
    if before and rest.startswith(before):
        rest = rest[len(before) :].removeprefix("\n")
    if headline:
        job.state["error_headline"] = headline
        job.error = f"{headline}\n{rest}" if rest else headline
    else:
        job.state.pop("error_headline", None)
        job.error = rest


def _span(seconds: float) -> str:
    if seconds >= 7200:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min" if seconds >= 120 else f"{seconds:g} s"


def _site_name(job: Job) -> str:
    return job.site.display_name if job.site_id else "the site"


def _site_silent(job: Job) -> Wait | None:
    """While the job's site gives no answer at all, a Wait instead of the step: the
    job costs no call and no worker time. The probe (see sites_to_probe) asks the
    site once per JOB_SILENT_PROBE_SECONDS with a short timeout, and its first
    answer wakes the waiting jobs. None: the site answers, go ahead."""
    # The site row came with the job (no query): as fresh as this run.
    if not job.site_id or job.site.silent_since is None:
        return None
    since = timezone.localtime(job.site.silent_since)
    return Wait(progress=f"{_site_name(job)} has not answered since {since:%H:%M}; waiting for it")


def sites_to_probe() -> list[int]:
    """The silent sites whose next probe is due, each claimed for one probe (so two
    watcher rounds never probe a site twice at once)."""
    now = _now()
    due = now - timedelta(seconds=settings.JOB_SILENT_PROBE_SECONDS)
    claimed = []
    silent = Site.objects.filter(silent_since__isnull=False).filter(
        Q(probe_at__isnull=True) | Q(probe_at__lt=due)
    )
    for site_id in silent.values_list("pk", flat=True):
        free = Q(probe_at__isnull=True) | Q(probe_at__lt=due)
        if Site.objects.filter(pk=site_id).filter(free).update(probe_at=now):
            claimed.append(site_id)
    return claimed


def _site_answered(job: Job, since: float) -> None:
    """The step's calls got answers: the site is not silent (if it was)."""
    if job.site_id and cloud.answered_since(job.site.name, since):
        job.site.silent_since = None
        site_answers(job.site_id)


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
        if undo:
            message = f"{record['label']}: {_site_name(job)} did not answer for {_span(limit)}"
        else:
            message = f"{record['label']}: the cloud showed no progress for {_span(limit)}"
        if job.state.get("last_unavailable"):
            message += f" (last answer: {job.state['last_unavailable']})"
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
    job.polls += 1
    job.progress = outcome.progress or record["label"]
    return _schedule(job, countdown, parked=True)


def site_answers(site_id: int) -> list[int]:
    """The site answered a call: end its silence, and run now the jobs waiting for it
    to answer (see _outage_wait). Returns the jobs woken."""
    if not Site.objects.filter(pk=site_id, silent_since__isnull=False).update(silent_since=None):
        return []
    log.warning("site %s answers again: its waiting jobs run now", site_id)
    waiting = Job.objects.filter(site_id=site_id, waits_for="site").exclude(status__in=Job.FINISHED)
    now, wake = _now(), uuid.uuid4().hex
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    waiting.filter(free).update(wake=wake, due_at=now, waits_for="")
    woken = list(Job.objects.filter(wake=wake).values_list("pk", flat=True))
    for job_id in woken:
        _send(job_id, wake, 0)
    return woken


def site_silent(site_id: int) -> None:
    """A call to the site got no answer at all: jobs there wait for a probe from now on."""
    now = _now()
    if Site.objects.filter(pk=site_id, silent_since__isnull=True).update(
        silent_since=now, probe_at=now
    ):
        log.warning("site %s gives no answer: its jobs wait for the probe", site_id)


@contextmanager
def _every_second(action: Callable[[], None], *, name: str):
    """Run `action` once a second in a thread of its own (with its own database
    connection) while the block runs; a failing round is logged and the next tries."""
    stop = threading.Event()

    def loop() -> None:
        try:
            while not stop.wait(1.0):
                try:
                    action()
                except Exception:  # a busy database: the next round tries again
                    log.debug("%s: this round failed", name, exc_info=True)
        finally:
            connection.close()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def lease_kept(job_id: int):
    """While the block runs (a worker's advance of the job):

    - renew the job's lease every LEASE_RENEW seconds: the lease can stay short, for
      a fast takeover when a worker dies, and still outlast a step that waits
      OPENSTACK_TIMEOUT for a site that never answers. Only a held lease is renewed:
      once the run released the job, nothing is extended;
    - watch for silence (see _silence_check)."""
    site: dict = {}
    renewed = [time.monotonic()]

    def beat() -> None:
        if not site:
            site.update(Job.objects.filter(pk=job_id).values("site_id", "site__name").get())
        if site["site_id"]:
            _silence_check(site["site_id"], site["site__name"])
        if time.monotonic() - renewed[0] >= LEASE_RENEW:
            renewed[0] = time.monotonic()
            Job.objects.filter(pk=job_id, lease_until__isnull=False).update(
                lease_until=_now() + LEASE
            )

    with _every_second(beat, name=f"lease-{job_id}"):
        yield


def _silence_check(site_id: int, site_name: str) -> None:
    """Mark the site silent once a call to it in this process has waited
    JOB_SILENT_AFTER_SECONDS without any answer from it: a call that hangs is not left
    to hold this worker, and then the next one, for OPENSTACK_TIMEOUT each before
    anyone knows. A slow call that does answer clears the mark at once (see
    _site_answered), and the probe does too. Time spent elsewhere (the database,
    the broker) is never taken for the site's silence: only calls in flight count."""
    if cloud.unanswered_for(site_name) >= settings.JOB_SILENT_AFTER_SECONDS:
        site_silent(site_id)


@contextmanager
def silence_watched(site_id: int, site_name: str, *, every_second=None):
    """For work at one site outside a job (a sync, a watch): the same silence check,
    and `every_second()` (a lease to renew) while the block runs."""

    def beat() -> None:
        _silence_check(site_id, site_name)
        if every_second is not None:
            every_second()

    with _every_second(beat, name=f"silence-{site_name}"):
        yield


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
        _send(job.pk, job.wake, countdown)
    return countdown


def _release(job: Job) -> None:
    job.lease_until = None
    job.heartbeat_at = _now()
    job.save()


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
    job.steps.extend(_step_record(step, phase="undo") for step in kind.undo_plan(job))
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


def jobs_recover_stuck(*, backlog: bool = False) -> list[int]:
    """Send a message to the unfinished jobs no worker holds whose next run is due
    and has none: parked jobs whose fallback poll is due (see _schedule), and jobs
    overdue by JOB_RECOVER_AFTER_SECONDS (their worker died, or Redis lost the
    message). Safe: steps are idempotent, and the new wake token makes any late copy
    of the old message a no-op.

    `backlog`: workers have messages waiting. An overdue job is then most likely
    one of them, and re-sending would only move it to the back of the queue: only
    parked jobs are sent, and jobs overdue by JOB_RECOVER_BACKLOG_SECONDS, each once a
    minute at most. A worker that died took the messages it held with it (a
    waiting job's countdown is held by the worker until due), and Redis hands them
    back only after the visibility timeout; the once-a-minute rule keeps a long
    queue from moving the same job back again and again.
    """
    now = _now()
    overdue = now - timedelta(seconds=settings.JOB_RECOVER_AFTER_SECONDS)
    late = Q(waits_for__gt="", due_at__lt=now)
    if not backlog:
        late |= Q(due_at__lt=overdue) | Q(due_at__isnull=True, heartbeat_at__lt=overdue)
    else:
        long_overdue = now - timedelta(seconds=settings.JOB_RECOVER_BACKLOG_SECONDS)
        not_lately = Q(resent_at__isnull=True) | Q(resent_at__lt=now - timedelta(minutes=1))
        late |= Q(due_at__lt=long_overdue) & not_lately
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    stuck = Job.objects.exclude(status__in=Job.FINISHED).filter(late).filter(free)
    recovered = []
    for job_id, waits_for in stuck.values_list("pk", "waits_for")[:500]:
        wake = uuid.uuid4().hex
        # Conditional on still being free and late: a worker that claimed it meanwhile wins.
        # A parked job sent is parked no more (see jobs_wake).
        taken = Job.objects.filter(pk=job_id).filter(free).filter(late)
        resent = {} if waits_for else {"resent_at": now}
        if taken.update(
            wake=wake, lease_until=None, due_at=now, heartbeat_at=now, waits_for="", **resent
        ):
            _send(job_id, wake, 0)
            if not waits_for:  # a parked job's fallback poll is routine, not a recovery
                recovered.append(job_id)
    if recovered:
        log.warning("re-enqueued %d overdue job(s): %s", len(recovered), recovered)
    return recovered


def jobs_wake(site: Site, *, server_ids=(), image_ids=(), job_ids=()) -> list[int]:
    """Run now the unfinished jobs of `site` that act on these servers or images
    (or are named): the status watcher saw them change. Returns the jobs a worker
    holds at this moment: they may have read the old state, so wake them later.

    One token for the whole batch: a token only has to differ from the job's
    previous one, and a shared one lets one UPDATE wake them all.

    Only parked jobs are woken, and a woken job is parked no more (`waits_for`
    cleared): a job that has a message already (woken a moment ago, or polling)
    runs anyway and reads the mirror then. Waking it again would only void its
    message and send it to the back of the queue, and the recovery sweep would
    send every parked job again each round until a worker got to it.
    """
    # A job waiting for its image is not woken by its server's changes, nor the reverse.
    targets = Q(pk__in=list(job_ids))
    if server_ids:
        targets |= Q(target_server_id__in=list(server_ids)) & ~Q(waits_for="image")
    if image_ids:
        targets |= Q(target_image_id__in=list(image_ids)) & ~Q(waits_for="server")
    if not (server_ids or image_ids or job_ids):
        return []
    now = _now()
    jobs = Job.objects.filter(site=site).exclude(status__in=Job.FINISHED).filter(targets)
    wake = uuid.uuid4().hex
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    jobs.filter(free).exclude(waits_for="").update(wake=wake, due_at=now, waits_for="")
    woken = list(Job.objects.filter(wake=wake).values_list("pk", flat=True))
    for job_id in woken:
        _send(job_id, wake, 0)
    return list(jobs.exclude(free).values_list("pk", flat=True))


def undo_details(job: Job) -> list[str]:
    """What the undo steps did, in words, for summaries and emails."""
    return [
        record["detail"]
        for record in job.steps
        if record.get("phase") == "undo" and record["status"] == "done" and record["detail"]
    ]
