"""Parked jobs and the changes that wake them, level-triggered.

A step that waits for its server or image to change (`Wait(watch="server")`)
parks the job: no message, no timer; something must wake it when the mirror
shows the change. Comparing "before" with "after" around each write (an edge)
loses wake-ups whenever the park and the write interleave: a job that parks
after a sync took its "before" picture, a job that read the mirror a moment
before the watcher wrote the change (it was not parked yet, so nobody woke it),
a job's own refresh writing a change another job waits for.

So the job writes down what it parked on: `Job.parked_on`, the state of its
object as its step saw it (`state` below: the server's status and whether a
task runs on it, the image's status once settled; a timestamp or upload progress
is no change). A parked job is due to wake exactly when the mirror's state of
its object differs from `parked_on`. Two places compare, each after its own
write is committed:

- every writer of the mirror (servers_store, images_store, the targeted
  refreshes: the sync, the watcher, any job) calls `parked_wake` for what it
  moved, after writing (a writer that moved nothing has nothing to compare: the
  state it found was compared by the writer, or the park, that made it);
- a job that parks compares the mirror with what it parked on, after parking
  (`park_check`).

Whichever commits second sees the other's write, so no interleaving loses a
wake. The wake itself is one conditional UPDATE (still parked, on a state other
than the mirror's): when both compare, or two writers write the same change, one
UPDATE matches and the other matches nothing, so each change sends one message.
The status watcher's round also compares every job parked on its site, which
catches a writer killed between its write and its compare.

The engine knows no mirror model: the apps register theirs (`watched_register`).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from django.db import connection, models
from django.db.models import Q
from django.utils import timezone

from portal import prepared
from portal.jobs import sending
from portal.jobs.selectors import UNFINISHED, unfinished_q
from portal.models import Job, Site

# Parked on an object the mirror does not have (any more): any state differs.
MISSING = "missing"
# Written objects asked about by id, at most: a longer list costs more than asking
# for every job parked on the site, and SQLite limits a statement's parameters.
IDS_MAX = 500


@dataclass(frozen=True)
class Watched:
    """A kind of object jobs park on: its mirror model, the Job field naming it,
    and the state a wait compares (a function of `fields`' values)."""

    model: type[models.Model]
    target: str
    fields: tuple[str, ...]
    state: Callable[..., str]

    def state_of(self, row) -> str:
        if row is None:
            return MISSING
        return self.state(*(getattr(row, name) for name in self.fields))

    def state_now(self, site_id: int, openstack_id: str) -> str:
        """The mirror's state of one object (MISSING: it has no such row). Its SQL is
        built once (see portal.prepared): every job that parks asks it."""

        def build(quote):
            meta = self.model._meta
            fields = [meta.get_field(name) for name in self.fields]
            sql = (
                f"SELECT {', '.join(quote(field.column) for field in fields)} "
                f"FROM {quote(meta.db_table)} WHERE {quote(meta.get_field('site').column)} = %s "
                f"AND {quote(meta.get_field('openstack_id').column)} = %s"
            )
            # Each value as the ORM gives it (a datetime, not SQLite's text).
            columns = [field.get_col(meta.db_table) for field in fields]
            return sql, [
                (
                    column,
                    connection.ops.get_db_converters(column) + column.get_db_converters(connection),
                )
                for column in columns
            ]

        sql, converters = prepared.built(("watched_state", self.model, self.fields), build)
        rows = prepared.fetch(sql, [site_id, openstack_id])
        if not rows:
            return MISSING
        values = []
        for value, (column, converts) in zip(rows[0], converters, strict=True):
            for convert in converts:
                value = convert(value, column, connection)
            values.append(value)
        return self.state(*values)

    def states(self, site_id: int, ids: Iterable[str]) -> dict[str, str]:
        rows = self.model._default_manager.filter(site_id=site_id, openstack_id__in=list(ids))
        rows = rows.order_by()  # a dict: the model's order would only cost a sort
        return {
            openstack_id: self.state(*values)
            for openstack_id, *values in rows.values_list("openstack_id", *self.fields)
        }


# By `Job.waits_for`: "server", "image".
WATCHED: dict[str, Watched] = {}


def watched_register(waits_for: str, *, model, target: str, fields, state) -> None:
    WATCHED[waits_for] = Watched(model=model, target=target, fields=tuple(fields), state=state)


def parked_on(waits_for: str, row, *, site_id: int | None, target: str) -> str:
    """What a job parking on `waits_for` records: the state of the row its step read
    (`row`, from the step's cache), or, when it read none, the mirror's now."""
    watched = WATCHED.get(waits_for)
    if watched is None:
        return ""
    if row is None and site_id is not None and target:
        return watched.states(site_id, [target]).get(target, MISSING)
    return watched.state_of(row)


def park_check(job: Job) -> bool:
    """Called by a job that has just parked (the row saved): wake it now if the
    mirror moved past what it parked on before anyone could see it parked. Inside
    park_checks_batched, noted and done at the batch's end, for all at once."""
    watched = WATCHED.get(job.waits_for)
    target = getattr(job, watched.target) if watched else ""
    if watched is None or not job.parked_on or not target or job.site_id is None:
        return False
    pending = getattr(_batch, "pending", None)
    if pending is not None:
        pending.append((job.pk, job.waits_for, job.site_id, target, job.parked_on))
        return False
    now = watched.state_now(job.site_id, target)
    if now == job.parked_on:
        return False
    return bool(
        jobs_wake(Job.objects.filter(waits_for=job.waits_for, parked_on=job.parked_on), [job.pk])
    )


_batch = threading.local()


@contextlib.contextmanager
def park_checks_batched() -> Iterator[None]:
    """The park checks of the jobs a batch parks, made once the batch is done: one
    read of the mirror per site and kind of object, not one per job. Still after
    each job's park was committed, so the protocol holds (a wake-up the check finds
    comes up to the batch's few seconds later); a batch killed before its end
    leaves them to the watcher round's compare of every parked job."""
    _batch.pending = []
    try:
        yield
    finally:
        pending, _batch.pending = _batch.pending, None
        _park_checks(pending)


def _park_checks(pending: list[tuple[int, str, int, str, str]]) -> None:
    groups: dict[tuple[str, int], list[tuple[int, str, str]]] = defaultdict(list)
    for pk, waits_for, site_id, target, state in pending:
        groups[(waits_for, site_id)].append((pk, target, state))
    for (waits_for, site_id), parked in groups.items():
        now = WATCHED[waits_for].states(site_id, {target for _, target, _ in parked})
        for pk, target, state in parked:
            if now.get(target, MISSING) != state:
                jobs_wake(Job.objects.filter(waits_for=waits_for, parked_on=state), [pk])


def parked_wake(site: Site | int, waits_for: str, ids: Iterable[str] | None = None) -> list[int]:
    """Wake the jobs parked on these objects of `site` (None: on any) whose mirror
    state is no longer the one they parked on. Call it after writing them."""
    watched = WATCHED.get(waits_for)
    if watched is None:
        return []
    site_id = site if isinstance(site, int) else site.pk
    parked = Job.objects.filter(waits_for=waits_for).order_by()
    if ids is not None:
        ids = list(ids)
        if not ids:
            return []
    if ids is not None and len(ids) <= IDS_MAX:
        # The jobs on these objects, by the object's index (their history included).
        parked = parked.filter(**{f"{watched.target}__in": ids})
    else:
        # Every parked job (a watcher round's compare, a full sync's thousands): among
        # the unfinished jobs, by their index. `waits_for` has none (see Job.due_at).
        parked = parked.filter(unfinished_q())
    # The site is compared here, not in SQL: SQLite would pick its index (every job
    # the site ever ran) over the object's or the unfinished jobs'.
    seen = [
        (pk, target, state)
        for pk, job_site, target, state, status in parked.values_list(
            "pk", "site_id", watched.target, "parked_on", "status"
        )
        if job_site == site_id and state and status not in Job.FINISHED
    ]
    if not seen:
        return []
    now = watched.states(site_id, {target for _, target, _ in seen})
    moved = defaultdict(list)
    for pk, target, state in seen:
        current = now.get(target, MISSING)
        if current != state:
            moved[current].append(pk)
    if not moved:
        return []
    # In SQL again, per state: a job that woke and parked anew meanwhile (on the
    # state now shown) is not matched, so no change wakes a job twice.
    matching = Q()
    for current, pks in moved.items():
        matching |= Q(pk__in=pks) & ~Q(parked_on=current)
    return jobs_wake(
        _parked(waits_for).filter(matching), [pk for pks in moved.values() for pk in pks]
    )


def _parked(waits_for: str):
    jobs = Job.objects.filter(waits_for=waits_for).exclude(parked_on="")
    return jobs.filter(status__in=UNFINISHED).order_by()


def jobs_wake(jobs, pks: list[int]) -> list[int]:
    """Wake those of `jobs` with these ids that still wait (parked, or on their site)
    and are free: one UPDATE, one token for the batch (it only has to differ from
    each job's previous one), then the messages (several jobs each: see
    sending.send_now). The woken are read back by their ids: the token has no index."""
    now = timezone.now()
    wake = uuid.uuid4().hex
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    if (
        not jobs.filter(free, pk__in=pks)
        .exclude(waits_for="")
        .update(wake=wake, due_at=now, waits_for="", parked_on="")
    ):
        return []
    woken = list(Job.objects.filter(pk__in=pks, wake=wake).order_by().values_list("pk", "kind"))
    sending.send_now([(kind, job_id, wake) for job_id, kind in woken])
    return [job_id for job_id, _ in woken]
