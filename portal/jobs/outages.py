"""Sites that do not answer, and the leases that keep a worker's hold on a job.

A site that gives no answer at all is marked silent: its jobs wait for the probe
instead of each spending OPENSTACK_TIMEOUT on it, and its first answer wakes them.
A worker renews its job's short lease while it runs (`lease_kept`), and watches
the site's calls for silence meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_noop

from portal import cloud
from portal.jobs.kinds import Wait
from portal.jobs.parking import jobs_wake
from portal.jobs.selectors import unfinished_q
from portal.models import Job, Site
from portal.texts import clock, say

log = logging.getLogger(__name__)


# A worker holds a job this long, renewed every LEASE_RENEW while its advance runs
# (see lease_kept): a job whose worker died is picked up again within seconds, and
# a live worker whose step waits OPENSTACK_TIMEOUT for a hung site keeps it.
LEASE = timedelta(seconds=10)
LEASE_RENEW = 3.0


def site_display_name(job: Job) -> str:
    return job.site.display_name if job.site_id else "the site"


def silence_wait(job: Job) -> Wait | None:
    """While the job's site gives no answer at all, a Wait instead of the step: the
    job costs no call and no worker time. The probe (see sites_to_probe) asks the
    site once per JOB_SILENT_PROBE_SECONDS with a short timeout, and its first
    answer wakes the waiting jobs. None: the site answers, go ahead."""
    # The site row came with the job (no query): as fresh as this run.
    if not job.site_id or job.site.silent_since is None:
        return None
    return Wait(
        progress=say(
            gettext_noop("%(site)s has not answered since %(since)s; waiting for it"),
            site=site_display_name(job),
            since=clock(job.site.silent_since),
        )
    )


def sites_to_probe() -> list[int]:
    """The silent sites whose next probe is due, each claimed for one probe (so two
    watcher rounds never probe a site twice at once)."""
    now = timezone.now()
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


def site_answered(job: Job, since: float) -> None:
    """The step's calls got answers: the site is not silent (if it was).

    The site row came with the job. When it showed no silence and the step took
    less than JOB_SILENT_AFTER_SECONDS, this process cannot have marked the site
    silent meanwhile (see _silence_check), so nothing is asked: a read per acting
    step was three of a snapshot job's queries. Another process that marked it
    silent during this quick step (its own call hung) is cleared by the probe,
    within JOB_SILENT_PROBE_SECONDS."""
    site = job.site
    if site is None or not cloud.answered_since(site.name, since):
        return
    quick = time.monotonic() - since < settings.JOB_SILENT_AFTER_SECONDS
    if site.silent_since is None and quick:
        return
    site.silent_since = None
    site_answers(site.pk)


def site_answers(site_id: int) -> list[int]:
    """The site answered a call: end its silence, and run now the jobs waiting for it
    to answer (see advance._outage_wait). Returns the jobs woken.

    Asked after every step that called the site: a read first, because an UPDATE
    that matches nothing still takes SQLite's write lock, once per step."""
    silent = Site.objects.filter(pk=site_id, silent_since__isnull=False)
    if not silent.exists() or not silent.update(silent_since=None):
        return []
    log.warning("site %s answers again: its waiting jobs run now", site_id)
    # Found among the unfinished jobs, by their index, the site compared here: neither
    # `waits_for` nor the token has an index (see Job.due_at), and the site's would
    # read every job the site ever ran.
    unfinished = Job.objects.filter(unfinished_q(), waits_for="site").order_by()
    pks = [pk for pk, job_site in unfinished.values_list("pk", "site_id") if job_site == site_id]
    if not pks:
        return []
    return jobs_wake(unfinished, pks)


def site_silent(site_id: int) -> None:
    """A call to the site got no answer at all: jobs there wait for a probe from now on."""
    now = timezone.now()
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


@dataclass
class _Held:
    """A job this process advances, as the lease keeper sees it."""

    since: float
    renewed: float
    site: dict = field(default_factory=dict)


# The jobs this process is advancing, and the one thread that keeps their leases
# (started on first use in each process, so a forked worker child has its own).
_held: dict[int, _Held] = {}
_keeper: dict = {"thread": None, "pid": 0}
_keeper_lock = threading.Lock()


@contextmanager
def lease_kept(job_id: int):
    """While the block runs (a worker's advance of the job):

    - renew the job's lease every LEASE_RENEW seconds: the lease can stay short, for
      a fast takeover when a worker dies, and still outlast a step that waits
      OPENSTACK_TIMEOUT for a site that never answers. Only a held lease is renewed:
      once the run released the job, nothing is extended;
    - watch for silence (see _silence_check).

    One thread per process does this for every job the process runs, and only once
    a run has lasted a second: most advances take a few milliseconds, and a thread
    started and joined for each was an eighth of a worker's time at 1,000 jobs."""
    now = time.monotonic()
    _keeper_ensure()
    _held[job_id] = _Held(since=now, renewed=now)
    try:
        yield
    finally:
        _held.pop(job_id, None)


def _keeper_ensure() -> None:
    with _keeper_lock:
        thread = _keeper["thread"]
        if thread is not None and thread.is_alive() and _keeper["pid"] == os.getpid():
            return
        thread = threading.Thread(target=_keeper_loop, name="lease-keeper", daemon=True)
        _keeper.update(thread=thread, pid=os.getpid())
        thread.start()


def _keeper_loop() -> None:
    used = False  # the connection, since it was last closed
    while True:
        time.sleep(1.0)
        now = time.monotonic()
        for job_id, held in list(_held.items()):
            if now - held.since < 1.0:
                continue  # a short run ends before it needs anything
            used = True
            try:
                _lease_beat(job_id, held)
            except Exception:  # a busy database: the next round tries again
                log.debug("lease of job %s: this round failed", job_id, exc_info=True)
                connection.close()
        if used and not _held:
            # Idle again: no connection left open for nothing (nor in the way of
            # dropping a test database).
            connection.close()
            used = False


def _lease_beat(job_id: int, held: _Held) -> None:
    if not held.site:
        held.site.update(Job.objects.filter(pk=job_id).values("site_id", "site__name").get())
    if held.site["site_id"]:
        _silence_check(held.site["site_id"], held.site["site__name"])
    if time.monotonic() - held.renewed >= LEASE_RENEW:
        held.renewed = time.monotonic()
        if job_id in _held:  # not once the run has ended and let the job go
            Job.objects.filter(pk=job_id, lease_until__isnull=False).update(
                lease_until=timezone.now() + LEASE
            )


def _silence_check(site_id: int, site_name: str) -> None:
    """Mark the site silent once a call to it in this process has waited
    JOB_SILENT_AFTER_SECONDS without any answer from it: a call that hangs is not left
    to hold this worker, and then the next one, for OPENSTACK_TIMEOUT each before
    anyone knows. A slow call that does answer clears the mark at once (see
    site_answered), and the probe does too. Time spent elsewhere (the database,
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
