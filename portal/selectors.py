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


def jobs_newest(*, user, limit: int) -> list[Job]:
    """The `limit` newest jobs of `job_list`, newest first (ties: the higher id).

    A member's are read scope by scope, each project's and their own jobs without
    a project, from that scope's index and stopped after `limit`; then the newest
    of those. As one query, "any of these projects, or mine, newest first" has no
    index to walk in that order: the database walked every job's date until it
    found `limit` of theirs (all of them, for a member of a small project)."""
    jobs = Job.objects.select_related("actor", "project", "site").order_by("-created_at", "-id")
    if user.is_superuser:
        return list(jobs[:limit])
    scopes = [Q(project_id=pk) for pk in projects_visible_to(user).values_list("pk", flat=True)]
    scopes.append(Q(project__isnull=True, actor=user))
    ids: list[int] = []
    for scope in scopes:
        newest = Job.objects.filter(scope).order_by("-created_at", "-id")
        ids += newest.values_list("pk", flat=True)[:limit]
    return list(jobs.filter(pk__in=ids)[:limit])


def job_get_for_user(user, job_id: int) -> Job:
    """The job, or 404 if there is none or the user may not see it (`job_list`):
    the same answer either way, so job ids of other projects stay unknown."""
    return get_object_or_404(job_list(user=user), pk=job_id)
