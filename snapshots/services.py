"""Snapshot writes: the checks before anything is submitted, creating and deleting."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.utils import timezone

from instances.models import SNAPSHOT_MAX_RAM_MIB, Server
from instances.services import server_action_check
from portal.access import can_act_on, project_role
from portal.errors import ActionRefused
from portal.jobs import busy_pks, job_create
from portal.models import Job
from snapshots.forms import NAME_MAX, clean_snapshot_name
from snapshots.models import Snapshot

# Nova snapshots the full RAM state; de.NBI limits snapshots to this flavor size.
MAX_SNAPSHOT_RAM_MIB = SNAPSHOT_MAX_RAM_MIB

SNAPSHOT_STATUSES = {"ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED"}


def snapshot_name_taken(*, server: Server, name: str, exclude_job_id: int | None = None) -> bool:
    """Is `name` used by a snapshot of the server's project on its site, or by a
    snapshot job still running for that project? (Case-insensitive.)"""
    in_mirror = Snapshot.objects.filter(
        site=server.site, owner_openstack_id=server.project_openstack_id,
        deleted_at__isnull=True, name_key=name.casefold(),
    ).exists()  # fmt: skip
    if in_mirror:
        return True
    # One indexed question, not every pending job of the project loaded and compared:
    # submitting a workshop's 200 snapshots must not be quadratic.
    pending = Job.objects.filter(
        kind="snapshot.create", site=server.site, project=server.project,
        status__in=(Job.Status.PENDING, Job.Status.RUNNING), params__name_key=name.casefold(),
    )  # fmt: skip
    if exclude_job_id is not None:
        pending = pending.exclude(pk=exclude_job_id)
    return pending.exists()


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


def snapshot_allowed_check(*, server: Server, actor, in_job: bool = False) -> None:
    """The rules about the instance and the actor, whatever the name: the form
    shows these before the user types anything. Inside the job, the job itself
    counts as running on the instance, so only the permission is asked again."""
    if server.snapshot_refusal:
        raise ActionRefused(server.snapshot_refusal, status=400)
    if not in_job:
        server_action_check(server=server, actor=actor, action="snapshot")
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
    return job_create(
        kind="snapshot.create",
        actor=actor,
        idempotency_key=idempotency_key,
        project=server.project,
        site=server.site,
        target_server_id=server.openstack_id,
        params={
            "name": name,
            "name_key": name.casefold(),
            "description": description.strip(),
            "restart": bool(restart),
            "verify": bool(verify),
        },
    )


# --- Deleting ------------------------------------------------------------------


@dataclass(frozen=True)
class DeletePlan:
    deletable: list[Snapshot]
    skipped: list[tuple[Snapshot, str]]  # with the reason


def snapshot_delete_plan(*, snapshots, actor) -> DeletePlan:
    """Split the chosen snapshots into what the actor may delete now and what is
    skipped, with the reason shown to them."""
    snapshots = list(snapshots)
    in_use = busy_pks(snapshots, target="image") | snapshots_being_deleted(snapshots)
    deletable, skipped = [], []
    for snapshot in snapshots:
        if project_role(actor, snapshot.project) is None:
            skipped.append((snapshot, "not in one of your projects"))
        elif not can_act_on(actor, project=snapshot.project, created_by_id=snapshot.created_by_id):
            skipped.append((snapshot, "members may delete only snapshots they created"))
        elif snapshot.protected:
            skipped.append((snapshot, "protected in the cloud"))
        elif snapshot.pk in in_use:
            skipped.append((snapshot, "in use by a running job"))
        elif not snapshot.site.is_reachable:
            skipped.append((snapshot, f"{snapshot.site.display_name} is unreachable"))
        else:
            deletable.append(snapshot)
    return DeletePlan(deletable, skipped)


def snapshots_being_deleted(snapshots) -> set[int]:
    """Pks of those snapshots an unfinished delete job is about to delete."""
    keys = {(s.site_id, s.openstack_id): s.pk for s in snapshots}
    running = Job.objects.filter(kind="snapshot.delete").exclude(status__in=Job.FINISHED)
    busy = set()
    for params in running.values_list("params", flat=True):
        for item in params.get("images", []):
            pk = keys.get((item["site_id"], item["id"]))
            if pk is not None:
                busy.add(pk)
    return busy


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


def snapshot_verify_request(*, snapshot: Snapshot, actor, idempotency_key: str = "") -> Job:
    """ "Verify now": boot a throwaway instance from an existing snapshot."""
    if not can_act_on(actor, project=snapshot.project, created_by_id=snapshot.created_by_id):
        raise ActionRefused(
            "Members may test only snapshots they created; ask a project admin.", status=403
        )
    if snapshot.status != "active":
        raise ActionRefused(f"{snapshot.name} is {snapshot.status}, not active.")
    if not snapshot.site.is_reachable:
        raise ActionRefused(f"{snapshot.site.display_name} is unreachable; try again later.")
    if busy_pks([snapshot], target="image"):
        raise ActionRefused(f"A portal job is working on {snapshot.name}; wait until it ends.")
    return job_create(
        kind="snapshot.verify",
        actor=actor,
        idempotency_key=idempotency_key,
        project=snapshot.project,
        site=snapshot.site,
        target_image_id=snapshot.openstack_id,
        params={"image_id": snapshot.openstack_id, "name": snapshot.name, "verify": True},
    )
