"""The status watcher: one batched status query per site per second, for the jobs.

Without it every waiting job asks the cloud about its own server on its own
schedule: cloud calls grow with the number of jobs, and a job notices the cloud
finished only at its next poll (seconds late, more as its backoff grows). With
it, for each site that has unfinished jobs, one Nova listing of the servers
changed since the last look (`changes-since`, which also reports deleted ones)
and one Glance listing of the images updated since (`updated_at=gt:`) update
the mirror, and exactly the jobs whose server or image changed are woken (by the
writes themselves, and the round's compare: see portal.jobs.parking). While
its answers are fresh, jobs read their server from the mirror (no cloud call)
and poll only as a fallback.

It sits in the wiring layer: it calls the apps' sync functions and the engine.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from images.services import images_store
from instances.services import servers_store
from portal import cloud
from portal.jobs import UNFINISHED, parked_wake, site_answers, site_silent
from portal.mirror.listing import newest_update
from portal.models import Job, Site

log = logging.getLogger(__name__)

# One watcher per site at a time. Short, so a watcher killed mid-round holds up the
# next for seconds only; renewed while a round runs (see watch_lease_renew).
WATCH_LEASE = timedelta(seconds=5)


def site_watch(site_id: int) -> dict | None:
    """One round for one site. Returns what it saw, or None when it did not look
    (another watcher holds the site, no job is waiting there, or the mirror has
    never been synced: the watcher only ever adds to a sync)."""
    # An idle site costs one read a second, no write.
    if site_id not in _sites_busy():
        return None
    now = timezone.now()
    free = Q(watch_lease_until__isnull=True) | Q(watch_lease_until__lt=now)
    if not Site.objects.filter(pk=site_id).filter(free).update(watch_lease_until=now + WATCH_LEASE):
        return None
    site = Site.objects.get(pk=site_id)
    seen = None
    try:
        seen = _look(site, now)
    except cloud.Unavailable as exc:
        # A passing 503: the next round tries again. No answer at all: the site is
        # left to the probe (sites_to_watch skips it), and its jobs wait for an answer.
        if exc.silent:
            site_silent(site_id)
        raise
    finally:
        if seen is None:
            Site.objects.filter(pk=site_id).update(watch_lease_until=None)
    if seen is not None:
        site_answers(site_id)
    return seen


def _look(site: Site, asked: timezone.datetime) -> dict | None:
    # The mirror is complete up to the later of the last sync and the last watch:
    # ask for what changed since then. Nova and Glance compare "since" with their own
    # clock, so ask from the newest change each listed (see Site.changes_since),
    # reaching back a little for changes that land while a listing runs.
    covered = max((t for t in (site.watched_at, site.last_sync_at) if t is not None), default=None)
    if covered is None:
        return None
    overlap = timedelta(seconds=settings.PORTAL_WATCH_OVERLAP_SECONDS)
    servers_since = site.changes_since(site.servers_seen_at, covered) - overlap
    images_since = site.changes_since(site.images_seen_at, covered) - overlap
    # A round is worth a second: a site that takes longer is treated as not answering
    # (the next round or the sync catches up), not waited for with a worker held.
    with cloud.call_timeout(settings.PORTAL_WATCH_TIMEOUT):
        servers = cloud.server_list(site.name, changes_since=servers_since)
        images = cloud.image_list(site.name, updated_since=images_since)
    offset = cloud.clock_offset(site.name)
    # The round's start in the cloud's clock. A job that wrote a row after the round
    # began (a task it set) holds newer news by the writers' rule, so what this
    # listing saw of that object is not written; the next round must list it again,
    # so it asks from no later than this round's start (minus the overlap).
    began = site.cloud_time(asked) if offset is None else asked + timedelta(seconds=offset)
    # Writing wakes the jobs parked on what changed (portal.jobs.parking); so does
    # the round's own compare of every parked job with the mirror, which catches a
    # writer (this round's, a sync's, a job's) killed between its write and its compare.
    # Images first: a snapshot's image goes active before Nova clears the server's
    # task, so the job the server's change wakes finds its image active in the
    # mirror (and need not ask Glance).
    images_store(site, images, complete=False, observed_at=asked)
    servers_store(site, servers, complete=False, observed_at=asked)
    woken = parked_wake(site, "server") + parked_wake(site, "image")
    Site.objects.filter(pk=site.pk).update(
        watched_at=asked, watch_lease_until=None,
        clock_offset_seconds=site.clock_offset_seconds if offset is None else offset,
        servers_seen_at=_later(site.servers_seen_at, _until(newest_update(servers), began)),
        images_seen_at=_later(site.images_seen_at, _until(newest_update(images), began)),
    )  # fmt: skip
    log.debug(
        "watched %s: %d servers and %d images listed, %d jobs woken by the round's compare",
        site.name, len(servers), len(images), len(woken),
    )  # fmt: skip
    listed = {"servers": {s.id for s in servers}, "images": {i.id for i in images}}
    return {**listed, "woken": woken}


def _later(a, b):
    return b if a is None else a if b is None else max(a, b)


def _until(newest, cap):
    return None if newest is None else min(newest, cap)


def watch_lease_renew(site_id: int) -> None:
    """Extend the lease of a round that is still running (called every second)."""
    Site.objects.filter(pk=site_id, watch_lease_until__gt=timezone.now()).update(
        watch_lease_until=timezone.now() + WATCH_LEASE
    )


def sites_to_watch() -> list[int]:
    """The sites a round looks at: those with unfinished jobs that no watcher holds
    (or backs off from). Each gets a task of its own, so a site that hangs costs
    its own task's time, never another site's round."""
    now = timezone.now()
    free = Q(watch_lease_until__isnull=True) | Q(watch_lease_until__lt=now)
    # A silent site is left to the probe (portal.jobs.sites_to_probe): a listing there
    # would hold a worker for OPENSTACK_TIMEOUT each round.
    watched = Site.objects.filter(free, pk__in=_sites_busy(), silent_since__isnull=True)
    return list(watched.values_list("pk", flat=True))


def _sites_busy() -> set[int]:
    """The sites with unfinished jobs, read through the status index (the site's own
    index would read every job the site ever ran)."""
    unfinished = Job.objects.filter(status__in=UNFINISHED).order_by()
    return set(unfinished.values_list("site_id", flat=True).distinct())


def site_watch_safely(site_id: int) -> None:
    """site_watch for a task: trouble at one site is logged, never raised."""
    try:
        site_watch(site_id)
    except cloud.Unavailable as exc:
        log.info("watch of site %s skipped: %s", site_id, exc.message)
    except Exception:
        log.exception("watch of site %s failed", site_id)
