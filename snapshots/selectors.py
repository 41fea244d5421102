"""Reads of snapshots, scoped to what a user may see."""

from __future__ import annotations

from django.db.models import QuerySet

from portal.access import in_visible_projects
from portal.models import Job
from snapshots.models import Snapshot


def snapshot_list(*, user, project=None) -> QuerySet[Snapshot]:
    """Live snapshots of the user's projects (everyone's for a superuser)."""
    snapshots = Snapshot.objects.filter(deleted_at__isnull=True).select_related(
        "project", "site", "created_by"
    )
    if project is not None:
        snapshots = snapshots.filter(project=project)
    return in_visible_projects(snapshots, user)


def snapshot_jobs_for(snapshots) -> dict[tuple[int, str], Job]:
    """The unfinished create job behind each snapshot still being made."""
    ids = {s.openstack_id for s in snapshots}
    jobs = Job.objects.filter(kind="snapshot.create", target_image_id__in=ids).exclude(
        status__in=Job.FINISHED
    )
    return {(j.site_id, j.target_image_id): j for j in jobs}
