"""Reads of portal-wide rows (jobs), scoped to what a user may see."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from portal.access import projects_visible_to
from portal.models import Job


def job_list(*, user) -> QuerySet[Job]:
    """The jobs of the user's projects (every one for a superuser): visibility
    follows membership, so someone removed from a project no longer sees the
    jobs they started there. A job without a project (a bulk action that spanned
    several, or whose project is gone) has no membership to follow: its actor
    still sees it."""
    jobs = Job.objects.select_related("actor", "project", "site")
    if user.is_superuser:
        return jobs
    return jobs.filter(
        Q(project__in=projects_visible_to(user)) | Q(project__isnull=True, actor=user)
    )


def job_get_for_user(user, job_id: int) -> Job:
    """The job, or 404 if there is none or the user may not see it (`job_list`):
    the same answer either way, so job ids of other projects stay unknown."""
    return get_object_or_404(job_list(user=user), pk=job_id)
