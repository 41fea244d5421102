"""Writes to the instance mirror, and the portal's actions on instances."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth import get_user_model

from instances.models import Flavor, Server
from portal import cloud
from portal.errors import ActionRefused
from portal.mirror import UpsertResult, mirror_upsert
from portal.models import Project, Site

# Metadata key the portal writes on what it creates: the portal user's name.
CREATED_BY_KEY = "portal_user"


def _user_ids_by_name(names: Iterable[str]) -> dict[str, int]:
    wanted = {n for n in names if n}
    if not wanted:
        return {}
    User = get_user_model()
    return dict(User.objects.filter(username__in=wanted).values_list("username", "pk"))


def _project_ids(site: Site) -> dict[str, int]:
    return dict(Project.objects.filter(site=site).values_list("openstack_id", "pk"))


def server_fields(server: cloud.Server, *, projects: dict[str, int], users: dict[str, int]) -> dict:
    return {
        "name": server.name,
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
        "created_by_id": users.get(server.metadata.get(CREATED_BY_KEY, "")),
        "fault_message": server.fault_message,
        "created_at": server.created_at,
        "updated_at": server.updated_at,
    }


def servers_store(site: Site, servers: list[cloud.Server], *, complete: bool) -> UpsertResult:
    """Upsert servers as listed by the cloud. DELETED ones (from changes-since) are marked."""
    projects = _project_ids(site)
    users = _user_ids_by_name(s.metadata.get(CREATED_BY_KEY, "") for s in servers)
    live = [s for s in servers if not s.is_deleted]
    return mirror_upsert(
        Server,
        site=site,
        rows={s.id: server_fields(s, projects=projects, users=users) for s in live},
        deleted_ids={s.id for s in servers if s.is_deleted},
        complete=complete,
    )


def servers_sync(site: Site, *, changes_since: datetime | None) -> UpsertResult:
    servers = cloud.server_list(site.name, changes_since=changes_since)
    return servers_store(site, servers, complete=changes_since is None)


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


# --- Actions -----------------------------------------------------------------


def server_action_check(*, server: Server, actor, action: str) -> None:
    """Raise ActionRefused unless `actor` may run `action` on `server` now."""
    from instances.selectors import server_busy_ids
    from portal.access import can_act_on, can_see

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
    if server.pk in server_busy_ids([server]):
        raise ActionRefused(f"Another portal job is running on {server.name}; wait until it ends.")
    allowed = {"stop": {"ACTIVE"}, "start": {"SHUTOFF"}}.get(action)
    if allowed is not None and server.status not in allowed:
        raise ActionRefused(f"Cannot {action} {server.name} while it is {server.status}.")


def server_power_request(*, server: Server, actor, action: str):
    """Check, then record a `server.stop` or `server.start` job."""
    from portal.jobs import job_create

    server_action_check(server=server, actor=actor, action=action)
    return job_create(
        kind=f"server.{action}", actor=actor, project=server.project, site=server.site,
        target_server_id=server.openstack_id,
    )  # fmt: skip
