"""Snapshot writes: the checks before anything is submitted, creating and deleting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django import forms
from django.db.models import Q
from django.http import QueryDict
from django.utils import timezone

from instances.models import SNAPSHOT_MAX_RAM_MIB, Server
from instances.services import server_action_check
from portal.access import can_act_on, projects_visible_to
from portal.bulk import (
    MatchingPlan,
    being_deleted_q,
    busy_q,
    changed_since_refusals,
    delete_pending,
    matching_confirmed_at,
    matching_params,
    matching_plan,
    permission_refusals,
    refusal_annotate,
    unreachable_refusals,
)
from portal.errors import ActionRefused
from portal.jobs import busy_pks, job_create
from portal.models import Job, Project
from snapshots.forms import NAME_MAX, clean_snapshot_name
from snapshots.models import Snapshot
from snapshots.selectors import snapshots_matching

# Nova snapshots the full RAM state; de.NBI limits snapshots to this flavor size.
MAX_SNAPSHOT_RAM_MIB = SNAPSHOT_MAX_RAM_MIB

SNAPSHOT_STATUSES = {"ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED"}


def snapshot_name_taken(*, server: Server, name: str, exclude_job_id: int | None = None) -> bool:
    """Is `name` used by a snapshot of the server's project on its site, or by a
    snapshot job still running for that project? (Case-insensitive.)"""
    return bool(_names_taken([(server, name)], exclude_job_id=exclude_job_id))


def snapshot_default_name(server: Server) -> str:
    """A name to suggest: the instance's name and today's date, made unique in the
    project (-2, -3…), e.g. "alpha-web-01-2026-11-28". The user may change it."""
    base = f"{server.name}-{timezone.localdate():%Y-%m-%d}"[: NAME_MAX - 4]
    candidate = base
    for n in range(2, 100):
        if not snapshot_name_taken(server=server, name=candidate):
            return candidate
        candidate = f"{base}-{n}"
    return candidate


def snapshot_create_check(
    *, server: Server, actor, name: str, exclude_job_id: int | None = None
) -> str:
    """Every rule a snapshot request must pass; returns the clean name.

    Runs in the form, again when the request is submitted, and again inside
    the job, so no path around the form can skip it.
    """
    try:
        name = clean_snapshot_name(name)
    except forms.ValidationError as exc:
        raise ActionRefused(exc.messages[0], status=400) from exc
    snapshot_allowed_check(server=server, actor=actor, in_job=exclude_job_id is not None)
    if snapshot_name_taken(server=server, name=name, exclude_job_id=exclude_job_id):
        raise ActionRefused(
            f"Project {server.project} already has a snapshot named “{name}” on "
            f"{server.site.display_name}; choose another name.",
            status=400,
        )
    return name


def snapshot_allowed_check(
    *, server: Server, actor, in_job: bool = False, busy: set[int] | None = None
) -> None:
    """The rules about the instance and the actor, whatever the name: the form
    shows these before the user types anything. Inside the job, the job itself
    counts as running on the instance, so only the permission is asked again."""
    if server.snapshot_refusal:
        raise ActionRefused(server.snapshot_refusal, status=400)
    if server.locked:
        raise ActionRefused(server.lock_refusal)
    if not in_job:
        server_action_check(server=server, actor=actor, action="snapshot", busy=busy)
    elif not can_act_on(actor, project=server.project, created_by_id=server.created_by_id):
        raise ActionRefused("You may no longer act on this instance.", status=403)
    if server.status not in SNAPSHOT_STATUSES:
        raise ActionRefused(f"Cannot snapshot {server.name} while it is {server.status}.")


def snapshot_create_request(
    *,
    server: Server,
    actor,
    name: str,
    description: str = "",
    restart: bool = True,
    verify: bool = False,
    idempotency_key: str = "",
) -> Job:
    """Check everything, then record the stop-then-snapshot job."""
    name = snapshot_create_check(server=server, actor=actor, name=name)
    # At call time: the job kinds' steps import this module's checks.
    from snapshots.jobs import SnapshotCreate

    return SnapshotCreate.create(
        actor=actor,
        idempotency_key=idempotency_key,
        project=server.project,
        site=server.site,
        target_server_id=server.openstack_id,
        params=SnapshotCreate.Params(
            name=name,
            name_key=name.casefold(),
            description=description.strip(),
            restart=bool(restart),
            verify=bool(verify),
        ),
    )


# --- Many at once ----------------------------------------------------------------
#
# "Snapshot selected" on the instance overview: one name pattern, the same rules
# as one snapshot, asked once for all the chosen instances, and one INSERT.

# At most this many instances per request: a workshop's machines fit; the rules
# are asked for all of them while the user waits.
SNAPSHOT_MANY_MAX = 500
NAME_PATTERN_DEFAULT = "{instance}-{date}"


@dataclass(frozen=True)
class PlannedSnapshot:
    server: Server
    name: str
    refusal: str  # "" when the snapshot will be made


@dataclass(frozen=True)
class ManySnapshotPlan:
    pattern: str
    rows: list[PlannedSnapshot]

    @property
    def will_snapshot(self) -> list[PlannedSnapshot]:
        return [row for row in self.rows if not row.refusal]

    @property
    def skipped(self) -> list[PlannedSnapshot]:
        return [row for row in self.rows if row.refusal]


def snapshot_name_pattern_check(pattern: str) -> str:
    """The trimmed pattern; it must name each instance, or every snapshot of the
    batch would get the same name."""
    pattern = (pattern or "").strip()
    if "{instance}" not in pattern:
        raise ActionRefused(
            "The name pattern must contain {instance}, so that each snapshot gets its own "
            "name (e.g. {instance}-{date}).",
            status=400,
        )
    return pattern


def snapshot_name_from_pattern(pattern: str, server: Server) -> str:
    return pattern.replace("{instance}", server.name).replace(
        "{date}", f"{timezone.localdate():%Y-%m-%d}"
    )


def _names_taken(
    wanted: list[tuple[Server, str]], *, exclude_job_id: int | None = None
) -> set[tuple[int, str]]:
    """(server pk, name) pairs whose name its project already uses on its site, in
    the mirror or in an unfinished snapshot job (other than `exclude_job_id`): two
    indexed queries for any number. Submitting a workshop's 200 snapshots must not
    load every pending job of the project and compare names."""
    keys = {name.casefold() for _, name in wanted}
    sites = {server.site_id for server, _ in wanted}
    in_mirror = set(
        Snapshot.objects.filter(
            site__in=sites, deleted_at__isnull=True, name_key__in=keys
        ).values_list("site_id", "owner_openstack_id", "name_key")
    )
    pending = Job.objects.filter(
        kind="snapshot.create", site__in=sites, params__name_key__in=keys,
        status__in=(Job.Status.PENDING, Job.Status.RUNNING),
    )  # fmt: skip
    if exclude_job_id is not None:
        pending = pending.exclude(pk=exclude_job_id)
    in_jobs = set(pending.values_list("site_id", "project_id", "params__name_key"))
    return {
        (server.pk, name)
        for server, name in wanted
        if (server.site_id, server.project_openstack_id, name.casefold()) in in_mirror
        or (server.site_id, server.project_id, name.casefold()) in in_jobs
    }


def snapshot_create_many_plan(*, servers: list[Server], actor, pattern: str) -> ManySnapshotPlan:
    """For each chosen instance, the snapshot's name or why it is skipped: the
    rules of snapshot_create_check, asked with a few queries for all of them."""
    pattern = snapshot_name_pattern_check(pattern)
    busy = busy_pks(servers, target="server")
    named = [(server, snapshot_name_from_pattern(pattern, server)) for server in servers]
    taken = _names_taken(named)
    rows, used = [], set()
    for server, name in named:
        try:
            name = clean_snapshot_name(name)
            key = (server.site_id, server.project_id, name.casefold())
            snapshot_allowed_check(server=server, actor=actor, busy=busy)
            if (server.pk, name) in taken:
                raise ActionRefused(f"Project {server.project} already has a snapshot “{name}”.")
            if key in used:
                raise ActionRefused(f"“{name}” is the name of another snapshot of this batch.")
        except forms.ValidationError as invalid:
            rows.append(PlannedSnapshot(server, name, invalid.messages[0]))
        except ActionRefused as refused:
            rows.append(PlannedSnapshot(server, name, refused.message))
        else:
            used.add(key)
            rows.append(PlannedSnapshot(server, name, ""))
    return ManySnapshotPlan(pattern=pattern, rows=rows)


def snapshot_create_many_request(
    *, servers: list[Server], actor, pattern: str, restart: bool = True, idempotency_key: str = ""
) -> tuple[list[Job], ManySnapshotPlan]:
    """Plan, then record one stop-then-snapshot job per instance that passes, in
    one INSERT. Their success emails are left out (a workshop's 100 would bury
    the one that matters); a failure is still mailed."""
    from snapshots.jobs import SnapshotCreate  # at call time, as above

    plan = snapshot_create_many_plan(servers=servers, actor=actor, pattern=pattern)
    targets = [
        {
            "project": row.server.project,
            "site": row.server.site,
            "target_server_id": row.server.openstack_id,
            "params": SnapshotCreate.Params(
                name=row.name, name_key=row.name.casefold(), restart=bool(restart), batch=True
            ),
        }
        for row in plan.will_snapshot
    ]
    if not targets:
        return [], plan
    jobs = SnapshotCreate.create_many(actor=actor, targets=targets, idempotency_key=idempotency_key)
    return jobs, plan


# --- Deleting ------------------------------------------------------------------
#
# One set of rules decides what a delete skips, as filters (portal.bulk): the
# confirmation of ticked rows and of "all matching" and every batch of the job
# ask the same ones, in this order.


def snapshot_delete_refusals(
    actor, *, seen: bool = False, job: Job | None = None, confirmed_at: datetime | None = None
) -> list[tuple[str, Q]]:
    """[(reason, condition)]: why `actor` may not delete a snapshot now. `seen`: the
    rows are from the actor's own list (see permission_refusals). Inside a delete
    `job`, only older delete jobs count as "already being deleted" (two
    overlapping jobs: the first one deletes, the second skips). `confirmed_at`
    (or the "all matching" `job`'s): rows changed since are skipped."""
    refusals = permission_refusals(
        actor,
        seen=seen,
        outside="not in one of your projects",
        not_yours="members may delete only snapshots they created",
    )
    refusals.append(("protected in the cloud", Q(protected=True)))
    deleting = snapshots_being_deleted_q(before=job)
    if deleting is not None:
        refusals.append(("already being deleted", deleting))
    busy = busy_q(target="image")
    if busy is not None:
        refusals.append(("in use by a running job", busy))
    if job is not None:
        confirmed_at = matching_confirmed_at(job)
    return refusals + changed_since_refusals(confirmed_at) + unreachable_refusals()


def snapshots_being_deleted_q(*, before: Job | None = None) -> Q | None:
    """The snapshots unfinished delete jobs (older than `before`) will still delete,
    as a filter; None when no such job runs."""
    return being_deleted_q(
        kind="snapshot.delete", key="images", pending=snapshot_delete_pending, before=before
    )


def snapshots_being_deleted(snapshots) -> set[int]:
    """Pks of those snapshots (a page of them) an unfinished delete job will delete."""
    deleting = snapshots_being_deleted_q()
    if deleting is None or not snapshots:
        return set()
    rows = Snapshot.objects.filter(deleting, pk__in=[s.pk for s in snapshots])
    return set(rows.values_list("pk", flat=True))


@dataclass(frozen=True)
class DeletePlan:
    deletable: list[Snapshot]
    skipped: list[tuple[Snapshot, str]]  # with the reason


def snapshot_delete_plan(*, snapshots, actor) -> DeletePlan:
    """Split the chosen snapshots (ticked ones: a few hundred at most) into what
    the actor may delete now and what is skipped, with the reason shown to them."""
    pks = [s.pk for s in snapshots]
    rows = Snapshot.objects.filter(pk__in=pks).select_related("project", "site", "created_by")
    rows = refusal_annotate(rows, snapshot_delete_refusals(actor)).order_by("-created_at")
    deletable, skipped = [], []
    for snapshot in rows:
        if snapshot.refusal:
            skipped.append((snapshot, snapshot.refusal))
        else:
            deletable.append(snapshot)
    return DeletePlan(deletable, skipped)


def snapshot_delete_request(
    *, snapshots, actor, idempotency_key: str = ""
) -> tuple[Job | None, DeletePlan]:
    """Record one job that deletes every deletable snapshot; report what was skipped."""
    plan = snapshot_delete_plan(snapshots=snapshots, actor=actor)
    if not plan.deletable:
        return None, plan
    sites = {s.site_id for s in plan.deletable}
    projects = {s.project_id for s in plan.deletable}
    only = plan.deletable[0]
    job = job_create(
        kind="snapshot.delete",
        actor=actor,
        idempotency_key=idempotency_key,
        project=only.project if len(projects) == 1 else None,
        site=only.site if len(sites) == 1 else None,
        target_image_id=only.openstack_id if len(plan.deletable) == 1 else "",
        params={
            "images": [
                {"id": s.openstack_id, "name": s.name, "site_id": s.site_id} for s in plan.deletable
            ],
            "skipped": [{"name": s.name, "reason": reason} for s, reason in plan.skipped],
        },
    )
    return job, plan


# "Select all matching": the job carries the filter and the confirmation's moment,
# not the ids (see portal.bulk).


def snapshot_delete_bound() -> int:
    """The highest snapshot row id now: a job confirmed now never touches a row
    synced later (a snapshot made after the confirmation), whatever it matches."""
    return Snapshot.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def snapshot_delete_matching_plan(
    *, rows, ordered, actor, upto: int, walk=None, confirmed_at: datetime | None = None
) -> MatchingPlan:
    """Counts of what deleting every row of `rows` (a list's filter) would delete
    and skip, by reason, and a sample in the list's order (`ordered`; `walk`: the
    whole list in that order, see matching_plan). `confirmed_at`: when the
    confirmation was shown, once it has been (rows changed since are skipped)."""
    # `rows` come from the actor's list
    refusals = snapshot_delete_refusals(actor, seen=True, confirmed_at=confirmed_at)
    return matching_plan(rows, refusals, ordered=ordered, upto=upto, walk=walk)


def snapshot_delete_matching_request(
    *,
    data,
    project: Project | None,
    actor,
    upto: int,
    confirmed_at: datetime,
    rows,
    idempotency_key: str = "",
) -> tuple[Job | None, MatchingPlan]:
    """Record one job that deletes, in batches, every snapshot the list with these
    filters (`data`, the list's query as pairs) showed when the confirmation was
    shown (`confirmed_at`), up to row `upto`, and that is unchanged since.
    The page's scope is kept: its project, or the projects the actor saw (every
    one for a superuser's facility view)."""
    upto = min(upto, snapshot_delete_bound())
    plan = snapshot_delete_matching_plan(
        rows=rows, ordered=rows, actor=actor, upto=upto, confirmed_at=confirmed_at
    )
    if not plan.will_delete:
        return None, plan
    if project is not None:
        scope = [project.pk]
    elif actor.is_superuser:
        scope = None
    else:
        scope = sorted(projects_visible_to(actor).values_list("pk", flat=True))
    job = job_create(
        kind="snapshot.delete",
        actor=actor,
        idempotency_key=idempotency_key,
        project=project,
        params=matching_params(
            data=data, scope=scope, upto=upto, confirmed_at=confirmed_at, plan=plan
        ),
    )
    return job, plan


def _selection(job: Job):
    """What a "delete all matching" job's filter matches now, within its scope and bound."""
    spec = job.params["matching"]
    data = QueryDict(mutable=True)
    for key, value in spec["query"]:
        data.appendlist(key, value)
    rows = snapshots_matching(data=data, projects=spec["projects"])
    return rows.filter(pk__lte=spec["upto"])


def snapshot_delete_pending(job: Job):
    """The rows a "delete all matching" job has still to look at (past its cursor)
    that its actor may delete: what other deletes count as "already being deleted"."""
    return delete_pending(_selection(job), job)


def snapshot_delete_batch(job: Job, after: int, size: int) -> list[dict]:
    """The next `size` rows of the job's selection after row `after`, in id order,
    each with the reason it is skipped now ("" when it is deleted): the rules,
    and any change since the confirmation."""
    rows = _selection(job).filter(pk__gt=after).order_by("pk")
    rows = refusal_annotate(rows, snapshot_delete_refusals(job.actor, job=job))
    return [
        {"pk": pk, "id": openstack_id, "site_id": site_id, "name": name, "refusal": refusal}
        for pk, openstack_id, site_id, name, refusal in rows.values_list(
            "pk", "openstack_id", "site_id", "name", "refusal"
        )[:size]
    ]


def snapshot_verify_request(*, snapshot: Snapshot, actor, idempotency_key: str = "") -> Job:
    """ "Verify now": boot a throwaway instance from an existing snapshot."""
    if not can_act_on(actor, project=snapshot.project, created_by_id=snapshot.created_by_id):
        raise ActionRefused(
            "Members may test only snapshots they created; ask a project admin.", status=403
        )
    if snapshot.status != "active":
        raise ActionRefused(f"{snapshot.name} is {snapshot.status}, not active.")
    if snapshot.is_volume_snapshot:
        raise ActionRefused(
            f"{snapshot.name} was made from an instance booted from a volume: a test boot "
            "would make volumes the portal cannot clean up."
        )
    if not snapshot.site.is_reachable:
        raise ActionRefused(f"{snapshot.site.display_name} is unreachable; try again later.")
    if busy_pks([snapshot], target="image"):
        raise ActionRefused(f"A portal job is working on {snapshot.name}; wait until it ends.")
    from snapshots.jobs import SnapshotVerify  # at call time, as above

    return SnapshotVerify.create(
        actor=actor,
        idempotency_key=idempotency_key,
        project=snapshot.project,
        site=snapshot.site,
        target_image_id=snapshot.openstack_id,
        params=SnapshotVerify.Params(image_id=snapshot.openstack_id, name=snapshot.name),
    )
