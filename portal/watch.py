"""The status watcher: one batched status query per site per second, for the jobs.

Without it every waiting job asks the cloud about its own server on its own
schedule: cloud calls grow with the number of jobs, and a job notices the cloud
finished only at its next poll (seconds late, more as its backoff grows). With
it, for each site that has unfinished jobs, one Nova listing of the servers
changed since the last look (`changes-since`, which also reports deleted ones)
and one Glance listing of the images updated since (`updated_at=gt:`) update
the mirror, and exactly the jobs whose server or image changed are woken. While
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

from images.models import Image
from images.services import images_store
from instances.models import Server
from instances.services import servers_store
from portal import cloud
from portal.jobs import jobs_wake, site_answers, site_silent
from portal.mirror.listing import newest_update
from portal.models import Job, Site

log = logging.getLogger(__name__)

# One watcher per site at a time. Short, so a watcher killed mid-round holds up the
# next for seconds only; renewed while a round runs (see watch_lease_renew).
WATCH_LEASE = timedelta(seconds=5)
# Jobs remembered to wake on the next round: bounded, the fallback poll covers the rest.
PENDING_MAX = 1000
# Glance statuses on the way to active (or to a failure): no job waits for these.
IMAGE_IN_PROGRESS = {"queued", "saving", "uploading", "importing"}


def site_watch(site_id: int) -> dict | None:
    """One round for one site. Returns what it saw, or None when it did not look
    (another watcher holds the site, no job is waiting there, or the mirror has
    never been synced: the watcher only ever adds to a sync)."""
    # An idle site costs one read a second, no write.
    if not Job.objects.filter(site_id=site_id).exclude(status__in=Job.FINISHED).exists():
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
    live_servers = Server.objects.filter(site=site, deleted_at__isnull=True)
    live_images = Image.objects.filter(site=site, deleted_at__isnull=True)
    # A server wakes its jobs when its status changes or Nova's task on it ends:
    # every wait is for one of those (SHUTOFF, ACTIVE, idle); one task giving way to
    # the next (image_snapshot, then image_uploading...) is only progress.
    server_ids = _moved(
        live_servers, {s.id: (s.status, not s.task_state) for s in servers}, idle=True
    )
    # An image wakes its job when it became usable or failed; its way there (queued,
    # saving) is only progress, which the job's fallback poll records.
    settled = [i for i in images if i.status not in IMAGE_IN_PROGRESS]
    image_ids = _moved(live_images, {i.id: (i.status,) for i in settled})
    # The jobs to wake are written down before the mirror moves: a worker killed
    # between the two writes would otherwise leave a change in the mirror that no
    # later round sees as one, and its jobs asleep until their fallback poll.
    pending = list(site.watch_pending)
    if server_ids or image_ids:
        pending += _jobs_on(site, server_ids, image_ids)
        Site.objects.filter(pk=site.pk).update(watch_pending=pending[:PENDING_MAX])
    servers_store(site, servers, complete=False, observed_at=asked)
    images_store(site, images, complete=False, observed_at=asked)
    busy = jobs_wake(site, server_ids=server_ids, image_ids=image_ids, job_ids=pending)
    Site.objects.filter(pk=site.pk).update(
        watched_at=asked, watch_lease_until=None, watch_pending=busy[:PENDING_MAX],
        clock_offset_seconds=site.clock_offset_seconds if offset is None else offset,
        servers_seen_at=_later(site.servers_seen_at, newest_update(servers)),
        images_seen_at=_later(site.images_seen_at, newest_update(images)),
    )  # fmt: skip
    log.debug(
        "watched %s: %d servers and %d images listed, %d and %d moved, %d jobs held",
        site.name, len(servers), len(images), len(server_ids), len(image_ids), len(busy),
    )  # fmt: skip
    return {"servers": server_ids, "images": image_ids, "busy": busy}


def _jobs_on(site: Site, server_ids, image_ids) -> list[int]:
    """The parked jobs of `site` that jobs_wake would wake for these servers or images."""
    targets = Q(target_server_id__in=list(server_ids)) & ~Q(waits_for="image")
    targets |= Q(target_image_id__in=list(image_ids)) & ~Q(waits_for="server")
    parked = Job.objects.filter(site=site).exclude(status__in=Job.FINISHED).exclude(waits_for="")
    return list(parked.filter(targets).values_list("pk", flat=True))


def _later(a, b):
    return b if a is None else a if b is None else max(a, b)


def _moved(rows, listed: dict[str, tuple], *, idle: bool = False) -> set[str]:
    """Ids among `listed` ({id: (status,)}, or with `idle` {id: (status, no task)})
    whose values differ from the mirror's `rows`: the changes a waiting step may be
    waiting for. A timestamp or upload progress alone wakes nobody; the fallback
    poll sees those."""
    if not listed:
        return set()
    fields = ("status", "task_state") if idle else ("status",)
    found = rows.filter(openstack_id__in=list(listed)).values_list("openstack_id", *fields)
    mirrored = {
        openstack_id: (values[0], not values[1]) if idle else tuple(values)
        for openstack_id, *values in found
    }
    return {i for i, seen in listed.items() if mirrored.get(i) != seen}


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
    busy = Job.objects.exclude(status__in=Job.FINISHED).values("site_id")
    free = Q(watch_lease_until__isnull=True) | Q(watch_lease_until__lt=now)
    # A silent site is left to the probe (portal.jobs.sites_to_probe): a listing there
    # would hold a worker for OPENSTACK_TIMEOUT each round.
    watched = Site.objects.filter(free, pk__in=busy, silent_since__isnull=True)
    return list(watched.values_list("pk", flat=True))


def site_watch_safely(site_id: int) -> None:
    """site_watch for a task: trouble at one site is logged, never raised."""
    try:
        site_watch(site_id)
    except cloud.Unavailable as exc:
        log.info("watch of site %s skipped: %s", site_id, exc.message)
    except Exception:
        log.exception("watch of site %s failed", site_id)
