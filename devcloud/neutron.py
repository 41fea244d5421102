"""Neutron v2.0 subset: networks (list, show, create, delete), and what Nova asks of them.

Only networks: no subnets, ports or routers. A server's address is allocated
by Nova (compute.allocate_ip) on the network it joins, and shown under the
network's name. What a project may use follows Neutron's default policy: its
own networks and the shared ones; an admin token lists every network.
"""

from __future__ import annotations

import uuid

from . import clock
from .web import ApiError, Response

# The network every site starts with: shared, so every project (the demo ones and
# tempest's) boots on it with `networks: "auto"`. Its id is the one devcloud
# always answered with before it had Neutron.
DEFAULT_NETWORK_NAME = "private"
DEFAULT_NETWORK_ID = "7d2c9a43-5f9e-4b59-9c2b-6e1d2f0a9b11"

_TRUE = ("true", "t", "1", "yes", "y", "on")
_FALSE = ("false", "f", "0", "no", "n", "off")


class NeutronError(ApiError):
    """An error with Neutron's exception type (`NeutronError.type` in the body)."""

    def __init__(self, status, message, kind):
        super().__init__(status, message)
        self.kind = kind


def ensure_default_network(store, admin_project_id):
    """Seed the shared default network once (also into data directories made before
    devcloud had Neutron; their servers already show addresses on `private`)."""
    if store.get_meta("networks_seeded") is not None:
        return
    with store.write() as conn:
        if store.get_meta("networks_seeded") is not None:
            return
        if store.one("SELECT 1 FROM networks WHERE id = ?", (DEFAULT_NETWORK_ID,)) is None:
            insert_network(
                conn,
                network_id=DEFAULT_NETWORK_ID,
                name=DEFAULT_NETWORK_NAME,
                project_id=admin_project_id or "",
                shared=True,
            )
        store.set_meta("networks_seeded", "1")


def insert_network(conn, *, name, project_id, shared=False, external=False, network_id=None):
    network_id = network_id or str(uuid.uuid4())
    now = clock.now_db_seconds()
    conn.execute(
        "INSERT INTO networks (id, name, project_id, shared, external, admin_state_up,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
        (network_id, name, project_id, 1 if shared else 0, 1 if external else 0, now, now),
    )
    return network_id


def usable_networks(store, project_id):
    """The networks a server of `project_id` may join: its own and the shared ones,
    in creation order (Nova's view, whatever the caller's role)."""
    return store.query(
        "SELECT * FROM networks WHERE admin_state_up = 1 AND (project_id = ? OR shared = 1)"
        " ORDER BY created_at, id",
        (project_id,),
    )


def network_for_server(store, project_id, network_id):
    """The row of a network a server of the project may join, or None."""
    row = store.one("SELECT * FROM networks WHERE id = ?", (network_id,))
    if row is None or not (row["shared"] or row["project_id"] == project_id):
        return None
    return row


def _visible(ctx, row):
    return ctx.is_admin or row["shared"] or row["external"] or row["project_id"] == ctx.project_id


def network_view(row):
    return {
        "id": row["id"],
        "name": row["name"],
        "status": "ACTIVE",
        "shared": bool(row["shared"]),
        "project_id": row["project_id"],
        "tenant_id": row["project_id"],
        "router:external": bool(row["external"]),
        "subnets": [],
        "admin_state_up": bool(row["admin_state_up"]),
        "description": "",
        "mtu": 1450,
        "port_security_enabled": True,
        "availability_zone_hints": [],
        "availability_zones": ["nova"],
        "ipv4_address_scope": None,
        "ipv6_address_scope": None,
        "is_default": False,
        "tags": [],
        "revision_number": 1,
        "created_at": clock.db_to_api(row["created_at"]),
        "updated_at": clock.db_to_api(row["updated_at"]),
    }


def _bool(name, raw):
    lowered = str(raw).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise NeutronError(
        400, f"Invalid input for {name}. Reason: '{raw}' is not a valid boolean.", "HTTPBadRequest"
    )


# -- discovery -----------------------------------------------------------------------


def _version(req):
    return {
        "id": "v2.0",
        "status": "CURRENT",
        "links": [{"rel": "self", "href": f"{req.base_url}/networking/v2.0/"}],
    }


def versions(req):
    return Response(200, {"versions": [_version(req)]})


def version_v2(req):
    return Response(
        200,
        {
            "resources": [
                {
                    "name": "network",
                    "collection": "networks",
                    "links": [{"rel": "self", "href": f"{req.base_url}/networking/v2.0/networks"}],
                }
            ]
        },
    )


# -- networks ------------------------------------------------------------------------

FILTERS = {"id": "id", "name": "name", "project_id": "project_id", "tenant_id": "project_id"}
BOOL_FILTERS = {
    "shared": "shared",
    "router:external": "external",
    "admin_state_up": "admin_state_up",
}


def list_networks(req):
    ctx = req.ctx
    where, args = [], []
    for param, column in FILTERS.items():
        values = req.params(param)
        if values:
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            args += values
    for param, column in BOOL_FILTERS.items():
        raw = req.param(param)
        if raw is not None:
            where.append(f"{column} = ?")
            args.append(1 if _bool(param, raw) else 0)
    if not ctx.is_admin:
        where.append("(project_id = ? OR shared = 1 OR external = 1)")
        args.append(ctx.project_id)
    sql = "SELECT * FROM networks"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = req.app.store.query(sql + " ORDER BY created_at, id", args)
    return Response(200, {"networks": [network_view(r) for r in rows]})


def _network_or_404(req, network_id):
    row = req.app.store.one("SELECT * FROM networks WHERE id = ?", (network_id,))
    if row is None or not _visible(req.ctx, row):
        raise NeutronError(404, f"Network {network_id} could not be found.", "NetworkNotFound")
    return row


def show_network(req, network_id):
    return Response(200, {"network": network_view(_network_or_404(req, network_id))})


def create_network(req):
    ctx = req.ctx
    body = req.json()
    spec = body.get("network") if isinstance(body, dict) else None
    if not isinstance(spec, dict):
        raise NeutronError(400, "Resource body required", "HTTPBadRequest")
    allowed = {"name", "project_id", "tenant_id", "shared", "router:external", "admin_state_up",
               "description"}  # fmt: skip
    unknown = set(spec) - allowed
    if unknown:
        raise NeutronError(
            400, f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'", "HTTPBadRequest"
        )
    name = spec.get("name", "")
    if not isinstance(name, str) or len(name) > 255:
        raise NeutronError(400, f"Invalid input for name. Reason: '{name}' is not a valid string.",
                           "HTTPBadRequest")  # fmt: skip
    project_id = spec.get("project_id") or spec.get("tenant_id") or ctx.project_id
    shared = _bool("shared", spec.get("shared", False))
    external = _bool("router:external", spec.get("router:external", False))
    if not ctx.is_admin and (project_id != ctx.project_id or shared or external):
        raise NeutronError(
            403, "(rule:create_network) is disallowed by policy", "PolicyNotAuthorized"
        )
    with req.app.store.write() as conn:
        network_id = insert_network(
            conn, name=name, project_id=project_id, shared=shared, external=external
        )
    row = req.app.store.one("SELECT * FROM networks WHERE id = ?", (network_id,))
    return Response(201, {"network": network_view(row)})


def delete_network(req, network_id):
    ctx = req.ctx
    with req.app.store.write() as conn:
        row = _network_or_404(req, network_id)
        if not ctx.is_admin and row["project_id"] != ctx.project_id:
            raise NeutronError(
                403, "(rule:delete_network) is disallowed by policy", "PolicyNotAuthorized"
            )
        in_use = conn.execute(
            "SELECT 1 FROM servers WHERE network_id = ? AND deleted = 0 LIMIT 1", (network_id,)
        ).fetchone()
        if in_use:
            raise NeutronError(
                409,
                f"Unable to complete operation on network {network_id}. "
                "There are one or more ports still in use on the network.",
                "NetworkInUse",
            )
        conn.execute("DELETE FROM networks WHERE id = ?", (network_id,))
    return Response(204)


def register(router):
    router.add("GET", "/?", versions, auth=False)
    router.add("GET", "/v2.0/?", version_v2)
    router.add("GET", "/v2.0/networks", list_networks)
    router.add("POST", "/v2.0/networks", create_network)
    nid = "(?P<network_id>[^/]+)"
    router.add("GET", f"/v2.0/networks/{nid}", show_network)
    router.add("DELETE", f"/v2.0/networks/{nid}", delete_network)
