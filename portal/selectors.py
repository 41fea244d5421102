"""Reads of portal-wide rows (jobs), scoped to what a user may see."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from portal.access import can_see, projects_visible_to
from portal.models import Job


def job_list(*, user) -> QuerySet[Job]:
    jobs = Job.objects.select_related("actor", "project", "site")
    if user.is_superuser:
        return jobs
    return jobs.filter(Q(actor=user) | Q(project__in=projects_visible_to(user)))


def job_get_for_user(user, job_id: int) -> Job:
    job = get_object_or_404(Job.objects.select_related("actor", "project", "site"), pk=job_id)
    if job.actor_id != user.pk and not can_see(user, job.project):
        raise PermissionDenied
    return job
