"""The per-site sync: the wiring that brings every app's mirror of one site up to date.

It sits on top of the apps (it calls each one's sync), so nothing below imports it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from images.services import images_sync
from instances.services import flavors_sync, quotas_sync, servers_sync
from portal import cloud
from portal.mirror import planner_statistics_refresh, projects_sync
from portal.models import Site

log = logging.getLogger(__name__)

# Incremental syncs ask for changes since the last sync minus this margin, so
# a clock difference between portal and cloud cannot hide a change.
OVERLAP = timedelta(seconds=60)


def site_sync(site: Site, *, full: bool | None = None) -> dict:
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
    since = None if full or site.last_sync_at is None else site.last_sync_at - OVERLAP
    try:
        flavors = flavors_sync(site)
        servers = servers_sync(site, changes_since=since)
        images = images_sync(site, updated_since=since)
        if since is None:
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
    if since is None:
        site.last_full_sync_at = started
    site.unreachable_since = None
    site.last_error = ""
    site.save(
        update_fields=["last_sync_at", "last_full_sync_at", "unreachable_since", "last_error"]
    )
    if since is None:
        planner_statistics_refresh()
    return {"full": since is None, "flavors": flavors, "servers": servers, "images": images}
