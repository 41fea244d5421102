"""Snapshot writes: the checks before anything is submitted, creating and deleting."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from images.services import image_refresh
from instances.models import Server, parked_q
from instances.services import server_action_check
from portal import cloud
from portal.access import can_act_on
from portal.bulk.delete import BulkDelete, DeletePlan
from portal.errors import ActionRefused
from portal.jobs import busy_pks
from portal.models import Job
from snapshots.forms import NAME_MAX, clean_snapshot_name
from snapshots.models import Snapshot
from snapshots.rules import snapshot_refusal
from snapshots.selectors import snapshots_matching

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
    *,
    server: Server,
    actor,
    name: str,
    exclude_job_id: int | None = None,
    name_taken: bool | None = None,
) -> str:
    """Every rule a snapshot request must pass; returns the clean name.

    Runs in the form, again when the request is submitted, and again inside
    the job, so no path around the form can skip it. `name_taken`: the name rule's
    answer when read already (snapshot_names_taken_by_jobs, for a batch of jobs).
    """
    try:
        name = clean_snapshot_name(name)
    except forms.ValidationError as exc:
        raise ActionRefused(exc.messages[0], status=400) from exc
    snapshot_allowed_check(server=server, actor=actor, in_job=exclude_job_id is not None)
    if name_taken is None:
        name_taken = snapshot_name_taken(server=server, name=name, exclude_job_id=exclude_job_id)
    if name_taken:
        raise ActionRefused(
            gettext(
                "Project %(project)s already has a snapshot named “%(name)s” on "
                "%(site)s; choose another name."
            )
            % {"project": server.project, "name": name, "site": server.site.display_name},
            status=400,
        )
    return name


def snapshot_allowed_check(
    *, server: Server, actor, in_job: bool = False, busy: set[int] | None = None
) -> None:
    """The rules about the instance and the actor, whatever the name: the form
    shows these before the user types anything. Inside the job, the job itself
    counts as running on the instance, so only the permission is asked again."""
    if refusal := snapshot_refusal(server):
        raise ActionRefused(refusal, status=400)
    if server.locked:
        raise ActionRefused(server.lock_refusal)
    if not in_job:
        server_action_check(server=server, actor=actor, action="snapshot", busy=busy)
    elif not can_act_on(actor, project=server.project, created_by_id=server.created_by_id):
        raise ActionRefused(gettext("You may no longer act on this instance."), status=403)
    if server.status not in SNAPSHOT_STATUSES:
        raise ActionRefused(
            gettext("Cannot snapshot %(server)s while it is %(status)s.")
            % {"server": server.name, "status": server.status}
        )


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
            gettext(
                "The name pattern must contain {instance}, so that each snapshot gets its own "
                "name (e.g. {instance}-{date})."
            ),
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
    taken = snapshot_names_taken_by_jobs(
        [(server, name, exclude_job_id) for server, name in wanted]
    )
    return {
        (server.pk, name)
        for (server, name), is_taken in zip(wanted, taken, strict=True)
        if is_taken
    }


def snapshot_names_taken_by_jobs(wanted: list[tuple[Server, str, int | None]]) -> list[bool]:
    """For each (server, name, job id or None): is the name used by a snapshot of the
    server's project on its site, in the mirror or by an unfinished snapshot job
    other than that job? Two indexed queries for any number: a batch of jobs at
    their check asks once, not twice each."""
    keys = {name.casefold() for _, name, _ in wanted}
    sites = {server.site_id for server, _, _ in wanted}
    in_mirror = set(
        Snapshot.objects.filter(site__in=sites, deleted_at__isnull=True, name_key__in=keys)
        .order_by()
        .values_list("site_id", "owner_openstack_id", "name_key")
    )
    pending = Job.objects.filter(
        kind="snapshot.create", name_key__in=keys, site__in=sites,
        status__in=(Job.Status.PENDING, Job.Status.RUNNING),
    ).order_by()  # fmt: skip
    in_jobs: dict[tuple[int, int | None, str], set[int]] = {}
    for pk, site_id, project_id, key in pending.values_list(
        "pk", "site_id", "project_id", "name_key"
    ):
        in_jobs.setdefault((site_id, project_id, key), set()).add(pk)
    return [
        (server.site_id, server.project_openstack_id, name.casefold()) in in_mirror
        or bool(in_jobs.get((server.site_id, server.project_id, name.casefold()), set()) - {job_id})
        for server, name, job_id in wanted
    ]


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
                raise ActionRefused(
                    gettext("Project %(project)s already has a snapshot “%(name)s”.")
                    % {"project": server.project, "name": name}
                )
            if key in used:
                raise ActionRefused(
                    gettext("“%(name)s” is the name of another snapshot of this batch.")
                    % {"name": name}
                )
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
# The bulk delete of snapshots, declared (portal.bulk.delete): ticked ones or all
# a list's filter matches, skipped by the same rules, in the same order.


def _parked_disk() -> Q:
    """A parked machine's saved disk: the "<name>-shelved" image Nova made of a server
    that is shelved now. Deleting it would lose the machine (Nova unshelves from it)."""
    parked = Server.objects.filter(
        parked_q(), site_id=OuterRef("site_id"), openstack_id=OuterRef("source_server_openstack_id")
    )
    # Parked machines are few: the list of their ids (from their own index) lets
    # the database look their disks up by the source-server index, where the check
    # per snapshot alone read every snapshot a bulk delete's confirmation counts.
    parked_ids = Server.objects.filter(parked_q()).values("openstack_id")
    return Q(source_server_openstack_id__in=parked_ids) & Q(
        Exists(parked), name__endswith="-shelved"
    )


SNAPSHOT_DELETE = BulkDelete(
    model=Snapshot,
    kind="snapshot.delete",
    key="images",
    target="image",
    noun=gettext_noop("snapshot"),
    nouns=gettext_noop("snapshots"),
    not_yours=gettext_noop("members may delete only snapshots they created"),
    rules=(
        (gettext_noop("protected in the cloud"), Q(protected=True)),
        (
            gettext_noop("the saved disk of a parked machine: resume or delete the machine"),
            _parked_disk(),
        ),
    ),
    busy=gettext_noop("in use by a running job"),
    matching=snapshots_matching,
    cloud_delete=lambda site, image_id: cloud.image_delete(site, image_id=image_id),
    refresh=lambda site, image_id: image_refresh(site, openstack_id=image_id),
    batch=20,  # images deleted per task run
    plan_order=("-created_at",),
)


def snapshots_being_deleted(snapshots) -> set[int]:
    """Pks of those snapshots (a page of them) an unfinished delete job will delete."""
    return SNAPSHOT_DELETE.being_deleted(snapshots)


def snapshot_delete_request(
    *, snapshots, actor, idempotency_key: str = ""
) -> tuple[Job | None, DeletePlan]:
    """Record one job that deletes every deletable snapshot; report what was skipped."""
    return SNAPSHOT_DELETE.request(rows=snapshots, actor=actor, idempotency_key=idempotency_key)


def snapshot_verify_request(*, snapshot: Snapshot, actor, idempotency_key: str = "") -> Job:
    """ "Verify now": boot a throwaway instance from an existing snapshot."""
    if not can_act_on(actor, project=snapshot.project, created_by_id=snapshot.created_by_id):
        raise ActionRefused(
            gettext("Members may test only snapshots they created; ask a project admin."),
            status=403,
        )
    if snapshot.status != "active":
        raise ActionRefused(
            gettext("%(snapshot)s is %(status)s, not active.")
            % {"snapshot": snapshot.name, "status": snapshot.status}
        )
    if snapshot.is_volume_snapshot:
        raise ActionRefused(
            gettext(
                "%(snapshot)s was made from an instance booted from a volume: a test boot "
                "would make volumes the portal cannot clean up."
            )
            % {"snapshot": snapshot.name}
        )
    if not snapshot.site.is_reachable:
        raise ActionRefused(
            gettext("%(site)s is unreachable; try again later.")
            % {"site": snapshot.site.display_name}
        )
    if busy_pks([snapshot], target="image"):
        raise ActionRefused(
            gettext("A portal job is working on %(snapshot)s; wait until it ends.")
            % {"snapshot": snapshot.name}
        )
    from snapshots.jobs import SnapshotVerify  # at call time, as above

    return SnapshotVerify.create(
        actor=actor,
        idempotency_key=idempotency_key,
        project=snapshot.project,
        site=snapshot.site,
        target_image_id=snapshot.openstack_id,
        params=SnapshotVerify.Params(image_id=snapshot.openstack_id, name=snapshot.name),
    )
