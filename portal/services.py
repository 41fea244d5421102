"""Site-wide writes: syncing a site's mirror."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from images.services import images_sync
from instances.services import flavors_sync, servers_sync
from portal import cloud
from portal.models import Project, Site

log = logging.getLogger(__name__)

# Incremental syncs ask for changes since the last sync minus this margin, so
# a clock difference between portal and cloud cannot hide a change.
OVERLAP = timedelta(seconds=60)


def projects_sync(site: Site) -> int:
    """Refresh the names of the site's projects the portal knows (ids never change)."""
    names = {p.id: p.name for p in cloud.project_list(site.name)}
    changed = 0
    for project in Project.objects.filter(site=site):
        name = names.get(project.openstack_id)
        if name and name != project.name:
            project.name = name
            project.save(update_fields=["name"])
            changed += 1
    return changed


def project_quota_refresh(project: Project) -> Project:
    """Mirror one project's compute limits and usage (Nova /limits)."""
    limits = cloud.limits_get(project.site.name, project_id=project.openstack_id)
    project.quota_instances = limits.max_instances
    project.quota_cores = limits.max_cores
    project.quota_ram_mib = limits.max_ram_mib
    project.used_instances = limits.used_instances
    project.used_cores = limits.used_cores
    project.used_ram_mib = limits.used_ram_mib
    project.quota_synced_at = timezone.now()
    project.save()
    return project


def quotas_sync(site: Site) -> None:
    """One call per portal project, so only on full syncs and where a launch needs it."""
    for project in Project.objects.filter(site=site).select_related("site"):
        project_quota_refresh(project)


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
    return {"full": since is None, "flavors": flavors, "servers": servers, "images": images}
