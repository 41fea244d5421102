"""Writes to the instance mirror, and the portal's actions on instances."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Q
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext, gettext_noop, pgettext_lazy

from instances.models import Flavor, Network, Server
from instances.selectors import servers_matching
from portal import cloud, prepared
from portal.access import can_act_on, can_see
from portal.bulk.delete import BulkDelete, DeletePlan
from portal.errors import ActionRefused
from portal.jobs import busy_pks, parked_wake
from portal.mirror.authorship import CREATED_BY_KEY, authors_of
from portal.mirror.listing import WRITE_BATCH, NewestSeen, batched
from portal.mirror.projects import project_ids
from portal.mirror.rows import row_fingerprint
from portal.mirror.upsert import MirrorWriter, UpsertResult, mirror_row_write, mirror_upsert
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
        "key_name": (server.key_name or "")[:255],
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
        written = writer.finish()
    if writer.moved:  # after the write, what it moved: see portal.jobs.parking
        parked_wake(site, "server", writer.moved)
    return written


def server_wait_state(status: str, task_state: str, deleted_at) -> str:
    """What a job waiting for its server waits to change (portal.jobs.parking): its
    status, or Nova's task on it ending; one task giving way to the next
    (image_snapshot, then image_uploading) is only progress."""
    if deleted_at is not None:
        return "deleted"
    return f"{status} {'busy' if task_state else 'idle'}"


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
        before = server_wait_state(row.status, row.task_state, row.deleted_at)
        written = mirror_row_write(row, fields, observed_at=asked)
        if server_wait_state(row.status, row.task_state, row.deleted_at) != before:
            parked_wake(site, "server", [openstack_id])  # another job may wait on it
        return written
    if server is None:
        return None
    servers_store(site, [server], complete=False, observed_at=asked)
    return Server.objects.filter(site=site, openstack_id=openstack_id).first()


def server_task_began(site: Site, row: Server, *, task_state: str, answered_at: datetime) -> Server:
    """Write the task Nova took on with an action it accepted, without asking again.

    Nova's API sets the server's task_state (powering-off for os-stop, powering-on
    for os-start, image_snapshot_pending for createImage) and saves it before it
    answers 202 (compute.api, `instance.save(expected_task_state=[None])`), so at
    `answered_at` the server was busy with that task, or already past it. A refresh
    (a show call) would only repeat that, at a cloud call per action.

    The row keeps every other field as it was, and loses its fingerprint: the next
    listing that shows the server writes all of it again. A row synced after
    `answered_at` (a listing asked after the answer) holds newer news and wins.

    For the job that acted on its own server only: no other job can be parked on
    that server (one unfinished job per server, Job's job_one_unfinished_per_server),
    so this writer has no one to wake (see portal.jobs.parking)."""

    def build(quote):
        column = {name: quote(Server._meta.get_field(name).column)
                  for name in ("id", "task_state", "fingerprint", "synced_at")}  # fmt: skip
        return (
            f"UPDATE {quote(Server._meta.db_table)} SET {column['task_state']} = %s, "
            f"{column['fingerprint']} = %s, {column['synced_at']} = %s "
            f"WHERE {column['id']} = %s "
            f"AND ({column['synced_at']} IS NULL OR {column['synced_at']} <= %s)"
        )

    # Its SQL built once (see portal.prepared): every action of every job writes it.
    answered = prepared.db_value(Server, "synced_at", answered_at)
    sql = prepared.built("server_task_began", build)
    if not prepared.run(sql, [task_state, "", answered, row.pk, answered]):
        return Server.objects.filter(pk=row.pk).first() or row
    row.task_state, row.fingerprint, row.synced_at = task_state, "", answered_at
    return row


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


# The actions a refusal names ("Cannot stop alpha-web-01 while it is ERROR.").
ACTION_WORDS = {
    "stop": pgettext_lazy("an action", "stop"),
    "start": pgettext_lazy("an action", "start"),
    "park": pgettext_lazy("an action", "park"),
    "resume": pgettext_lazy("an action", "resume"),
    "delete": pgettext_lazy("an action", "delete"),
    "snapshot": pgettext_lazy("an action", "snapshot"),
}


def server_action_check(
    *, server: Server, actor, action: str, busy: set[int] | None = None
) -> None:
    """Raise ActionRefused unless `actor` may run `action` on `server` now.
    `busy`: the pks of servers jobs run on, asked once for many servers (busy_pks)."""
    if not can_see(actor, server.project):
        raise ActionRefused(gettext("You are not a member of this instance's project."), status=403)
    if not can_act_on(actor, project=server.project, created_by_id=server.created_by_id):
        raise ActionRefused(
            gettext("Members may act only on instances they created; ask a project admin."),
            status=403,
        )
    if server.is_deleted:
        raise ActionRefused(
            gettext("%(server)s no longer exists in the cloud.") % {"server": server.name}
        )
    if server.locked:
        raise ActionRefused(server.lock_refusal)
    if not server.site.is_reachable:
        raise ActionRefused(
            gettext("%(site)s is unreachable since %(since)s; try again when it answers.")
            % {
                "site": server.site.display_name,
                "since": date_format(
                    timezone.localtime(server.site.unreachable_since), "SHORT_DATETIME_FORMAT"
                ),
            }
        )
    if server.task_state:
        raise ActionRefused(
            gettext("%(server)s is busy (%(task)s); wait until it is done.")
            % {"server": server.name, "task": gettext(server.task_label)}
        )
    if server.pk in (busy if busy is not None else busy_pks([server], target="server")):
        raise ActionRefused(
            gettext("Another portal job is running on %(server)s; wait until it ends.")
            % {"server": server.name}
        )
    allowed = {
        "stop": {"ACTIVE"}, "start": {"SHUTOFF"},
        "park": {"ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED"},
        "resume": {"SHELVED", "SHELVED_OFFLOADED"},
    }.get(action)  # fmt: skip
    if allowed is not None and server.status not in allowed:
        raise ActionRefused(
            gettext("Cannot %(action)s %(server)s while it is %(status)s.")
            % {
                "action": ACTION_WORDS.get(action, action),
                "server": server.name,
                "status": server.status,
            }
        )


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
# The bulk delete of instances, declared (portal.bulk.delete): ticked ones or all
# the overview's filter matches, skipped by the same rules as every other action.


def _delete_unless_locked(site: str, server_id: str) -> None:
    """Delete a ticked server, unless the mirror says it is locked (since the
    confirmation): Nova lets the portal's admin token delete a locked server, the
    portal does not. ("All matching" batches skip locked rows by their refusals.)"""
    locked = Server.objects.filter(site__name=site, openstack_id=server_id, locked=True)
    name = locked.values_list("name", flat=True).first()
    if name is not None:
        raise cloud.Conflict(f"{name} is locked")
    cloud.server_delete(site, server_id=server_id)


def _quota_refresh_after_delete(project) -> None:
    if project is not None:
        project_quota_refresh(project)  # the quota the deleted ones freed


SERVER_DELETE = BulkDelete(
    model=Server,
    kind="instances.delete",
    key="servers",
    target="server",
    noun=gettext_noop("instance"),
    nouns=gettext_noop("instances"),
    not_yours=gettext_noop("members may delete only instances they created"),
    rules=(
        (gettext_noop("already deleted"), Q(deleted_at__isnull=False) | Q(status="DELETED")),
        (gettext_noop("locked"), Q(locked=True)),
    ),
    busy=gettext_noop("a portal job is working on it"),
    matching=servers_matching,
    cloud_delete=lambda site, server_id: cloud.server_delete(site, server_id=server_id),
    listed_delete=_delete_unless_locked,
    refresh=lambda site, server_id: server_refresh(site, openstack_id=server_id),
    # Servers deleted per task run (as many as a launch creates: instances.jobs.BATCH).
    batch=10,
    after_deletes=_quota_refresh_after_delete,
)


def server_delete_plan(*, servers, actor) -> DeletePlan:
    """Split the chosen servers into what the actor may delete now and what is skipped."""
    return SERVER_DELETE.plan(rows=servers, actor=actor)


def server_delete_request(
    *, servers, actor, idempotency_key: str = ""
) -> tuple[object | None, DeletePlan]:
    """Record one job deleting every deletable server (in batches); report the skipped."""
    return SERVER_DELETE.request(rows=servers, actor=actor, idempotency_key=idempotency_key)
