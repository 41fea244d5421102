"""The kind API: a job kind's steps and what they return, its typed params and
state, the context its steps see, the registry of kinds, and recording a job of a
kind (a `Kind` creates its jobs, so the two live together). See the package's
docstring for the whole picture.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime
from typing import ClassVar, cast

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy

from portal import prepared
from portal.errors import ActionRefused
from portal.jobs import sending
from portal.jobs.markers import job_key, made_by_job
from portal.jobs.selectors import job_repeated
from portal.mirror.authorship import authorship_record
from portal.models import Job, Site

log = logging.getLogger(__name__)


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
    # True for an acting step that saves the state itself (ctx.checkpoint()) before
    # it acts: the checkpoint saves what earlier steps of the run recorded too, so
    # the engine need not save the job before running it (one write less).
    checkpoints: bool = False
    # What puts back what this step did, when it or a later step fails: one step,
    # or several in order (a compensation may wait, e.g. start, then wait for ACTIVE).
    undo: Step | tuple[Step, ...] = ()

    @property
    def undo_steps(self) -> tuple[Step, ...]:
        return self.undo if isinstance(self.undo, tuple) else (self.undo,)


class BadJobData(Exception):
    """A job's stored params or state do not fit its kind (a key unknown or missing)."""


# The engine's own bookkeeping in Job.state, beside a kind's State (see advance._outage_wait).
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
        context_kept(self._job, self)
        prepared.row_update(self._job, ["state"])


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
        context_kept(job, context)
        headline_kept(job, kind.error_headline(context.state))
    if isinstance(outcome, (Done, Skipped)):
        job.result.update(outcome.result)
    return outcome


def context_kept(job: Job, context: StepContext) -> None:
    """Copy what the steps recorded in `context` into the job row (not saved)."""
    engine = {k: job.state[k] for k in ENGINE_STATE_KEYS if k in job.state}
    job.state = {**_stored(context.state), **engine}
    job.target_image_id = context.target_image_id


# Values a state keeps as they are: asdict's deep copy of them is the same value.
_PLAIN = (str, int, float, bool)


def _stored(fields_of) -> dict:
    """Params or state as the job row keeps them. A field left None is left out, as
    before they were typed: queries on the JSON field ask for a key's presence (a
    launch's `retry_of`), and pages for a key (`"image_id" in job.state`).

    Asked several times in every run (the engine compares states to know what to
    save): a state of plain values is read field by field; asdict, which copies
    deeply, only for one holding lists, dicts or dataclasses."""
    stored = {}
    for name in _field_names(type(fields_of)):
        value = getattr(fields_of, name)
        if value is None:
            continue
        if not isinstance(value, _PLAIN):
            return {key: value for key, value in asdict(fields_of).items() if value is not None}
        stored[name] = value
    return stored


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


class Kind:
    """A job kind: subclass it, name it, give it `Params`, `State` and `steps`; it is
    registered under `name`, and `create` records a job of it. See the module's
    docstring for a whole example."""

    name: ClassVar[str] = ""
    # A Celery queue of its own (see sending.QUEUES), for a kind with a long step.
    queue: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    State: ClassVar[type] = NoState
    steps: ClassVar[tuple[Step, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            _kinds[cls.name] = cls
            if cls.queue:
                sending.QUEUES[cls.name] = cls.queue

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


def step_record(step: Step, *, phase: str) -> dict:
    return {
        "name": step.name,
        "label": step.label,
        "phase": phase,
        "status": "pending",
        "started_at": None,
        "finished_at": None,
        "detail": "",
    }


def headline_kept(job: Job, headline: str) -> None:
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
    steps = [step_record(step, phase="forward") for step in spec.steps]
    for target in targets:  # its params must fit the kind now, not in a worker later
        _load(spec.Params, target.get("params") or {}, what="params", kind=kind)
    now = timezone.now()
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
                name_key=(target.get("params") or {}).get("name_key", "")[:255],
                target_server_id=target.get("target_server_id", ""),
                target_image_id=target.get("target_image_id", ""),
                steps=[dict(record) for record in steps],
                wake=uuid.uuid4().hex,
                marker=uuid.uuid4().hex[:12],
                due_at=now,
                idempotency_key=idempotency_key[:64] if n == 0 else "",
            )
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
            raise ActionRefused(str(TAKEN_REFUSALS[taken])) from None
        raise
    sends = [(job.pk, job.wake, job.kind) for job in jobs]
    transaction.on_commit(lambda: sending.send_new(sends))
    return jobs


# One whole sentence per target: German declines "this" by the noun's gender.
TAKEN_REFUSALS = {
    "instance": gettext_lazy(
        "Another portal job started on this instance a moment ago; "
        "wait until it ends, then try again."
    ),
    "snapshot": gettext_lazy(
        "Another portal job started on this snapshot a moment ago; "
        "wait until it ends, then try again."
    ),
}


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
