"""Reads of the instance mirror, scoped to what a user may see."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from images.models import Image
from instances.filters import ServerFilterSet
from instances.models import Flavor, Network, Server
from portal.access import (
    can_act_on,
    get_visible_or_404,
    projects_visible_to,
)
from portal.form_rendering import choices_prime
from portal.http import param_ids
from portal.jobs import busy_pks
from portal.models import Job, Project
from portal.ssh_keys import ssh_key_of_keypair


def flavors_usable_by(project: Project) -> QuerySet[Flavor]:
    """The flavors the project's servers may run on: its site's public flavors and
    the private ones with the project on their access list. Nova refuses any other
    private flavor to the project's users, but not to the portal's admin service
    account: this is the portal's own check (Flavor.usable_in for one flavor)."""
    live = Flavor.objects.filter(site_id=project.site_id, deleted_at__isnull=True)
    # A site has a few private flavors: their lists are read here, not queried as
    # JSON (SQLite has no JSON containment lookup).
    shared = [
        pk
        for pk, access in live.filter(is_public=False).values_list("pk", "access_project_ids")
        if project.openstack_id in (access or [])
    ]
    return live.filter(Q(is_public=True) | Q(pk__in=shared))


def flavor_names_for(*, user, projects: list[Project] | None = None) -> list[str]:
    """Names of the flavors usable in some project the user sees (every live
    flavor for a superuser): the instance list's flavor choices. `projects`: the
    user's projects, when the page has read them already."""
    flavors = Flavor.objects.filter(deleted_at__isnull=True).order_by()
    if user.is_superuser:
        return sorted(set(flavors.values_list("name", flat=True)))
    if projects is None:
        mine = set(projects_visible_to(user).values_list("site_id", "openstack_id"))
    else:
        mine = {(project.site_id, project.openstack_id) for project in projects}
    sites = {site_id for site_id, _ in mine}
    names = set()
    rows = flavors.filter(site_id__in=sites).values_list(
        "site_id", "name", "is_public", "access_project_ids"
    )
    for site_id, name, public, access in rows:
        if public or any((site_id, project) in mine for project in access or []):
            names.add(name)
    return sorted(names)


def networks_usable_by(project: Project) -> QuerySet[Network]:
    """The networks the project's new servers may join: its own and the shared ones
    of its site, not external (router:external) ones."""
    return Network.objects.filter(
        site_id=project.site_id, deleted_at__isnull=True, external=False
    ).filter(Q(shared=True) | Q(project_openstack_id=project.openstack_id))


def server_list(*, user, projects: list[Project] | None = None) -> QuerySet[Server]:
    """Servers of the user's projects (all of them for a superuser). `projects`: the
    user's projects, when the page has read them already."""
    servers = Server.objects.select_related("project", "site", "created_by")
    if user.is_superuser:
        return servers
    # The user's projects as a list of ids, not a subquery: see snapshots.selectors
    # in_my_projects (the same for the overview's per-project indexes).
    if projects is None:
        ids = list(projects_visible_to(user).values_list("pk", flat=True))
    else:
        ids = [project.pk for project in projects]
    return servers.filter(project__in=ids)


def servers_shown(*, user, data, projects, visible: list[Project] | None = None):
    """The rows the overview shows for these filters: the one definition the table,
    its count, "select all matching" and the delete confirmation all use.
    `visible`: `projects` read already as a list (portal.access.projects_visible_list),
    used for the rows, the flavor choices and the project choices alike.
    Returns (filterset, rows)."""
    servers = server_list(user=user, projects=visible)
    filterset = ServerFilterSet(
        data,
        queryset=servers,
        projects=projects,
        flavors=flavor_names_for(user=user, projects=visible),
    )
    if visible is not None:
        choices_prime(filterset.form.fields["project"], visible)
    return filterset, (filterset.qs if filterset.is_valid() else servers.none())


def servers_chosen(*, user, data, limit: int):
    """(rows, all matching?) a bulk action names: the ticked ids (at most `limit`,
    else 400), or every row the overview shows for the carried filters ("select all
    matching": a queryset, never read whole), never more."""
    _, shown = servers_shown(user=user, data=data, projects=projects_visible_to(user))
    if data.get("all_matching") == "1":
        return shown, True
    ids = param_ids(data, "selected", limit=limit)
    return list(server_list(user=user).filter(pk__in=ids)), False


def servers_matching(*, data, projects: list[int] | None) -> QuerySet[Server]:
    """What `servers_shown` showed, for a job that runs later and as nobody's
    request: servers of the projects the page covered (None: every one, the
    facility view) matching the same filters. Who may delete them is asked
    separately, at the moment of deleting."""
    servers = Server.objects.select_related("project", "site", "created_by")
    choices = Project.objects.all()
    if projects is not None:
        servers = servers.filter(project__in=projects)
        choices = choices.filter(pk__in=projects)
    filterset = ServerFilterSet(data, queryset=servers, projects=choices)
    return filterset.qs if filterset.is_valid() else servers.none()


def server_get_for_user(user, server_id: int) -> Server:
    """The server, or 404 if the portal never saw it or it is not the user's to see."""
    return get_visible_or_404(
        Server.objects.select_related("project", "site", "created_by"), user, pk=server_id
    )


def server_allowed_actions(user, server, *, busy_ids=frozenset()) -> set[str]:
    """The actions to offer on a row or detail page (the services check again)."""
    if server.is_deleted or server.pk in busy_ids or server.locked:
        return set()  # a locked one: the status column and the detail page say why
    if not can_act_on(user, project=server.project, created_by_id=server.created_by_id):
        return set()
    actions = {"delete"}  # Nova deletes in any state; a failed build still uses quota
    if server.task_state:
        return actions
    if server.status == "ACTIVE":
        actions |= {"stop", "snapshot", "park"}
    elif server.status == "SHUTOFF":
        actions |= {"start", "snapshot", "park"}
    elif server.status in ("PAUSED", "SUSPENDED"):
        actions |= {"snapshot", "park"}
    elif server.is_parked:
        actions.add("resume")
    if server.boots_from_volume:
        actions.discard("park")  # shelving keeps a disk as an image; a volume has none
    return actions


def image_names_for(servers) -> dict[tuple[int, str], str]:
    """{(site id, image id): image name} for the servers given, in one query."""
    ids = {s.image_openstack_id for s in servers if s.image_openstack_id}
    # No ORDER BY: the model's ordering by name would make the database walk the
    # name index instead of looking the few ids up in the id index.
    rows = (
        Image.objects.filter(openstack_id__in=ids)
        .order_by()
        .values_list("site_id", "openstack_id", "name")
    )
    return {(site_id, image_id): name for site_id, image_id, name in rows}


def server_detail_context(user, server) -> dict:
    """Everything the detail page shows, read from the mirror and the job table."""
    busy = busy_pks([server], target="server")
    jobs = list(
        Job.objects.filter(site=server.site, target_server_id=server.openstack_id)
        .select_related("actor")
        .order_by("-created_at")[:50]
    )
    snapshots = Image.objects.filter(
        site=server.site, is_snapshot=True, source_server_openstack_id=server.openstack_id,
        deleted_at__isnull=True,
    ).select_related("created_by").order_by("-created_at")  # fmt: skip
    image = (
        Image.objects.filter(site=server.site, openstack_id=server.image_openstack_id).first()
        if server.image_openstack_id
        else None
    )
    return {
        "server": server,
        "image": image,
        "actions": server_allowed_actions(user, server, busy_ids=busy),
        "running_job": next((j for j in jobs if not j.is_finished), None),
        "jobs": jobs,
        "snapshots": snapshots,
        "ssh_key": ssh_key_of_keypair(server.key_name) if server.key_name else None,
    }


def source_servers_for(images) -> dict[tuple[int, str], Server]:
    """{(site id, server id): mirrored Server} the snapshots among `images` were taken of, one query."""
    ids = {i.source_server_openstack_id for i in images if i.source_server_openstack_id}
    servers = Server.objects.filter(openstack_id__in=ids).order_by()  # by the id index
    return {(s.site_id, s.openstack_id): s for s in servers}
