"""Writes to the instance mirror, and the portal's actions on instances."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from instances.models import Flavor, Server
from portal import cloud
from portal.access import can_act_on, can_see
from portal.errors import ActionRefused
from portal.jobs import busy_pks, job_create
from portal.mirror import (
    CREATED_BY_KEY,
    WRITE_BATCH,
    MirrorWriter,
    UpsertResult,
    authors_of,
    batched,
    mirror_upsert,
    project_ids,
    row_fingerprint,
)
from portal.models import Project, Site


def server_fields(
    server: cloud.CloudServer, *, projects: dict[str, int], authors: dict[str, int]
) -> dict:
    return {
        "name": server.name,
        "name_key": server.name.casefold()[:255],
        "project_id": projects.get(server.project_id),
        "project_openstack_id": server.project_id,
        "status": server.status,
        "task_state": server.task_state or "",
        "vm_state": server.vm_state or "",
        "power_state": server.power_state,
        "flavor_name": server.flavor_name,
        "flavor_vcpus": server.flavor_vcpus,
        "flavor_ram_mib": server.flavor_ram_mib,
        "flavor_disk_gb": server.flavor_disk_gb,
        "image_openstack_id": server.image_id,
        "addresses": list(server.addresses),
        "metadata": dict(server.metadata),
        "openstack_user_id": server.user_id,
        "created_by_id": authors.get(server.id),
        "created_by_hint": str(server.metadata.get(CREATED_BY_KEY, ""))[:150],
        "fault_message": server.fault_message,
        "created_at": server.created_at,
        "updated_at": server.updated_at,
    }


def servers_store(
    site: Site, servers: Iterable[cloud.CloudServer], *, complete: bool
) -> UpsertResult:
    """Upsert servers as listed by the cloud. DELETED ones (from changes-since) are marked.

    `servers` may still be arriving (a full listing's pages): rows are built,
    hashed and written a batch at a time, while the gateway fetches the next
    pages."""
    projects = project_ids(site)
    if complete:
        authors, ids = authors_of(site), None
    else:
        servers = list(servers)
        authors = authors_of(site, (s.id for s in servers if not s.is_deleted))
        ids = {s.id for s in servers}

    with MirrorWriter(Server, site=site, complete=complete, ids=ids) as writer:
        for batch in batched(servers, WRITE_BATCH):
            deleted = {s.id for s in batch if s.is_deleted}
            rows = {
                s.id: server_fields(s, projects=projects, authors=authors)
                for s in batch
                if not s.is_deleted
            }
            fingerprints = {i: row_fingerprint(fields) for i, fields in rows.items()}
            writer.write(rows, fingerprints=fingerprints, deleted_ids=deleted)
        return writer.finish()


def servers_sync(site: Site, *, changes_since: datetime | None) -> UpsertResult:
    pages = cloud.server_pages(site.name, changes_since=changes_since)
    return servers_store(
        site, (server for page in pages for server in page), complete=changes_since is None
    )


def server_refresh(site: Site, *, openstack_id: str) -> Server | None:
    """Targeted refresh of one server the portal just touched."""
    try:
        server = cloud.server_get(site.name, server_id=openstack_id)
    except cloud.NotFound:
        mirror_upsert(Server, site=site, rows={}, deleted_ids={openstack_id})
    else:
        servers_store(site, [server], complete=False)
    return Server.objects.filter(site=site, openstack_id=openstack_id).first()


def flavors_sync(site: Site) -> UpsertResult:
    flavors = cloud.flavor_list(site.name)
    rows = {
        f.id: {
            "name": f.name,
            "vcpus": f.vcpus,
            "ram_mib": f.ram_mib,
            "disk_gb": f.disk_gb,
            "is_public": f.is_public,
        }
        for f in flavors
    }
    return mirror_upsert(Flavor, site=site, rows=rows, complete=True)


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


# --- Actions -----------------------------------------------------------------


def server_action_check(*, server: Server, actor, action: str) -> None:
    """Raise ActionRefused unless `actor` may run `action` on `server` now."""
    if not can_see(actor, server.project):
        raise ActionRefused("You are not a member of this instance's project.", status=403)
    if not can_act_on(actor, project=server.project, created_by_id=server.created_by_id):
        raise ActionRefused(
            "Members may act only on instances they created; ask a project admin.", status=403
        )
    if server.is_deleted:
        raise ActionRefused(f"{server.name} no longer exists in the cloud.")
    if not server.site.is_reachable:
        raise ActionRefused(
            f"{server.site.display_name} is unreachable since "
            f"{server.site.unreachable_since:%Y-%m-%d %H:%M}; try again when it answers."
        )
    if server.task_state:
        raise ActionRefused(f"{server.name} is busy ({server.task_label}); wait until it is done.")
    if busy_pks([server], target="server"):
        raise ActionRefused(f"Another portal job is running on {server.name}; wait until it ends.")
    allowed = {"stop": {"ACTIVE"}, "start": {"SHUTOFF"}}.get(action)
    if allowed is not None and server.status not in allowed:
        raise ActionRefused(f"Cannot {action} {server.name} while it is {server.status}.")


def server_power_request(*, server: Server, actor, action: str, idempotency_key: str = ""):
    """Check, then record a `server.stop` or `server.start` job."""
    server_action_check(server=server, actor=actor, action=action)
    return job_create(
        kind=f"server.{action}", actor=actor, project=server.project, site=server.site,
        target_server_id=server.openstack_id, idempotency_key=idempotency_key,
    )  # fmt: skip


# --- Deleting -----------------------------------------------------------------


@dataclass(frozen=True)
class ServerDeletePlan:
    deletable: list[Server]
    skipped: list[tuple[Server, str]]  # with the reason shown to the user


def server_delete_plan(*, servers, actor) -> ServerDeletePlan:
    """Split the chosen servers into what the actor may delete now and what is
    skipped, with the reason (the same rules as every other action)."""
    servers = list(servers)
    busy = busy_pks(servers, target="server")
    deletable, skipped = [], []
    for server in servers:
        if not can_see(actor, server.project):
            skipped.append((server, "not in one of your projects"))
        elif not can_act_on(actor, project=server.project, created_by_id=server.created_by_id):
            skipped.append((server, "members may delete only instances they created"))
        elif server.is_deleted:
            skipped.append((server, "already deleted"))
        elif server.pk in busy:
            skipped.append((server, "a portal job is working on it"))
        elif not server.site.is_reachable:
            skipped.append((server, f"{server.site.display_name} is unreachable"))
        else:
            deletable.append(server)
    return ServerDeletePlan(deletable, skipped)


def server_delete_request(
    *, servers, actor, idempotency_key: str = ""
) -> tuple[object | None, ServerDeletePlan]:
    """Record one job deleting every deletable server (in batches); report the skipped."""
    plan = server_delete_plan(servers=servers, actor=actor)
    if not plan.deletable:
        return None, plan
    only = plan.deletable[0]
    one_project = len({s.project_id for s in plan.deletable}) == 1
    one_site = len({s.site_id for s in plan.deletable}) == 1
    job = job_create(
        kind="instances.delete",
        actor=actor,
        idempotency_key=idempotency_key,
        project=only.project if one_project else None,
        site=only.site if one_site else None,
        target_server_id=only.openstack_id if len(plan.deletable) == 1 else "",
        params={
            "servers": [
                {"id": s.openstack_id, "name": s.name, "site_id": s.site_id} for s in plan.deletable
            ],
            "skipped": [{"name": s.name, "reason": reason} for s, reason in plan.skipped],
        },
    )
    return job, plan
