"""Celery tasks: thin, take ids, call services.

Each keeps the name it had as portal.tasks (name=...): the engine enqueues
job_advance_task by name (portal.jobs.ADVANCE_TASK), the schedule and the routes in
config/settings.py name them, and messages already queued carry those names."""

from __future__ import annotations

import logging
import time

from celery import current_app, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from operations.sync import site_sync
from operations.watch import site_watch_safely, sites_to_watch, watch_lease_renew
from portal import cloud
from portal.jobs import (
    job_advance,
    jobs_claim,
    jobs_preload,
    jobs_recover_stuck,
    jobs_unclaim,
    lease_kept,
    park_checks_batched,
    sending,
    silence_watched,
    site_answers,
    site_silent,
    sites_to_probe,
)
from portal.models import Site
from portal.sites import sites_ensure
from workshops.services import workshop_emails_purge

log = logging.getLogger(__name__)


# One advance starts steps for JOB_RUN_SECONDS at most; the soft limit leaves room
# for one more cloud call to time out (a hung site) and interrupts anything slower,
# which the engine counts as the site not answering. The lease is renewed meanwhile.
@shared_task(
    name="portal.tasks.job_advance_task",
    ignore_result=True,
    soft_time_limit=settings.JOB_TASK_SOFT_SECONDS,
    time_limit=settings.JOB_TASK_SOFT_SECONDS + 5,
)
def job_advance_task(job_id: int, wake: str | None = None) -> None:
    _advance(job_id, wake)


def _advance(job_id: int, wake: str | None, preloaded=None, claimed_at=None) -> None:
    try:
        with lease_kept(job_id):
            job_advance(job_id, wake, preloaded, claimed_at)
    except SoftTimeLimitExceeded:
        # Outside a step (while saving): the lease runs out and the sweep resumes the job.
        log.warning("job %s: advance interrupted by the soft time limit", job_id)


# A batch (portal.jobs.sending.send_many) starts its jobs within this many seconds
# and hands the rest on in a message of their own, so it never nears its time limit,
# which is one advance's plus this.
BATCH_START_SECONDS = 2.0


@shared_task(
    name="portal.tasks.jobs_advance_task",
    ignore_result=True,
    soft_time_limit=int(settings.JOB_TASK_SOFT_SECONDS + BATCH_START_SECONDS),
    time_limit=int(settings.JOB_TASK_SOFT_SECONDS + BATCH_START_SECONDS) + 5,
)
def jobs_advance_task(jobs: list[list]) -> None:
    """job_advance_task for each job (id, wake), one after another; the jobs' rows,
    and what their steps read first, are read for all of them at once, and the jobs
    are claimed at once, after that read (a claim with the token the row was read
    with proves the row unchanged). A job whose claim fails is not run, as alone."""
    began = time.monotonic()
    preloaded = jobs_preload([(job_id, wake) for job_id, wake in jobs])
    claimed_at, claimed = jobs_claim([(job_id, wake) for job_id, wake in jobs if wake])
    with park_checks_batched():
        for n, (job_id, wake) in enumerate(jobs):
            if n and time.monotonic() - began > BATCH_START_SECONDS:
                # The jobs not started yet: let go of the held ones, hand them on.
                rest = [
                    (job_id, wake) for job_id, wake in jobs[n:] if not wake or job_id in claimed
                ]
                rest = list(dict.fromkeys(map(tuple, rest)))  # a job listed twice, once
                jobs_unclaim(sorted(claimed), claimed_at)
                sending.send_batched(rest)
                return
            if not wake:  # claims itself, as a job alone
                _advance(job_id, wake, preloaded.get(job_id))
            elif job_id in claimed:
                # The claim is good for one run: a job listed twice runs once.
                claimed.discard(job_id)
                _advance(job_id, wake, preloaded.get(job_id), claimed_at)


@shared_task(name="portal.tasks.jobs_recover_stuck_task", ignore_result=True)
def jobs_recover_stuck_task() -> list[int]:
    return jobs_recover_stuck(backlog=_messages_waiting() > 0)


def _messages_waiting() -> int:
    """Messages in the default queue that no worker has taken yet (Redis broker)."""
    try:
        with current_app.connection_for_read() as connection:
            return connection.default_channel.client.llen("celery")
    except Exception:  # another broker, or Redis not answering: assume none
        return 0


@shared_task(name="portal.tasks.site_sync_task", ignore_result=True)
def site_sync_task(site_id: int, full: bool | None = None) -> None:
    site = Site.objects.get(pk=site_id)
    if site.silent_since is not None:
        return  # left to the probe: a sync there would hold a worker for nothing
    try:
        with silence_watched(site.pk, site.name):
            site_sync(site, full=full)
    except cloud.Unavailable as exc:
        # Recorded on the site (pages show "unreachable since"); no answer at all
        # makes its jobs wait for one.
        if exc.silent:
            site_silent(site_id)
    else:
        site_answers(site_id)


@shared_task(name="portal.tasks.sites_sync_task", ignore_result=True)
def sites_sync_task() -> None:
    for site in sites_ensure():
        site_sync_task.delay(site.pk)


# Sent every PORTAL_WATCH_INTERVAL to the `watch` queue (see settings): one task per
# site, so a site that hangs holds up no other site's round.
@shared_task(
    name="portal.tasks.sites_watch_task", ignore_result=True, soft_time_limit=5, time_limit=10
)
def sites_watch_task() -> None:
    expires = 2 * settings.PORTAL_WATCH_INTERVAL
    for site_id in sites_to_watch():
        site_watch_task.apply_async((site_id,), queue="watch", expires=expires)
    for site_id in sites_to_probe():
        site_probe_task.apply_async((site_id,), queue="watch", expires=expires)


# A silent site is asked only this: one short unauthenticated call, and its first
# answer wakes the jobs waiting for the site (and lets the watcher and syncs back).
@shared_task(
    name="portal.tasks.site_probe_task",
    ignore_result=True,
    soft_time_limit=settings.PORTAL_PROBE_TIMEOUT + 5,
)
def site_probe_task(site_id: int) -> None:
    site = Site.objects.get(pk=site_id)
    if cloud.site_probe(site.name, timeout=settings.PORTAL_PROBE_TIMEOUT):
        site_answers(site_id)


@shared_task(
    name="portal.tasks.site_watch_task",
    ignore_result=True,
    soft_time_limit=2 * settings.OPENSTACK_TIMEOUT + 5,
    time_limit=2 * settings.OPENSTACK_TIMEOUT + 10,
)
def site_watch_task(site_id: int) -> None:
    name = Site.objects.filter(pk=site_id).values_list("name", flat=True).first()
    with silence_watched(site_id, name or "", every_second=lambda: watch_lease_renew(site_id)):
        site_watch_safely(site_id)


# Hourly (see CELERY_BEAT_SCHEDULE): participants' emails go PORTAL_WORKSHOP_EMAIL_DAYS
# after their workshop's teardown; a run handles a bounded batch of workshops.
@shared_task(name="portal.tasks.workshop_emails_purge_task", ignore_result=True)
def workshop_emails_purge_task() -> int:
    return workshop_emails_purge()
