"""Writes to the instance mirror, and the portal's actions on instances."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.http import QueryDict
from django.utils import timezone

from instances.models import Flavor, Network, Server
from instances.selectors import servers_matching
from portal import cloud
from portal.access import can_act_on, can_see, projects_visible_to
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
from portal.mirror import (
    CREATED_BY_KEY,
    WRITE_BATCH,
    MirrorWriter,
    NewestSeen,
    UpsertResult,
    authors_of,
    batched,
    mirror_row_write,
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
        "locked": server.locked,
        "locked_reason": server.locked_reason[:255],
        "created_at": server.created_at,
        "updated_at": server.updated_at,
    }


def servers_store(
    site: Site,
    servers: Iterable[cloud.CloudServer],
    *,
    complete: bool,
    observed_at: datetime | None = None,
) -> UpsertResult:
    """Upsert servers as listed by the cloud (at `observed_at`: see MirrorWriter).
    DELETED ones (from changes-since) are marked.

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

    writer = MirrorWriter(Server, site=site, complete=complete, ids=ids, observed_at=observed_at)
    with writer:
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


def servers_sync(
    site: Site, *, changes_since: datetime | None, seen: NewestSeen | None = None
) -> UpsertResult:
    """`seen` learns the newest `updated_at` listed (the cloud's clock). A row a job
    or the watcher refreshed after this listing began keeps its newer news."""
    asked = timezone.now()
    pages = cloud.server_pages(site.name, changes_since=changes_since)
    servers = (server for page in pages for server in page)
    if seen is not None:
        servers = seen.note(servers)
    return servers_store(site, servers, complete=changes_since is None, observed_at=asked)


def server_refresh(site: Site, *, openstack_id: str, row: Server | None = None) -> Server | None:
    """Targeted refresh of one server the portal just touched: one cloud call, and
    one or two queries when the mirror has the row in the same project already
    (one, or none when nothing changed, given the `row` the caller just read)."""
    asked = timezone.now()
    try:
        server = cloud.server_get(site.name, server_id=openstack_id)
    except cloud.NotFound:
        server = None
    if row is None:
        row = Server.objects.filter(site=site, openstack_id=openstack_id).first()
    if row is not None and (server is None or server.project_id == row.project_openstack_id):
        authors = {openstack_id: row.created_by_id}
        if server is not None and row.created_by_id is None and server.metadata.get(CREATED_BY_KEY):
            # Made through the portal (says the hint) but not yet known as whose:
            # its Authorship may have been recorded since the row was written.
            authors = authors_of(site, [openstack_id])
        fields = None
        if server is not None and not server.is_deleted:
            projects = {server.project_id: row.project_id}
            fields = server_fields(server, projects=projects, authors=authors)
        return mirror_row_write(row, fields, observed_at=asked)
    if server is None:
        return None
    servers_store(site, [server], complete=False, observed_at=asked)
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
            "access_project_ids": list(f.access_project_ids),
        }
        for f in flavors
    }
    return mirror_upsert(Flavor, site=site, rows=rows, complete=True)


def networks_sync(site: Site) -> UpsertResult:
    """Every network of the site (a handful): which ones a launch may join."""
    rows = {
        n.id: {
            "name": n.name,
            "project_openstack_id": n.project_id,
            "shared": n.shared,
            "external": n.external,
        }
        for n in cloud.network_list(site.name)
    }
    return mirror_upsert(Network, site=site, rows=rows, complete=True)


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


def server_action_check(
    *, server: Server, actor, action: str, busy: set[int] | None = None
) -> None:
    """Raise ActionRefused unless `actor` may run `action` on `server` now.
    `busy`: the pks of servers jobs run on, asked once for many servers (busy_pks)."""
    if not can_see(actor, server.project):
        raise ActionRefused("You are not a member of this instance's project.", status=403)
    if not can_act_on(actor, project=server.project, created_by_id=server.created_by_id):
        raise ActionRefused(
            "Members may act only on instances they created; ask a project admin.", status=403
        )
    if server.is_deleted:
        raise ActionRefused(f"{server.name} no longer exists in the cloud.")
    if server.locked:
        raise ActionRefused(server.lock_refusal)
    if not server.site.is_reachable:
        raise ActionRefused(
            f"{server.site.display_name} is unreachable since "
            f"{server.site.unreachable_since:%Y-%m-%d %H:%M}; try again when it answers."
        )
    if server.task_state:
        raise ActionRefused(f"{server.name} is busy ({server.task_label}); wait until it is done.")
    if server.pk in (busy if busy is not None else busy_pks([server], target="server")):
        raise ActionRefused(f"Another portal job is running on {server.name}; wait until it ends.")
    allowed = {"stop": {"ACTIVE"}, "start": {"SHUTOFF"}}.get(action)
    if allowed is not None and server.status not in allowed:
        raise ActionRefused(f"Cannot {action} {server.name} while it is {server.status}.")


def server_power_request(*, server: Server, actor, action: str, idempotency_key: str = ""):
    """Check, then record a `server.stop` or `server.start` job."""
    server_action_check(server=server, actor=actor, action=action)
    # At call time: the job kinds' steps import this module's refreshes.
    from instances.jobs import ServerStart, ServerStop

    kind = ServerStop if action == "stop" else ServerStart
    return kind.create(
        actor=actor, project=server.project, site=server.site,
        target_server_id=server.openstack_id, idempotency_key=idempotency_key,
    )  # fmt: skip


# --- Deleting -----------------------------------------------------------------
#
# One set of rules decides what a delete skips, as filters (portal.bulk): the
# confirmation of ticked rows and of "all matching" and every batch of the job
# ask the same ones, in this order (the same rules as every other action).


def server_delete_refusals(
    actor, *, seen: bool = False, job=None, confirmed_at: datetime | None = None
) -> list[tuple[str, Q]]:
    """[(reason, condition)]: why `actor` may not delete a server now. `seen`: the
    rows are from the actor's own overview (see permission_refusals). Inside a
    delete `job`, only older delete jobs count as "already being deleted".
    `confirmed_at` (or the "all matching" `job`'s): rows changed since are skipped."""
    refusals = permission_refusals(
        actor,
        seen=seen,
        outside="not in one of your projects",
        not_yours="members may delete only instances they created",
    )
    refusals.append(("already deleted", Q(deleted_at__isnull=False) | Q(status="DELETED")))
    refusals.append(("locked", Q(locked=True)))
    deleting = servers_being_deleted_q(before=job)
    if deleting is not None:
        refusals.append(("already being deleted", deleting))
    busy = busy_q(target="server")
    if busy is not None:
        refusals.append(("a portal job is working on it", busy))
    if job is not None:
        confirmed_at = matching_confirmed_at(job)
    return refusals + changed_since_refusals(confirmed_at) + unreachable_refusals()


def servers_being_deleted_q(*, before=None) -> Q | None:
    """The servers unfinished delete jobs (older than `before`) will still delete,
    as a filter; None when no such job runs."""
    return being_deleted_q(
        kind="instances.delete", key="servers", pending=server_delete_pending, before=before
    )


@dataclass(frozen=True)
class ServerDeletePlan:
    deletable: list[Server]
    skipped: list[tuple[Server, str]]  # with the reason shown to the user


def server_delete_plan(*, servers, actor) -> ServerDeletePlan:
    """Split the chosen servers (ticked ones: a few hundred at most) into what the
    actor may delete now and what is skipped, with the reason."""
    pks = [s.pk for s in servers]
    rows = Server.objects.filter(pk__in=pks).select_related("project", "site", "created_by")
    rows = refusal_annotate(rows, server_delete_refusals(actor))
    deletable, skipped = [], []
    for server in rows:
        if server.refusal:
            skipped.append((server, server.refusal))
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


# "Select all matching": the job carries the filter and the confirmation's moment,
# not the ids (see portal.bulk).


def server_delete_bound() -> int:
    """The highest server row id now: a job confirmed now never touches a row
    synced later (a machine made after the confirmation), whatever it matches."""
    return Server.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def server_delete_matching_plan(
    *, rows, actor, upto: int, walk=None, confirmed_at: datetime | None = None
) -> MatchingPlan:
    """Counts of what deleting every row of `rows` (the overview's filter) would
    delete and skip, by reason, and a sample in the overview's order (`walk`:
    every server the overview could show, see matching_plan). `confirmed_at`:
    when the confirmation was shown, once it has been (rows changed since are
    skipped)."""
    # `rows` come from the actor's overview
    refusals = server_delete_refusals(actor, seen=True, confirmed_at=confirmed_at)
    return matching_plan(rows, refusals, ordered=rows, upto=upto, walk=walk)


def server_delete_matching_request(
    *, data, actor, upto: int, confirmed_at: datetime, rows, idempotency_key: str = ""
) -> tuple[object | None, MatchingPlan]:
    """Record one job that deletes, in batches, every server the overview with
    these filters (`data`, its query as pairs) showed when the confirmation was
    shown (`confirmed_at`), up to row `upto`, within the projects the actor saw
    (every one for a superuser), and that is unchanged since."""
    upto = min(upto, server_delete_bound())
    plan = server_delete_matching_plan(rows=rows, actor=actor, upto=upto, confirmed_at=confirmed_at)
    if not plan.will_delete:
        return None, plan
    scope = None
    if not actor.is_superuser:
        scope = sorted(projects_visible_to(actor).values_list("pk", flat=True))
    job = job_create(
        kind="instances.delete",
        actor=actor,
        idempotency_key=idempotency_key,
        params=matching_params(
            data=data, scope=scope, upto=upto, confirmed_at=confirmed_at, plan=plan
        ),
    )
    return job, plan


def _selection(job):
    """What a "delete all matching" job's filter matches now, within its scope and bound."""
    spec = job.params["matching"]
    data = QueryDict(mutable=True)
    for key, value in spec["query"]:
        data.appendlist(key, value)
    rows = servers_matching(data=data, projects=spec["projects"])
    return rows.filter(pk__lte=spec["upto"])


def server_delete_pending(job):
    """The rows a "delete all matching" job has still to look at (past its cursor)
    that its actor may delete: what other deletes count as "already being deleted"."""
    return delete_pending(_selection(job), job)


def server_delete_batch(job, after: int, size: int) -> list[dict]:
    """The next `size` rows of the job's selection after row `after`, in id order,
    each with the reason it is skipped now ("" when it is deleted): the rules,
    and any change since the confirmation."""
    rows = _selection(job).filter(pk__gt=after).order_by("pk")
    rows = refusal_annotate(rows, server_delete_refusals(job.actor, job=job))
    return [
        {"pk": pk, "id": openstack_id, "site_id": site_id, "name": name, "refusal": refusal}
        for pk, openstack_id, site_id, name, refusal in rows.values_list(
            "pk", "openstack_id", "site_id", "name", "refusal"
        )[:size]
    ]
