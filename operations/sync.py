"""The per-site sync: the wiring that brings every app's mirror of one site up to date.

It sits on top of the apps (it calls each one's sync), so nothing below imports it.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from images.services import images_sync
from instances.services import flavors_sync, networks_sync, quotas_sync, servers_sync
from portal import cloud
from portal.mirror.listing import NewestSeen
from portal.mirror.projects import projects_sync
from portal.mirror.sqlite import planner_statistics_refresh
from portal.models import Site

log = logging.getLogger(__name__)

# Incremental syncs ask for changes since the last sync minus this margin, so
# a clock difference between portal and cloud cannot hide a change.
OVERLAP = timedelta(seconds=60)


def site_sync(site: Site, *, full: bool | None = None) -> dict:
    """Bring the mirror of one site up to date (see _site_sync)."""
    with _collector_paused():
        return _site_sync(site, full=full)


# How many syncs of this process have the cyclic garbage collector paused, and
# whether it ran before the first of them.
_pauses = {"count": 0, "was_enabled": False}
_pauses_lock = threading.Lock()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a sync runs, as it was after.

    A full sync builds a few million small objects (page bodies, typed cloud
    objects, rows, hashes), none of them garbage until their batch is written,
    and nearly none of them in a reference cycle. The collector walked all of
    them again and again as they piled up: a third of a cold sync's CPU at
    100,000 images and two fifths of a warm one's. Reference counting still
    frees every batch as it goes; the few cycles a sync leaves are collected
    after it. Counted, so overlapping syncs in one process (threads) leave the
    collector as the first one found it.
    """
    with _pauses_lock:
        if _pauses["count"] == 0:
            _pauses["was_enabled"] = gc.isenabled()
            gc.disable()
        _pauses["count"] += 1
    try:
        yield
    finally:
        with _pauses_lock:
            _pauses["count"] -= 1
            if _pauses["count"] == 0 and _pauses["was_enabled"]:
                gc.enable()


def _site_sync(site: Site, *, full: bool | None) -> dict:
    """Bring the mirror of one site up to date.

    An incremental sync asks Nova for servers changed since the last one
    (including those deleted since) and Glance for images updated since; a full
    sync lists everything, which is the only way to notice an image deleted
    out of band. `full=None` picks: full when the last full sync is older
    than PORTAL_FULL_SYNC_INTERVAL.
    """
    started = timezone.now()
    if full is None:
        interval = timedelta(seconds=settings.PORTAL_FULL_SYNC_INTERVAL)
        full = site.last_full_sync_at is None or started - site.last_full_sync_at >= interval
    incremental = not full and site.last_sync_at is not None
    servers_seen, images_seen = NewestSeen(), NewestSeen()
    try:
        flavors = flavors_sync(site)
        networks_sync(site)
        servers, images = _servers_and_images_sync(
            site, incremental=incremental, seen=(servers_seen, images_seen)
        )
        if not incremental:
            quotas_sync(site)
            projects_sync(site)
    except cloud.Unavailable as exc:
        log.warning("sync of %s failed: %s", site.name, exc)
        Site.objects.filter(pk=site.pk, unreachable_since__isnull=True).update(
            unreachable_since=started
        )
        Site.objects.filter(pk=site.pk).update(last_error=exc.message)
        site.refresh_from_db()
        raise
    site.last_sync_at = started
    if not incremental:
        site.last_full_sync_at = started
    offset = cloud.clock_offset(site.name)
    if offset is not None:
        site.clock_offset_seconds = offset
    # The sync's start in the cloud's clock. A job that wrote a row after the sync
    # began (a task Nova accepted) holds newer news than the listing, which then did
    # not write that object; the next watcher round or sync must list it again, so
    # the marks move no further than this start (as operations.watch does).
    began = site.cloud_time(started)
    # Fresh from the database: the watcher may have moved them meanwhile.
    marks = Site.objects.filter(pk=site.pk).values("servers_seen_at", "images_seen_at").get()
    site.servers_seen_at = _later(marks["servers_seen_at"], _until(servers_seen.at, began))
    site.images_seen_at = _later(marks["images_seen_at"], _until(images_seen.at, began))
    site.unreachable_since = None
    site.last_error = ""
    site.save(
        update_fields=[
            "last_sync_at", "last_full_sync_at", "unreachable_since", "last_error",
            "clock_offset_seconds", "servers_seen_at", "images_seen_at",
        ]
    )  # fmt: skip
    # The stores woke the jobs parked on what they changed (portal.jobs.parking).
    if not incremental:
        planner_statistics_refresh()
    return {"full": not incremental, "flavors": flavors, "servers": servers, "images": images}


def _later(a, b):
    return b if a is None else a if b is None else max(a, b)


def _until(newest, cap):
    return None if newest is None else min(newest, cap)


def _servers_and_images_sync(site: Site, *, incremental: bool, seen: tuple) -> tuple:
    """Servers and images, the servers in a thread of their own during a full sync.

    A full sync's two listings overlap: while the cloud serves the next pages
    of one, the portal works on the other's (a cold sync of 10,000 servers and
    100,000 images spent over a second waiting for Nova's pages before Glance
    was asked at all). Inside a transaction (a test, a caller's atomic block)
    another connection would not see its uncommitted rows: one after the other.
    """
    servers_seen, images_seen = seen
    if incremental:
        # Nova and Glance compare "since" with their own clock: ask in the cloud's time.
        covered = site.last_sync_at
        servers_since = site.changes_since(site.servers_seen_at, covered) - OVERLAP
        images_since = site.changes_since(site.images_seen_at, covered) - OVERLAP
        return (
            servers_sync(site, changes_since=servers_since, seen=servers_seen),
            images_sync(site, updated_since=images_since, seen=images_seen),
        )
    if connection.in_atomic_block:
        return (
            servers_sync(site, changes_since=None, seen=servers_seen),
            images_sync(site, updated_since=None, seen=images_seen),
        )

    def servers_in_own_connection():
        try:
            return servers_sync(site, changes_since=None, seen=servers_seen)
        finally:
            connections.close_all()  # this thread's own, not the caller's

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="servers-sync") as pool:
        servers = pool.submit(servers_in_own_connection)
        try:
            images = images_sync(site, updated_since=None, seen=images_seen)
        finally:
            servers_error = servers.exception()
        if servers_error is not None:
            raise servers_error
        return servers.result(), images
