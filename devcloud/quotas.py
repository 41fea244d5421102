"""Nova limits, quota sets and the small endpoints clients probe (AZs, extensions)."""

from .nova import mv
from .store import dumps, loads
from .web import ApiError, Response

DEFAULT_QUOTA = {
    "instances": 20,
    "cores": 64,
    "ram": 600 * 1024,
    "key_pairs": 100,
    "metadata_items": 128,
    "server_groups": 10,
    "server_group_members": 10,
    "injected_files": 5,
    "injected_file_content_bytes": 10240,
    "injected_file_path_bytes": 255,
}


def quota_of(store, project_id):
    row = store.one("SELECT quota FROM projects WHERE id = ?", (project_id,))
    quota = dict(DEFAULT_QUOTA)
    if row:
        quota.update(loads(row["quota"], {}))
    return quota


def usage_of(store, project_id):
    row = store.one(
        "SELECT COUNT(*) AS n, COALESCE(SUM(json_extract(flavor, '$.vcpus')), 0) AS cores, "
        "COALESCE(SUM(json_extract(flavor, '$.ram')), 0) AS ram "
        "FROM servers WHERE project_id = ? AND deleted = 0",
        (project_id,),
    )
    return {"instances": row["n"], "cores": row["cores"], "ram": row["ram"]}


# -- limits and quota sets ------------------------------------------------------


def _target_project(req, param_value):
    if param_value and param_value != req.ctx.project_id:
        if not req.ctx.is_admin:
            raise ApiError(
                403, "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed."
            )
        if req.app.store.one("SELECT id FROM projects WHERE id = ?", (param_value,)) is None:
            raise ApiError(404, f"Project {param_value} could not be found.")
        return param_value
    return req.ctx.project_id


def limits(req):
    project_id = _target_project(req, req.param("tenant_id"))
    quota = quota_of(req.app.store, project_id)
    used = usage_of(req.app.store, project_id)
    absolute = {
        "maxTotalInstances": quota["instances"],
        "maxTotalCores": quota["cores"],
        "maxTotalRAMSize": quota["ram"],
        "maxServerMeta": quota["metadata_items"],
        "maxTotalKeypairs": quota["key_pairs"],
        "maxServerGroups": quota["server_groups"],
        "maxServerGroupMembers": quota["server_group_members"],
        "totalInstancesUsed": used["instances"],
        "totalCoresUsed": used["cores"],
        "totalRAMUsed": used["ram"],
        "totalServerGroupsUsed": 0,
    }
    if not mv(req, 39):
        absolute["maxImageMeta"] = quota["metadata_items"]
    if not mv(req, 57):
        absolute["maxPersonality"] = quota["injected_files"]
        absolute["maxPersonalitySize"] = quota["injected_file_content_bytes"]
    if not mv(req, 36):
        absolute.update(
            {
                "maxTotalFloatingIps": 10,
                "maxSecurityGroups": 10,
                "maxSecurityGroupRules": 20,
                "totalFloatingIpsUsed": 0,
                "totalSecurityGroupsUsed": 1,
            }
        )
    return Response(200, {"limits": {"rate": [], "absolute": absolute}})


QUOTA_KEYS = (
    "instances",
    "cores",
    "ram",
    "key_pairs",
    "metadata_items",
    "server_groups",
    "server_group_members",
    "injected_files",
    "injected_file_content_bytes",
    "injected_file_path_bytes",
)


def _quota_set_view(req, project_id, detail=False):
    quota = quota_of(req.app.store, project_id)
    used = usage_of(req.app.store, project_id)
    keys = [k for k in QUOTA_KEYS if not (mv(req, 57) and k.startswith("injected_file"))]
    view = {"id": project_id}
    for key in keys:
        if detail:
            view[key] = {"limit": quota[key], "in_use": used.get(key, 0), "reserved": 0}
        else:
            view[key] = quota[key]
    return view


def show_quota(req, project_id):
    project_id = _target_project(req, project_id)
    return Response(200, {"quota_set": _quota_set_view(req, project_id)})


def show_quota_detail(req, project_id):
    project_id = _target_project(req, project_id)
    return Response(200, {"quota_set": _quota_set_view(req, project_id, detail=True)})


def show_quota_defaults(req, project_id):
    view = {"id": project_id}
    view.update({k: DEFAULT_QUOTA[k] for k in QUOTA_KEYS})
    return Response(200, {"quota_set": view})


def update_quota(req, project_id):
    if not req.ctx.is_admin:
        raise ApiError(
            403, "Policy doesn't allow os_compute_api:os-quota-sets:update to be performed."
        )
    body = req.json()
    changes = body.get("quota_set") if isinstance(body, dict) else None
    if not isinstance(changes, dict):
        raise ApiError(400, "Invalid input for field/attribute quota_set.")
    store = req.app.store
    with store.write() as conn:
        row = store.one("SELECT quota FROM projects WHERE id = ?", (project_id,))
        if row is None:
            raise ApiError(404, f"Project {project_id} could not be found.")
        quota = loads(row["quota"], {})
        for key, value in changes.items():
            if key == "force":
                continue
            if key not in QUOTA_KEYS:
                raise ApiError(400, f"Bad key(s) {key} in quota_set")
            try:
                quota[key] = int(value)
            except (TypeError, ValueError):
                raise ApiError(400, f"Invalid input for field/attribute {key}.") from None
        conn.execute("UPDATE projects SET quota = ? WHERE id = ?", (dumps(quota), project_id))
    view = _quota_set_view(req, project_id)
    view.pop("id")
    return Response(200, {"quota_set": view})


def availability_zones(req):
    return Response(
        200,
        {
            "availabilityZoneInfo": [
                {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}
            ]
        },
    )


def availability_zones_detail(req):
    if not req.ctx.is_admin:
        raise ApiError(
            403, "Policy doesn't allow os_compute_api:os-availability-zone:detail to be performed."
        )
    return Response(
        200,
        {
            "availabilityZoneInfo": [
                {
                    "zoneName": "internal",
                    "zoneState": {"available": True},
                    "hosts": {
                        "devcloud-controller": {
                            "nova-scheduler": {
                                "available": True,
                                "active": True,
                                "updated_at": None,
                            }
                        }
                    },
                },
                {
                    "zoneName": "nova",
                    "zoneState": {"available": True},
                    "hosts": {
                        "devcloud-compute-1": {
                            "nova-compute": {"available": True, "active": True, "updated_at": None}
                        }
                    },
                },
            ]
        },
    )


def extensions(req):
    return Response(200, {"extensions": []})
