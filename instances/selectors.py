"""Reads of the instance mirror, scoped to what a user may see."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from instances.models import Server
from portal.access import can_see, projects_visible_to


def server_list(*, user) -> QuerySet[Server]:
    """Servers of the user's projects (all of them for a superuser)."""
    servers = Server.objects.select_related("project", "site", "created_by")
    if user.is_superuser:
        return servers
    return servers.filter(project__in=projects_visible_to(user))


def server_get_for_user(user, server_id: int) -> Server:
    """The server, or 404 if the portal never saw it, 403 if it is not the user's to see."""
    server = get_object_or_404(
        Server.objects.select_related("project", "site", "created_by"), pk=server_id
    )
    if not can_see(user, server.project):
        raise PermissionDenied
    return server
