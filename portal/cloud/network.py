"""Neutron: networks, to know which ones a new server may join."""

from __future__ import annotations

from portal.cloud.connection import connection_for, translate_errors
from portal.cloud.types import CloudNetwork


def network_list(site: str, *, project_id: str | None = None) -> list[CloudNetwork]:
    """Networks of the site (the service account is admin: all of them), or those
    owned by `project_id`. Neutron's `shared` networks serve every project;
    `router:external` ones are providers of floating IPs, where Nova attaches no
    server of an ordinary project. Sites have a handful; one request."""
    query = {} if project_id is None else {"project_id": project_id}
    with translate_errors(site):
        return [
            CloudNetwork(
                id=n.id,
                name=n.name or "",
                project_id=n.project_id or "",
                shared=bool(n.is_shared),
                external=bool(n.is_router_external),
            )
            for n in connection_for(site).network.networks(**query)
        ]
