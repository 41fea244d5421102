"""Nova flavors: list/detail/show, extra specs and access lists."""

from .nova import limit_param, links, mv, next_link
from .store import keyset_condition, loads, order_by
from .web import ApiError, Response


def visible_flavor(store, ctx, flavor_id):
    row = store.one("SELECT * FROM flavors WHERE id = ?", (flavor_id,))
    if row is None:
        return None
    if row["is_public"] or ctx.is_admin:
        return row
    if store.one(
        "SELECT 1 FROM flavor_access WHERE flavor_id = ? AND project_id = ?",
        (flavor_id, ctx.project_id),
    ):
        return row
    return None


def usable_in_project(store, row, project_id):
    """Whether a server of `project_id` may run on the flavor: public, or the
    project is on its access list (Nova's check at boot, admin or not)."""
    if row["is_public"]:
        return True
    return (
        store.one(
            "SELECT 1 FROM flavor_access WHERE flavor_id = ? AND project_id = ?",
            (row["id"], project_id),
        )
        is not None
    )


FLAVOR_SORT_KEYS = {
    "flavorid": "id",
    "id": "id",
    "name": "name",
    "memory_mb": "ram",
    "vcpus": "vcpus",
    "root_gb": "disk",
    "ephemeral_gb": "ephemeral",
    "swap": "swap",
    "rxtx_factor": "rxtx_factor",
    "created_at": "created_at",
    "disabled": "disabled",
    "is_public": "is_public",
    "description": "COALESCE(description, '')",
}


def flavor_view(req, row, detail=True):
    view = {"id": row["id"], "name": row["name"], "links": links(req, "flavors", row["id"])}
    if mv(req, 55):
        view["description"] = row["description"]
    if not detail:
        return view
    swap = row["swap"]
    view.update(
        {
            "ram": row["ram"],
            "disk": row["disk"],
            "vcpus": row["vcpus"],
            "swap": swap if (swap or mv(req, 75)) else "",
            "OS-FLV-EXT-DATA:ephemeral": row["ephemeral"],
            "OS-FLV-DISABLED:disabled": bool(row["disabled"]),
            "os-flavor-access:is_public": bool(row["is_public"]),
            "rxtx_factor": row["rxtx_factor"],
        }
    )
    if mv(req, 61):
        view["extra_specs"] = loads(row["extra_specs"], {})
    return view


def _is_public_filter(req):
    raw = req.param("is_public")
    if raw is None:
        return True
    lowered = raw.strip().lower()
    if lowered == "none":
        return None
    if lowered in ("true", "t", "1", "yes", "y", "on"):
        return True
    if lowered in ("false", "f", "0", "no", "n", "off"):
        return False
    raise ApiError(400, f"Invalid is_public filter [{raw}]")


def list_flavors(req, detail=False):
    ctx = req.ctx
    store = req.app.store
    where, args = [], []
    if ctx.is_admin:
        is_public = _is_public_filter(req)
    else:
        is_public = True
        where.append("disabled = 0")
    if is_public is not None:
        if is_public:
            # Private flavors shared with the caller's project count as "public" for it.
            where.append(
                "(is_public = 1 OR id IN (SELECT flavor_id FROM flavor_access "
                "WHERE project_id = ?))"
            )
            args.append(ctx.project_id)
        else:
            where.append("is_public = 0")
    for param, column in (("minDisk", "disk"), ("minRam", "ram")):
        raw = req.param(param)
        if raw is not None:
            try:
                value = int(raw)
            except ValueError:
                raise ApiError(400, f"Invalid {param} filter [{raw}]") from None
            where.append(f"{column} >= ?")
            args.append(value)
    key = req.param("sort_key", "flavorid")
    direction = req.param("sort_dir", "asc")
    if key not in FLAVOR_SORT_KEYS or direction not in ("asc", "desc"):
        raise ApiError(400, f"Invalid sort key or direction: {key} {direction}")
    sort = [(FLAVOR_SORT_KEYS[key], direction)]
    if sort[0][0] != "id":
        sort.append(("id", direction))
    limit = limit_param(req)
    marker = req.param("marker")
    if marker is not None:
        exprs = ", ".join(e for e, _ in sort)
        mrow = store.one(f"SELECT {exprs} FROM flavors WHERE id = ?", (marker,))
        if mrow is None:
            raise ApiError(400, f"marker [{marker}] not found")
        clause, cargs = keyset_condition(sort, list(mrow))
        where.append(clause)
        args += cargs
    sql = "SELECT * FROM flavors"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = store.query(f"{sql} ORDER BY {order_by(sort)} LIMIT ?", [*args, limit]) if limit else []
    body = {"flavors": [flavor_view(req, r, detail) for r in rows]}
    if rows and len(rows) == limit:
        body["flavors_links"] = next_link(
            req, "flavors/detail" if detail else "flavors", rows[-1]["id"]
        )
    return Response(200, body)


def list_flavors_detail(req):
    return list_flavors(req, detail=True)


def _flavor_or_404(req, flavor_id):
    row = visible_flavor(req.app.store, req.ctx, flavor_id)
    if row is None:
        raise ApiError(404, f"Flavor {flavor_id} could not be found.")
    return row


def show_flavor(req, flavor_id):
    return Response(200, {"flavor": flavor_view(req, _flavor_or_404(req, flavor_id))})


def flavor_extra_specs(req, flavor_id):
    return Response(200, {"extra_specs": loads(_flavor_or_404(req, flavor_id)["extra_specs"], {})})


def flavor_extra_spec(req, flavor_id, key):
    specs = loads(_flavor_or_404(req, flavor_id)["extra_specs"], {})
    if key not in specs:
        raise ApiError(404, f"Flavor {flavor_id} has no extra specs with key {key}.")
    return Response(200, {key: specs[key]})


def flavor_access(req, flavor_id):
    if not req.ctx.is_admin:
        raise ApiError(403, "Policy doesn't allow os_compute_api:os-flavor-access to be performed.")
    row = _flavor_or_404(req, flavor_id)
    if row["is_public"]:
        raise ApiError(404, "Access list not available for public flavors.")
    rows = req.app.store.query(
        "SELECT project_id FROM flavor_access WHERE flavor_id = ? ORDER BY project_id", (flavor_id,)
    )
    return Response(
        200,
        {"flavor_access": [{"flavor_id": flavor_id, "tenant_id": r["project_id"]} for r in rows]},
    )


# -- flavor management (admin only, as Nova's default policy) ---------------------------------


def _manage_policy(req, rule):
    if not req.ctx.is_admin:
        raise ApiError(403, f"Policy doesn't allow os_compute_api:{rule} to be performed.")


def create_flavor(req):
    """`POST /flavors`: 200 with the flavor; a taken name or id is a 409."""
    import uuid

    from . import clock

    _manage_policy(req, "os-flavor-manage:create")
    body = req.json()
    flavor = body.get("flavor") if isinstance(body, dict) else None
    if not isinstance(flavor, dict):
        raise ApiError(400, "Invalid input for field/attribute flavor.")
    name = flavor.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise ApiError(400, f"Invalid input for field/attribute name. Value: {name}.")
    values = {}
    for field in ("ram", "vcpus", "disk"):
        value = flavor.get(field)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < (1 if field != "disk" else 0)
        ):
            raise ApiError(400, f"Invalid input for field/attribute {field}. Value: {value}.")
        values[field] = value
    flavor_id = flavor.get("id") or str(uuid.uuid4())
    public = flavor.get("os-flavor-access:is_public", True)
    store = req.app.store
    with store.write() as conn:
        if conn.execute("SELECT 1 FROM flavors WHERE name = ?", (name,)).fetchone():
            raise ApiError(409, f"Flavor with name {name} already exists.")
        if conn.execute("SELECT 1 FROM flavors WHERE id = ?", (flavor_id,)).fetchone():
            raise ApiError(409, f"Flavor with ID {flavor_id} already exists.")
        conn.execute(
            "INSERT INTO flavors (id, name, vcpus, ram, disk, is_public, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (flavor_id, name, values["vcpus"], values["ram"], values["disk"],
             1 if public else 0, clock.now_db()),
        )  # fmt: skip
    row = store.one("SELECT * FROM flavors WHERE id = ?", (flavor_id,))
    return Response(200, {"flavor": flavor_view(req, row)})


def delete_flavor(req, flavor_id):
    """`DELETE /flavors/{id}`: 202. Servers keep their embedded copy of it."""
    _manage_policy(req, "os-flavor-manage:delete")
    with req.app.store.write() as conn:
        if conn.execute("SELECT 1 FROM flavors WHERE id = ?", (flavor_id,)).fetchone() is None:
            raise ApiError(404, f"Flavor {flavor_id} could not be found.")
        conn.execute("DELETE FROM flavor_access WHERE flavor_id = ?", (flavor_id,))
        conn.execute("DELETE FROM flavors WHERE id = ?", (flavor_id,))
    return Response(202)


def flavor_action(req, flavor_id):
    """addTenantAccess / removeTenantAccess: 200 with the access list."""
    _manage_policy(req, "os-flavor-access:add_tenant_access")
    body = req.json()
    if not isinstance(body, dict) or len(body) != 1:
        raise ApiError(400, "Malformed request body")
    action, args = next(iter(body.items()))
    if action not in ("addTenantAccess", "removeTenantAccess") or not isinstance(args, dict):
        raise ApiError(400, f"There is no such action: {action}")
    project_id = args.get("tenant")
    row = _flavor_or_404(req, flavor_id)
    with req.app.store.write() as conn:
        if row["is_public"]:
            raise ApiError(409, "Can not add access to a public flavor.")
        had = conn.execute(
            "SELECT 1 FROM flavor_access WHERE flavor_id = ? AND project_id = ?",
            (flavor_id, project_id),
        ).fetchone()
        if action == "addTenantAccess":
            if had:
                raise ApiError(
                    409, f"Flavor access already exists for flavor {flavor_id} and project "
                    f"{project_id} combination."
                )  # fmt: skip
            conn.execute(
                "INSERT INTO flavor_access (flavor_id, project_id) VALUES (?, ?)",
                (flavor_id, project_id),
            )
        else:
            if not had:
                raise ApiError(
                    404, f"Flavor access not found for {flavor_id} / {project_id} combination."
                )
            conn.execute(
                "DELETE FROM flavor_access WHERE flavor_id = ? AND project_id = ?",
                (flavor_id, project_id),
            )
    return flavor_access(req, flavor_id)
