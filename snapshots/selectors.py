"""Reads of snapshots, scoped to what a user may see."""

from __future__ import annotations

from django.db.models import QuerySet

from images.models import BootTest
from images.selectors import boot_tests_of
from portal.access import get_visible_or_404, projects_visible_to
from portal.jobs.selectors import unfinished_q
from portal.models import Job
from snapshots.filters import SnapshotFilterSet
from snapshots.models import Snapshot


def snapshot_list(*, user, project=None) -> QuerySet[Snapshot]:
    """Live snapshots of the user's projects (everyone's for a superuser)."""
    snapshots = Snapshot.objects.filter(deleted_at__isnull=True).select_related(
        "project", "site", "created_by"
    )
    if project is not None:
        snapshots = snapshots.filter(project=project)
    return in_my_projects(snapshots, user)


def in_my_projects(queryset: QuerySet, user) -> QuerySet:
    """`in_visible_projects`, with the user's projects read first and written into
    the query as a list of ids. With the subquery inline, neither database knew how
    many projects it named: SQLite walked the whole name index from the top and
    tested each row (a member whose names sort last waited for 50,000 other
    projects' snapshots); with `project IN (1)` it walks that project's own index."""
    if user.is_superuser:
        return queryset
    return queryset.filter(project__in=list(projects_visible_to(user).values_list("pk", flat=True)))


def snapshots_shown(*, user, data, project=None):
    """The rows a snapshot list shows for these filters: the one definition the
    table, its count, "select all matching", the delete confirmation and the
    delete job all use. Returns (all the list could show, filterset, rows)."""
    snapshots = snapshot_list(user=user, project=project)
    filterset = SnapshotFilterSet(data, queryset=snapshots)
    return snapshots, filterset, (filterset.qs if filterset.is_valid() else snapshots.none())


def snapshots_matching(*, data, projects: list[int] | None) -> QuerySet[Snapshot]:
    """What `snapshots_shown` showed, for a job that runs later and as nobody's
    request: live snapshots of the projects the page covered (None: every one,
    the facility view) matching the same filters. Who may delete them is asked
    separately, at the moment of deleting."""
    snapshots = Snapshot.objects.filter(deleted_at__isnull=True).select_related(
        "project", "site", "created_by"
    )
    if projects is not None:
        snapshots = snapshots.filter(project__in=projects)
    filterset = SnapshotFilterSet(data, queryset=snapshots)
    return filterset.qs if filterset.is_valid() else snapshots.none()


def snapshot_get_for_user(user, snapshot_id: int) -> Snapshot:
    """The snapshot, or 404 if the portal never saw it, it is gone, or it is not in
    one of the user's projects."""
    return get_visible_or_404(
        Snapshot.objects.select_related("project", "site", "created_by"), user,
        pk=snapshot_id, deleted_at__isnull=True,
    )  # fmt: skip


def boot_tests_for(snapshots) -> dict[tuple[int, str], BootTest]:
    """{(site id, image id): the snapshot's boot test} for a page of snapshots, one query."""
    return boot_tests_of(snapshots)


def snapshot_jobs_for(snapshots) -> dict[tuple[int | None, str], Job]:
    """The unfinished create job behind each snapshot still being made."""
    ids = {s.openstack_id for s in snapshots}
    # The few unfinished jobs (their index), not every create job ever run.
    jobs = Job.objects.filter(unfinished_q(), kind="snapshot.create", target_image_id__in=ids)
    jobs = jobs.order_by()
    return {(j.site_id, j.target_image_id): j for j in jobs}
