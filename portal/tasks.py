"""Celery tasks: thin, take ids, call services."""

from __future__ import annotations

import logging

from celery import current_app, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from portal import cloud
from portal.jobs import job_advance, jobs_recover_stuck
from portal.models import Site
from portal.sites import sites_ensure
from portal.sync import site_sync
from portal.watch import sites_watch

log = logging.getLogger(__name__)


# One advance runs a bounded amount of work: the soft limit interrupts a step, which
# the engine turns into "continue at once"; the hard limit stays under the lease.
@shared_task(ignore_result=True, soft_time_limit=8, time_limit=12)
def job_advance_task(job_id: int, wake: str | None = None) -> None:
    try:
        job_advance(job_id, wake)
    except SoftTimeLimitExceeded:
        # Outside a step (while saving): the lease runs out and the sweep resumes the job.
        log.warning("job %s: advance interrupted by the soft time limit", job_id)


@shared_task(ignore_result=True)
def jobs_recover_stuck_task() -> list[int]:
    return jobs_recover_stuck(backlog=_messages_waiting() > 0)


def _messages_waiting() -> int:
    """Messages in the default queue that no worker has taken yet (Redis broker)."""
    try:
        with current_app.connection_for_read() as connection:
            return connection.default_channel.client.llen("celery")
    except Exception:  # another broker, or Redis not answering: assume none
        return 0


@shared_task(ignore_result=True)
def site_sync_task(site_id: int, full: bool | None = None) -> None:
    site = Site.objects.get(pk=site_id)
    try:
        site_sync(site, full=full)
    except cloud.Unavailable:
        pass  # recorded on the site; pages show "unreachable since"


@shared_task(ignore_result=True)
def sites_sync_task() -> None:
    for site in sites_ensure():
        site_sync_task.delay(site.pk)


# Beat sends this every PORTAL_WATCH_INTERVAL to the `watch` queue (see settings).
@shared_task(ignore_result=True, soft_time_limit=8, time_limit=12)
def sites_watch_task() -> None:
    sites_watch()
