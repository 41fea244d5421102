"""Reads of snapshots, scoped to what a user may see."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from portal.access import can_see, projects_visible_to
from snapshots.models import Snapshot


def snapshot_list(*, user, project=None) -> QuerySet[Snapshot]:
    """Live snapshots of the user's projects (everyone's for a superuser)."""
    snapshots = Snapshot.objects.filter(deleted_at__isnull=True).select_related(
        "project", "site", "created_by"
    )
    if project is not None:
        snapshots = snapshots.filter(project=project)
    if user.is_superuser:
        return snapshots
    return snapshots.filter(project__in=projects_visible_to(user))


def snapshot_get_for_user(user, snapshot_id: int) -> Snapshot:
    snapshot = get_object_or_404(
        Snapshot.objects.select_related("project", "site", "created_by"), pk=snapshot_id
    )
    if not can_see(user, snapshot.project):
        raise PermissionDenied
    return snapshot


def source_servers_for(snapshots) -> dict[tuple[int, str], object]:
    """{(site id, server id): mirrored Server} for the snapshots' source instances, one query."""
    from instances.models import Server

    ids = {s.source_server_openstack_id for s in snapshots if s.source_server_openstack_id}
    servers = Server.objects.filter(openstack_id__in=ids)
    return {(s.site_id, s.openstack_id): s for s in servers}


def snapshot_jobs_for(snapshots) -> dict[tuple[int, str], object]:
    """The unfinished create job behind each snapshot still being made."""
    from portal.models import Job

    ids = {s.openstack_id for s in snapshots}
    jobs = Job.objects.filter(kind="snapshot.create", target_image_id__in=ids).exclude(
        status__in=Job.FINISHED
    )
    return {(j.site_id, j.target_image_id): j for j in jobs}
