"""Nova v2.1 subset: discovery, servers, actions, metadata; route table for all of Nova."""

import hashlib
import re
import secrets
import string
import uuid

from . import clock, console, flavors, keypairs, neutron, nova_images, quotas, transitions
from . import image as image_mod
from .nova import (
    MAX_VERSION,
    MIN_VERSION,
    add_version_headers,
    bool_value,
    fmt,
    limit_param,
    links,
    mv,
    next_link,
    parse_microversion,
)
from .store import dumps, keyset_condition, loads, order_by
from .web import ApiError, Response, Router

VM_TO_STATUS = {
    "active": "ACTIVE",
    "building": "BUILD",
    "stopped": "SHUTOFF",
    "error": "ERROR",
    "deleted": "DELETED",
    "paused": "PAUSED",
    "suspended": "SUSPENDED",
    "soft-delete": "SOFT_DELETED",
    "shelved": "SHELVED",
    "shelved_offloaded": "SHELVED_OFFLOADED",
    "rescued": "RESCUE",
    "resized": "VERIFY_RESIZE",
}
STATUS_TO_VM: dict[str, list[str]] = {}
for _vm, _status in VM_TO_STATUS.items():
    STATUS_TO_VM.setdefault(_status, []).append(_vm)
PROGRESS_STATUSES = {"ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"}

SERVER_SORT_KEYS = {
    "created_at": "created_at",
    "updated_at": "updated_at",
    "display_name": "name",
    "hostname": "name",
    "uuid": "id",
    "vm_state": "vm_state",
    "task_state": "COALESCE(task_state, '')",
    "power_state": "power_state",
    "launched_at": "COALESCE(launched_at, '')",
    "terminated_at": "COALESCE(terminated_at, '')",
    "project_id": "project_id",
    "user_id": "user_id",
    "key_name": "COALESCE(key_name, '')",
    "image_ref": "image_id",
    "availability_zone": "availability_zone",
    "launch_index": "launch_index",
    "locked": "locked",
    "instance_type_id": "flavor_id",
    "host": "host",
    "node": "host",
    "display_description": "COALESCE(description, '')",
    "access_ip_v4": "''",
    "access_ip_v6": "''",
    "config_drive": "''",
    "kernel_id": "''",
    "ramdisk_id": "''",
    "root_device_name": "''",
    "progress": "0",
    "locked_by": "''",
}

# -- discovery ---------------------------------------------------------------------


def _version_doc(req):
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": fmt(MAX_VERSION),
        "min_version": fmt(MIN_VERSION),
        "updated": "2013-07-23T11:33:21Z",
        "links": [
            {"rel": "self", "href": f"{req.base_url}/compute/v2.1/"},
            {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"},
        ],
        "media-types": [
            {
                "base": "application/json",
                "type": "application/vnd.openstack.compute+json;version=2.1",
            }
        ],
    }


def dispatch(app, req, rest):
    if rest in ("", "/"):
        return Response(200, {"versions": [_version_doc(req)]})
    if rest in ("/v2.1", "/v2.1/"):
        return Response(200, {"version": _version_doc(req)})
    if not rest.startswith("/v2.1/"):
        raise ApiError(404, "The resource could not be found.")
    handler, params, needs_auth = app.routers["compute"].match(req.method, rest[len("/v2.1") :])
    if needs_auth:
        app.authenticate(req)
    req.microversion = parse_microversion(req)
    resp = handler(req, **params)
    add_version_headers(req, resp)
    return resp


# -- helpers -------------------------------------------------------------------------


def _server_row(req, server_id, include_deleted=False):
    sql = "SELECT * FROM servers WHERE id = ?"
    if not include_deleted:
        sql += " AND deleted = 0"
    row = req.app.store.one(sql, (server_id,))
    if row is None or (not req.ctx.is_admin and row["project_id"] != req.ctx.project_id):
        raise ApiError(404, f"Instance {server_id} could not be found.")
    return row


# -- server view --------------------------------------------------------------------------


def server_status(row):
    return VM_TO_STATUS.get(row["vm_state"], "UNKNOWN")


def _flavor_ref(req, row):
    flavor = loads(row["flavor"])
    if mv(req, 47):
        return {
            "vcpus": flavor["vcpus"],
            "ram": flavor["ram"],
            "disk": flavor["disk"],
            "ephemeral": flavor.get("ephemeral", 0),
            "swap": flavor.get("swap", 0),
            "original_name": flavor["name"],
            "extra_specs": flavor.get("extra_specs", {}),
        }
    return {
        "id": row["flavor_id"],
        "links": [
            {"rel": "bookmark", "href": f"{req.base_url}/compute/flavors/{row['flavor_id']}"}
        ],
    }


def _addresses(row):
    if not row["network"] or not row["ip"]:
        return {}
    mac = console.mac_address(row["id"])
    return {
        row["network"]: [
            {
                "version": 4,
                "addr": row["ip"],
                "OS-EXT-IPS:type": "fixed",
                "OS-EXT-IPS-MAC:mac_addr": mac,
            }
        ]
    }


def _placed(row):
    """Whether the server has a host: once the scheduler is done, or it ever ran, until
    it is offloaded (shelved_offloaded: no host until an unshelve spawns it)."""
    if row["vm_state"] == "shelved_offloaded" and row["task_state"] != "spawning":
        return False
    return bool(row["launched_at"]) or (
        row["vm_state"] == "building" and row["task_state"] not in (None, "scheduling")
    )


def server_view(req, row, show=False):
    ctx = req.ctx
    status = server_status(row)
    image_id = row["image_id"]
    host = row["host"] if _placed(row) else None
    view = {
        "id": row["id"],
        "name": row["name"],
        "status": status,
        "tenant_id": row["project_id"],
        "user_id": row["user_id"],
        "metadata": loads(row["metadata"], {}),
        "hostId": hashlib.sha224((row["project_id"] + host).encode()).hexdigest() if host else "",
        "image": (
            {
                "id": image_id,
                "links": [{"rel": "bookmark", "href": f"{req.base_url}/compute/images/{image_id}"}],
            }
            if image_id
            else ""
        ),
        "flavor": _flavor_ref(req, row),
        "created": clock.db_to_api(row["created_at"]),
        "updated": clock.db_to_api(row["updated_at"]),
        "addresses": _addresses(row),
        "accessIPv4": "",
        "accessIPv6": "",
        "links": links(req, "servers", row["id"]),
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": row["availability_zone"] if host else "",
        "config_drive": "",
        "key_name": row["key_name"],
        "OS-SRV-USG:launched_at": row["launched_at"],
        "OS-SRV-USG:terminated_at": row["terminated_at"],
        "OS-EXT-STS:task_state": row["task_state"],
        "OS-EXT-STS:vm_state": row["vm_state"],
        "OS-EXT-STS:power_state": row["power_state"],
        "os-extended-volumes:volumes_attached": [],
    }
    if row["network"]:
        view["security_groups"] = [{"name": n} for n in loads(row["security_groups"], [])]
    if status in PROGRESS_STATUSES:
        view["progress"] = 100 if status == "ACTIVE" else 0
    if ctx.is_admin:
        view["OS-EXT-SRV-ATTR:host"] = host
        view["OS-EXT-SRV-ATTR:hypervisor_hostname"] = f"{host}.devcloud" if host else None
        view["OS-EXT-SRV-ATTR:instance_name"] = "instance-%08x" % (int(row["id"][:8], 16) % 2**32)
        if mv(req, 3):
            view.update(
                {
                    "OS-EXT-SRV-ATTR:reservation_id": row["reservation_id"],
                    "OS-EXT-SRV-ATTR:launch_index": row["launch_index"],
                    "OS-EXT-SRV-ATTR:hostname": console.hostname(row["name"]),
                    "OS-EXT-SRV-ATTR:kernel_id": "",
                    "OS-EXT-SRV-ATTR:ramdisk_id": "",
                    "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                    "OS-EXT-SRV-ATTR:user_data": None,
                }
            )
        if mv(req, 16):
            view["host_status"] = "UP" if host else ""
    if mv(req, 3):
        view["os-extended-volumes:volumes_attached"] = []
    if mv(req, 9):
        view["locked"] = bool(row["locked"])
    if mv(req, 19):
        view["description"] = row["description"]
    if mv(req, 26):
        view["tags"] = loads(row["tags"], [])
    if mv(req, 63):
        view["trusted_image_certificates"] = None
    if mv(req, 73):
        view["locked_reason"] = row["locked_reason"] if row["locked"] else None
    if mv(req, 96):
        view["pinned_availability_zone"] = None
    if mv(req, 100):
        view["scheduler_hints"] = {}
    if show and mv(req, 71):
        view["server_groups"] = []
    fault = loads(row["fault"])
    if fault and status in ("ERROR", "DELETED"):
        shown = {
            "code": fault["code"],
            "created": clock.db_to_api(fault["created"]),
            "message": fault["message"],
        }
        if ctx.is_admin or fault["code"] != 500:
            shown["details"] = fault.get("details", "")
        view["fault"] = shown
    return view


# -- list ------------------------------------------------------------------------------------


def _server_sort(req):
    keys = req.params("sort_key")
    dirs = req.params("sort_dir")
    for key in keys:
        if key not in SERVER_SORT_KEYS:
            raise ApiError(400, f"Invalid input for query parameters sort_key. Value: {key}.")
    for direction in dirs:
        if direction not in ("asc", "desc"):
            raise ApiError(400, f"Invalid input for query parameters sort_dir. Value: {direction}.")
    if not keys:
        keys, dirs = ["created_at"], dirs or ["desc"]
    dirs = (list(dirs) + [dirs[-1] if dirs else "desc"] * len(keys))[: len(keys)]
    sort = [(SERVER_SORT_KEYS[k], d) for k, d in zip(keys, dirs, strict=True)]
    if "id" not in [e for e, _ in sort]:
        sort.append(("id", dirs[0]))
    return sort


def list_servers(req, detail=False):
    ctx = req.ctx
    store = req.app.store
    where, args = [], []
    all_tenants = False
    if req.has_param("all_tenants"):
        all_tenants = bool_value("all_tenants", req.param("all_tenants"))
    if all_tenants:
        if not ctx.is_admin:
            action = "detail" if detail else "index"
            raise ApiError(
                403,
                f"Policy doesn't allow os_compute_api:servers:{action}:"
                "get_all_tenants to be performed.",
            )
        project = req.param("project_id") or req.param("tenant_id")
        if project:
            where.append("project_id = ?")
            args.append(project)
    else:
        # As in Nova, project_id/tenant_id only take effect together with all_tenants.
        where.append("project_id = ?")
        args.append(ctx.project_id)

    include_deleted = False
    for name, op in (("changes-since", ">="), ("changes-before", "<=")):
        value = req.param(name)
        if value is not None:
            try:
                stamp = clock.parse_iso(value)
            except ValueError:
                raise ApiError(
                    400,
                    f"Invalid input for query parameters {name}. "
                    f"Value: {value}. is not a 'date-time'",
                ) from None
            where.append(f"updated_at {op} ?")
            args.append(stamp)
            include_deleted = True
    statuses = req.params("status")
    if statuses:
        vm_states = []
        for status in statuses:
            vm_states += STATUS_TO_VM.get(status.upper(), [])
        if "deleted" in vm_states:
            if not ctx.is_admin:
                raise ApiError(403, "Only administrators may list deleted instances")
            include_deleted = True
        if not vm_states:
            vm_states = ["__none__"]
        where.append(f"vm_state IN ({', '.join('?' * len(vm_states))})")
        args += vm_states
    if (
        req.param("deleted") is not None
        and ctx.is_admin
        and bool_value("deleted", req.param("deleted"))
    ):
        where.append("deleted = 1")
        include_deleted = True
    if not include_deleted:
        where.append("deleted = 0")
    if req.param("name") is not None:
        try:
            re.compile(req.param("name"))
        except re.error:
            raise ApiError(
                400, f"Invalid regular expression for name: {req.param('name')}"
            ) from None
        where.append("REGEXP(?, name)")
        args.append(req.param("name"))
    if req.param("ip") is not None:
        where.append("REGEXP(?, ip)")
        args.append(req.param("ip"))
    for param, column in (
        ("flavor", "flavor_id"),
        ("image", "image_id"),
        ("key_name", "key_name"),
        ("availability_zone", "availability_zone"),
        ("vm_state", "vm_state"),
        ("task_state", "task_state"),
        ("reservation_id", "reservation_id"),
    ):
        value = req.param(param)
        if value is not None:
            if param in ("flavor", "image"):
                value = value.rstrip("/").rsplit("/", 1)[-1]
            where.append(f"{column} = ?")
            args.append(value)
    if req.param("user_id") is not None and ctx.is_admin:
        where.append("user_id = ?")
        args.append(req.param("user_id"))
    if req.param("locked") is not None:
        where.append("locked = ?")
        args.append(1 if bool_value("locked", req.param("locked")) else 0)
    if req.param("power_state") is not None:
        where.append("power_state = ?")
        args.append(req.param("power_state"))

    sort = _server_sort(req)
    limit = limit_param(req)
    marker = req.param("marker")
    if marker is not None:
        exprs = ", ".join(e for e, _ in sort)
        mrow = store.one(f"SELECT {exprs}, project_id FROM servers WHERE id = ?", (marker,))
        if mrow is None or (not ctx.is_admin and mrow["project_id"] != ctx.project_id):
            raise ApiError(400, f"marker [{marker}] not found")
        clause, cargs = keyset_condition(sort, list(mrow)[: len(sort)])
        where.append(clause)
        args += cargs
    rows = []
    if limit > 0:
        rows = store.query(
            f"SELECT * FROM servers WHERE {' AND '.join(where)} ORDER BY {order_by(sort)} LIMIT ?",
            [*args, limit],
        )
    collection = "servers/detail" if detail else "servers"
    if detail:
        items = [server_view(req, r) for r in rows]
    else:
        items = [
            {"id": r["id"], "name": r["name"], "links": links(req, "servers", r["id"])}
            for r in rows
        ]
    body = {"servers": items}
    if rows and len(rows) == limit:
        body["servers_links"] = next_link(req, collection, rows[-1]["id"])
    return Response(200, body)


def list_servers_detail(req):
    return list_servers(req, detail=True)


def show_server(req, server_id):
    return Response(200, {"server": server_view(req, _server_row(req, server_id), show=True)})


# -- create ------------------------------------------------------------------------------------


def _ref_id(ref):
    return str(ref).rstrip("/").rsplit("/", 1)[-1]


def _count(server, name, default):
    value = server.get(name, default)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ApiError(400, f"Invalid input for field/attribute {name}. Value: {value}.")
    return value


def _auto_network(req, *, required):
    """Nova's choice for `networks: "auto"` (and for no `networks` before 2.37): the
    one network the project may use. Several: 409, Nova will not guess. None: "auto"
    would allocate a topology (devcloud has none to offer); before 2.37 the server
    simply gets no network."""
    project_id = req.ctx.project_id
    usable = neutron.usable_networks(req.app.store, project_id)
    if len(usable) > 1:
        raise ApiError(
            409, "Multiple possible networks found, use a Network ID to be more specific."
        )
    if not usable:
        if required:
            raise ApiError(
                400, f"Unable to automatically allocate a network for project {project_id}"
            )
        return None
    return usable[0]


def _parse_networks(req, server):
    """The network row the server joins (its address is shown under the network's
    name), or None for no network. A list of several joins the first: devcloud
    gives a server one address."""
    networks = server.get("networks")
    if networks is None:
        if mv(req, 37):
            raise ApiError(
                400,
                "Invalid input for field/attribute server. Value: "
                "'networks' is a required property",
            )
        return _auto_network(req, required=False)
    if networks == "none":
        return None
    if networks == "auto":
        return _auto_network(req, required=True)
    if isinstance(networks, str) or not isinstance(networks, list):
        raise ApiError(400, f"Invalid input for field/attribute networks. Value: {networks}.")
    if not networks:
        return _auto_network(req, required=False)
    joined = []
    for net in networks:
        if not isinstance(net, dict):
            raise ApiError(400, "Bad networks format")
        if net.get("port"):
            raise ApiError(400, f"Port {net['port']} could not be found.")
        if "uuid" in net:
            row = neutron.network_for_server(req.app.store, req.ctx.project_id, net["uuid"])
            if row is None:
                raise ApiError(400, f"Network {net['uuid']} could not be found.")
            joined.append(row)
    return joined[0] if joined else _auto_network(req, required=False)


def _boot_image(req, server):
    """Returns (image_row or None, image_id-for-view)."""
    store = req.app.store
    image_ref = server.get("imageRef")
    bdms = server.get("block_device_mapping_v2") or []
    boot_bdm = None
    for bdm in bdms:
        if isinstance(bdm, dict) and str(bdm.get("boot_index", "")) == "0":
            boot_bdm = bdm
    if not image_ref and boot_bdm is None:
        raise ApiError(400, "Missing imageRef attribute")
    if boot_bdm is not None and boot_bdm.get("destination_type") == "volume":
        # Boot from volume: Nova shows image "" and takes image checks from the source image.
        src = boot_bdm.get("uuid") if boot_bdm.get("source_type") == "image" else None
        row = image_mod.get_visible(store, req.ctx, src) if src else None
        return row, ""
    image_id = _ref_id(image_ref)
    row = image_mod.get_visible(store, req.ctx, image_id)
    if row is None:
        raise ApiError(400, f"Image {image_id} could not be found.")
    return row, image_id


def _check_image_fits(image_row, flavor, boot_from_volume):
    if image_row is None:
        return
    if image_row["status"] != "active":
        raise ApiError(400, f"Image {image_row['id']} is not active.")
    if image_row["min_ram"] and flavor["ram"] < image_row["min_ram"]:
        raise ApiError(400, "Flavor's memory is too small for requested image.")
    if boot_from_volume or flavor["disk"] == 0:
        return
    disk_bytes = flavor["disk"] * clock.GIB
    if image_row["size"] and image_row["size"] > disk_bytes:
        raise ApiError(
            400,
            f"Flavor's disk is too small for requested image. Flavor disk is "
            f"{disk_bytes} bytes, image is {image_row['size']} bytes.",
        )
    min_disk = (image_row["min_disk"] or 0) * clock.GIB
    if min_disk > disk_bytes:
        raise ApiError(
            400,
            "Flavor's disk is smaller than the minimum size specified in image "
            f"metadata. Flavor disk is {disk_bytes} bytes, minimum size is "
            f"{min_disk} bytes.",
        )


def _check_metadata(metadata, what="metadata"):
    if not isinstance(metadata, dict):
        raise ApiError(400, f"Invalid input for field/attribute {what}.")
    for key, value in metadata.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 255:
            raise ApiError(400, f"Invalid input for field/attribute {what}. Value: {key!r}.")
        if not isinstance(value, str) or len(value) > 255:
            raise ApiError(400, f"Invalid input for field/attribute {what}. Value: {value!r}.")
    if len(metadata) > quotas.DEFAULT_QUOTA["metadata_items"]:
        raise ApiError(
            403,
            "Quota exceeded for metadata_items: Requested "
            f"{len(metadata)}, but already used 0 of 128 metadata_items",
        )


def _allowed_count(store, project_id, flavor, min_count, max_count):
    """Nova creates as many as quota allows between min_count and max_count."""
    quota = quotas.quota_of(store, project_id)
    used = quotas.usage_of(store, project_id)
    per = {"instances": 1, "cores": flavor["vcpus"], "ram": flavor["ram"]}
    allowed = max_count
    for resource in ("instances", "cores", "ram"):
        limit = quota[resource]
        if limit < 0 or per[resource] == 0:
            continue
        allowed = min(allowed, (limit - used[resource]) // per[resource])
    if allowed < min_count:
        for resource in ("instances", "cores", "ram"):
            limit = quota[resource]
            if limit >= 0 and used[resource] + per[resource] * min_count > limit:
                raise ApiError(
                    403,
                    f"Quota exceeded for {resource}: Requested "
                    f"{per[resource] * min_count}, but already used "
                    f"{used[resource]} of {limit} {resource}",
                )
    return allowed


def allocate_ip(conn, store):
    counter = int(store.get_meta("ip_counter", "2560"))
    store.set_meta("ip_counter", str(counter + 1))
    return f"192.168.{(counter // 254) % 256}.{counter % 254 + 1}"


def flavor_snapshot(row):
    return {
        "id": row["id"],
        "name": row["name"],
        "vcpus": row["vcpus"],
        "ram": row["ram"],
        "disk": row["disk"],
        "ephemeral": row["ephemeral"],
        "swap": row["swap"],
        "extra_specs": loads(row["extra_specs"], {}),
    }


def image_props_snapshot(image_row):
    if image_row is None:
        return {}
    props = loads(image_row["properties"], {})
    return {
        "properties": props,
        "min_disk": image_row["min_disk"],
        "min_ram": image_row["min_ram"],
        "disk_format": image_row["disk_format"],
        "container_format": image_row["container_format"],
        "size": image_row["size"],
    }


def create_server(req):
    ctx = req.ctx
    app = req.app
    store = app.store
    body = req.json()
    server = body.get("server") if isinstance(body, dict) else None
    if not isinstance(server, dict):
        raise ApiError(
            400,
            "The server could not comply with the request since it is either "
            "malformed or otherwise incorrect.",
        )
    name = server.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise ApiError(400, f"Invalid input for field/attribute name. Value: {name}.")
    if "flavorRef" not in server:
        raise ApiError(
            400,
            "Invalid input for field/attribute server. Value: 'flavorRef' is a required property",
        )
    flavor_id = _ref_id(server["flavorRef"])
    flavor_row = flavors.visible_flavor(store, ctx, flavor_id)
    if flavor_row is None:
        # The stock Nova 34 says this for an unknown flavor and for a private one
        # the caller may not use alike.
        raise ApiError(400, f"Flavor {flavor_id} could not be found.")
    if not ctx.is_admin and not flavors.usable_in_project(store, flavor_row, ctx.project_id):
        # Nova boots a private flavor only in the projects on its access list, but an
        # admin context reads every flavor and passes (seen on the stock Nova 34: the
        # portal's service account, admin inside beta, booted alpha's GPU flavor there).
        # A portal must check flavor access itself.
        raise ApiError(400, f"Flavor {flavor_id} could not be found.")
    flavor = flavor_snapshot(flavor_row)
    image_row, image_id = _boot_image(req, server)
    _check_image_fits(image_row, flavor, boot_from_volume=(image_id == ""))
    network = _parse_networks(req, server)
    min_count = _count(server, "min_count", 1)
    max_count = _count(server, "max_count", min_count)
    if min_count > max_count:
        raise ApiError(400, "min_count must be <= max_count")
    az = server.get("availability_zone")
    if az not in (None, "", "nova"):
        raise ApiError(400, "The requested availability zone is not available")
    key_name = keypairs.boot_key_name(req, server.get("key_name"))
    metadata = server.get("metadata", {})
    _check_metadata(metadata)
    description = server.get("description") if mv(req, 19) else None
    tags = server.get("tags", []) if mv(req, 52) else []
    groups = [
        g.get("name", "default") for g in server.get("security_groups") or [] if isinstance(g, dict)
    ] or ["default"]
    disk_used = image_row["size"] if image_row is not None and image_row["size"] else 2 * clock.GIB
    # What the hypervisor boots (the source image of a boot volume, too), for boot_panic.
    boot_image = (image_row["name"] or "") if image_row is not None else ""
    boot_image_id = image_row["id"] if image_row is not None else ""

    reservation_id = "r-" + secrets.token_hex(4)
    created = []
    with store.write() as conn:
        count = _allowed_count(store, ctx.project_id, flavor, min_count, max_count)
        for index in range(count):
            server_id = str(uuid.uuid4())
            display = f"{name}-{index + 1}" if count > 1 else name
            now = clock.now_db()
            ip = allocate_ip(conn, store) if network is not None else None
            conn.execute(
                "INSERT INTO servers (id, name, project_id, user_id, flavor_id, flavor, image_id,"
                " image_props, vm_state, task_state, power_state, created_at, updated_at,"
                " metadata, tags, description, key_name, network, network_id, ip,"
                " disk_used_bytes, reservation_id, launch_index, security_groups)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'building', 'scheduling', 0, ?, ?, ?, ?, ?, ?,"
                " ?, ?, NULL, ?, ?, ?, ?)",
                (
                    server_id,
                    display,
                    ctx.project_id,
                    ctx.user_id,
                    flavor["id"],
                    dumps(flavor),
                    image_id,
                    dumps(image_props_snapshot(image_row)),
                    now,
                    now,
                    dumps(metadata),
                    dumps(tags),
                    description,
                    key_name,
                    network["name"] if network else None,
                    network["id"] if network else None,
                    disk_used,
                    reservation_id,
                    index,
                    dumps(groups),
                ),
            )
            transitions.plan_boot(
                app, conn, server_id, display, ip, image_id=boot_image_id, image_name=boot_image
            )
            created.append(server_id)
    if server.get("return_reservation_id"):
        return Response(202, {"reservation_id": reservation_id})
    first = created[0]
    admin_pass = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(12))
    resp = {
        "id": first,
        "links": links(req, "servers", first),
        "OS-DCF:diskConfig": "MANUAL",
        "adminPass": admin_pass,
    }
    if network is not None:
        resp["security_groups"] = [{"name": g} for g in groups]
    return Response(
        202, {"server": resp}, {"Location": f"{req.base_url}/compute/v2.1/servers/{first}"}
    )


def update_server(req, server_id):
    body = req.json()
    server = body.get("server") if isinstance(body, dict) else None
    if not isinstance(server, dict):
        raise ApiError(400, "Invalid input for field/attribute server.")
    allowed = {"name", "accessIPv4", "accessIPv6", "OS-DCF:diskConfig"}
    if mv(req, 19):
        allowed.add("description")
    extra = set(server) - allowed
    if extra:
        raise ApiError(
            400,
            f"Additional properties are not allowed ({', '.join(sorted(extra))} was unexpected)",
        )
    sets, args = [], []
    if "name" in server:
        name = server["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise ApiError(400, f"Invalid input for field/attribute name. Value: {name}.")
        sets.append("name = ?")
        args.append(name)
    if "description" in server:
        sets.append("description = ?")
        args.append(server["description"])
    with req.app.store.write() as conn:
        _server_row(req, server_id)
        if sets:
            conn.execute(
                f"UPDATE servers SET {', '.join(sets)}, updated_at = ? WHERE id = ?",
                [*args, clock.now_db(), server_id],
            )
    return Response(200, {"server": server_view(req, _server_row(req, server_id), show=True)})


def delete_server(req, server_id):
    with req.app.store.write() as conn:
        row = _server_row(req, server_id)
        if row["locked"] and not req.ctx.is_admin:
            raise ApiError(409, f"Instance {server_id} is locked")
        transitions.delete_server(req.app, conn, server_id)
    return Response(204)


# -- actions ---------------------------------------------------------------------------------------


def _conflict(action, server_id, attr, state):
    return ApiError(409, f"Cannot '{action}' instance {server_id} while it is in {attr} {state}")


def _check_state(req, row, action, vm_states):
    if row["vm_state"] not in vm_states:
        raise _conflict(action, row["id"], "vm_state", row["vm_state"])
    if row["task_state"] is not None:
        raise _conflict(action, row["id"], "task_state", row["task_state"])
    # As Nova's check_instance_lock: a lock stops everyone but admins. A service
    # account with the admin role passes it, so a portal must look at `locked` itself.
    if row["locked"] and not req.ctx.is_admin:
        raise ApiError(409, f"Instance {row['id']} is locked")


def server_action(req, server_id):
    body = req.json()
    if not isinstance(body, dict) or len(body) != 1:
        raise ApiError(400, "Malformed request body: exactly one action expected.")
    action, args = next(iter(body.items()))
    handlers = {
        "os-stop": _action_stop,
        "os-start": _action_start,
        "createImage": _action_create_image,
        "os-getConsoleOutput": _action_console_output,
        "lock": _action_lock,
        "unlock": _action_unlock,
        "shelve": _action_shelve,
        "shelveOffload": _action_shelve_offload,
        "unshelve": _action_unshelve,
    }
    if action not in handlers:
        raise ApiError(400, f"There is no such action: {action}")
    return handlers[action](req, server_id, args)


def _action_lock(req, server_id, args):
    """`{"lock": null}`, or from 2.73 `{"lock": {"locked_reason": "..."}}`: 202."""
    reason = None
    if isinstance(args, dict) and "locked_reason" in args:
        if not mv(req, 73):
            raise ApiError(
                400, "Additional properties are not allowed ('locked_reason' was unexpected)"
            )
        reason = args["locked_reason"]
        if not isinstance(reason, str) or len(reason) > 255:
            raise ApiError(400, "Invalid input for field/attribute locked_reason.")
    elif args is not None and args != {}:
        raise ApiError(400, "Invalid input for field/attribute lock.")
    with req.app.store.write() as conn:
        _server_row(req, server_id)
        conn.execute(
            "UPDATE servers SET locked = 1, locked_reason = ?, updated_at = ? WHERE id = ?",
            (reason, clock.now_db(), server_id),
        )
    return Response(202)


def _action_unlock(req, server_id, args):
    with req.app.store.write() as conn:
        _server_row(req, server_id)
        conn.execute(
            "UPDATE servers SET locked = 0, locked_reason = NULL, updated_at = ? WHERE id = ?",
            (clock.now_db(), server_id),
        )
    return Response(202)


def _action_stop(req, server_id, args):
    app = req.app
    with app.store.write() as conn:
        row = _server_row(req, server_id)
        _check_state(req, row, "stop", ("active", "error"))
        transitions.plan_stop(app, conn, row)
    return Response(202)


def _action_start(req, server_id, args):
    app = req.app
    with app.store.write() as conn:
        row = _server_row(req, server_id)
        if row["vm_state"] == "shelved_offloaded":
            # compute.api's check_instance_host comes first: no host, not ready.
            raise ApiError(409, f"Instance {server_id} is not ready")
        _check_state(req, row, "start", ("stopped",))
        transitions.plan_start(app, conn, row)
    return Response(202)


def _snapshot_image(app, conn, req, row, name, metadata):
    """The Glance image Nova makes for createImage and shelve (compute_utils.create_image):
    queued, private, owned by the caller's project, the base image's properties and
    Nova's snapshot markers. Returns its id."""
    ctx = req.ctx
    flavor = loads(row["flavor"])
    base = loads(row["image_props"], {})
    props = dict(base.get("properties", {}))
    project = app.store.one("SELECT name FROM projects WHERE id = ?", (ctx.project_id,))
    props.update(
        {
            "image_type": "snapshot",
            "instance_uuid": row["id"],
            "user_id": ctx.user_id,
            "base_image_ref": row["image_id"],
            "owner_project_name": project["name"] if project else "",
            "owner_user_name": ctx.user_name,
            "boot_roles": ",".join(ctx.roles),
        }
    )
    props.update(metadata)
    return image_mod.insert_image(
        conn,
        {
            "name": name,
            "status": "queued",
            "visibility": "private",
            "owner": ctx.project_id,
            "min_disk": max(base.get("min_disk") or 0, flavor["disk"]),
            "min_ram": base.get("min_ram") or 0,
            "disk_format": base.get("disk_format") or "qcow2",
            "container_format": base.get("container_format") or "bare",
            "properties": props,
        },
    )


def _action_create_image(req, server_id, args):
    app = req.app
    if not isinstance(args, dict):
        raise ApiError(400, "Invalid input for field/attribute createImage.")
    name = args.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise ApiError(400, f"Invalid input for field/attribute name. Value: {name}.")
    metadata = args.get("metadata", {})
    _check_metadata(metadata)
    with app.store.write() as conn:
        row = _server_row(req, server_id)
        _check_state(req, row, "createImage", ("active", "stopped", "paused", "suspended"))
        image_id = _snapshot_image(app, conn, req, row, name, metadata)
        transitions.plan_snapshot(app, conn, row, image_id)
    location = f"{req.base_url}/image/v2/images/{image_id}"
    if mv(req, 45):
        return Response(202, {"image_id": image_id})
    return Response(202, None, {"Location": location})


# -- shelve ----------------------------------------------------------------------------------------


def _shelve_policy(req, server_id, rule):
    """A site whose policy refuses shelving (the shelve_forbidden fault) answers as Nova's
    policy check does, before any state check. shelve_offload is admin-only by default."""
    row = _server_row(req, server_id)
    if rule == "shelve_offload" and not req.ctx.is_admin:
        raise ApiError(
            403, "Policy doesn't allow os_compute_api:os-shelve:shelve_offload to be performed."
        )
    if rule == "shelve" and req.app.faults.shelve_forbidden(row["name"]):
        raise ApiError(403, "Policy doesn't allow os_compute_api:os-shelve:shelve to be performed.")


def _action_shelve(req, server_id, args):
    """`{"shelve": null}`: snapshot to "<name>-shelved", then (shelved_offload_time=0,
    Nova's default) offload at once: SHELVED_OFFLOADED, host gone, IP, name, flavor and
    metadata kept. The snapshot image carries instance_uuid like createImage's."""
    app = req.app
    _shelve_policy(req, server_id, "shelve")
    with app.store.write() as conn:
        row = _server_row(req, server_id)
        _check_state(req, row, "shelve", ("active", "stopped", "paused", "suspended"))
        image_id = _snapshot_image(app, conn, req, row, f"{row['name']}-shelved", {})
        transitions.plan_shelve(app, conn, row, image_id)
    return Response(202)


def _action_shelve_offload(req, server_id, args):
    app = req.app
    _shelve_policy(req, server_id, "shelve_offload")
    with app.store.write() as conn:
        row = _server_row(req, server_id)
        _check_state(req, row, "shelveOffload", ("shelved",))
        transitions.plan_offload(app, conn, row)
    return Response(202)


def _unshelve_args(req, args):
    """Nova's schema: null before 2.77 (a body is ignored there); from 2.77 an object
    with `availability_zone` (2.91 adds `host`, admin only, and a null AZ to unpin)."""
    if args is None or not mv(req, 77):
        return None
    if not isinstance(args, dict):
        raise _invalid("unshelve", args, f"{args!r} is not of type 'object', 'null'")
    allowed = {"availability_zone", "host"} if mv(req, 91) else {"availability_zone"}
    extra = [key for key in args if key not in allowed]
    if extra:
        names = ", ".join(repr(key) for key in extra)
        raise _invalid(
            "unshelve", args, f"Additional properties are not allowed ({names} was unexpected)"
        )
    if "host" in args and not req.ctx.is_admin:
        raise ApiError(
            403, "Policy doesn't allow os_compute_api:os-shelve:unshelve_to_host to be performed."
        )
    return args.get("availability_zone")


def _action_unshelve(req, server_id, args):
    app = req.app
    az = _unshelve_args(req, args)
    with app.store.write() as conn:
        row = _server_row(req, server_id)
        _check_state(req, row, "unshelve", ("shelved", "shelved_offloaded"))
        if az is not None or (isinstance(args, dict) and "host" in args):
            if row["vm_state"] != "shelved_offloaded":
                raise ApiError(
                    409,
                    f"The unshelve action failed because the instance {server_id} "
                    f"is in vm_state {row['vm_state']}, not shelved_offloaded.",
                )
            if az not in (None, "nova"):
                raise ApiError(400, "The requested availability zone is not available")
        transitions.plan_unshelve(app, conn, row)
    return Response(202)


def _invalid(field, value, problem):
    """Nova's jsonschema error text for a request body field."""
    return ApiError(400, f"Invalid input for field/attribute {field}. Value: {value}. {problem}")


CONSOLE_LENGTH_PATTERN = "^-?[0-9]+$"


def _console_length(args):
    """`length` as Nova's schema admits it: null, an integer or a numeric string, >= -1.

    Nova's validator compares numeric strings with the minimum too, so "-5" is a
    400 like -5; a float with no fraction counts as an integer (JSON Schema).
    """
    if not isinstance(args, dict):
        raise _invalid("os-getConsoleOutput", args, f"{args!r} is not of type 'object'")
    extra = [key for key in args if key != "length"]
    if extra:
        names = ", ".join(repr(key) for key in extra)
        verb = "was" if len(extra) == 1 else "were"
        raise _invalid(
            "os-getConsoleOutput",
            args,
            f"Additional properties are not allowed ({names} {verb} unexpected)",
        )
    length = args.get("length")
    if length is None:
        return None
    if isinstance(length, float) and length.is_integer():
        length = int(length)
    if isinstance(length, bool) or not isinstance(length, (int, str)):
        raise _invalid("length", length, f"{length!r} is not of type 'integer', 'string', 'null'")
    if isinstance(length, str) and not re.search(CONSOLE_LENGTH_PATTERN, length):
        raise _invalid("length", length, f"{length!r} does not match {CONSOLE_LENGTH_PATTERN!r}")
    if int(length) < -1:
        raise _invalid("length", length, f"{int(length)} is less than the minimum of -1")
    return int(length)


def _action_console_output(req, server_id, args):
    length = _console_length(args)
    row = _server_row(req, server_id)
    if not _placed(row):
        # compute.api's check_instance_host: InstanceNotReady.
        raise ApiError(409, f"Instance {server_id} is not ready")
    raw = console.render(row, clock.now_ts(), req.app.speed, req.app.guest_boot)
    if raw is None:
        # Placed, but libvirt has no domain yet (networking, block_device_mapping,
        # most of spawning) or never got one: the driver raises InstanceNotFound.
        raise ApiError(404, f"Instance {server_id} could not be found.")
    return Response(200, {"output": console.nova_output(raw, length)})


# -- metadata --------------------------------------------------------------------------------------

METADATA_STATES = ("active", "paused", "suspended", "stopped")


def _metadata_writable(row, action):
    if row["vm_state"] not in METADATA_STATES:
        raise _conflict(action, row["id"], "vm_state", row["vm_state"])
    if row["task_state"] is not None:
        raise _conflict(action, row["id"], "task_state", row["task_state"])


def get_metadata(req, server_id):
    return Response(200, {"metadata": loads(_server_row(req, server_id)["metadata"], {})})


def _write_metadata(req, server_id, replace):
    body = req.json()
    metadata = body.get("metadata") if isinstance(body, dict) else None
    _check_metadata(metadata)
    with req.app.store.write() as conn:
        row = _server_row(req, server_id)
        _metadata_writable(row, "update metadata")
        current = {} if replace else loads(row["metadata"], {})
        current.update(metadata)
        conn.execute(
            "UPDATE servers SET metadata = ?, updated_at = ? WHERE id = ?",
            (dumps(current), clock.now_db(), server_id),
        )
    return Response(200, {"metadata": current})


def replace_metadata(req, server_id):
    return _write_metadata(req, server_id, replace=True)


def merge_metadata(req, server_id):
    return _write_metadata(req, server_id, replace=False)


def get_metadata_item(req, server_id, key):
    metadata = loads(_server_row(req, server_id)["metadata"], {})
    if key not in metadata:
        raise ApiError(404, "Metadata item was not found")
    return Response(200, {"meta": {key: metadata[key]}})


def set_metadata_item(req, server_id, key):
    body = req.json()
    meta = body.get("meta") if isinstance(body, dict) else None
    if not isinstance(meta, dict) or len(meta) != 1 or key not in meta:
        raise ApiError(400, "Request body and URI mismatch")
    _check_metadata(meta)
    with req.app.store.write() as conn:
        row = _server_row(req, server_id)
        _metadata_writable(row, "update metadata")
        current = loads(row["metadata"], {})
        current[key] = meta[key]
        conn.execute(
            "UPDATE servers SET metadata = ?, updated_at = ? WHERE id = ?",
            (dumps(current), clock.now_db(), server_id),
        )
    return Response(200, {"meta": meta})


def delete_metadata_item(req, server_id, key):
    with req.app.store.write() as conn:
        row = _server_row(req, server_id)
        current = loads(row["metadata"], {})
        if key not in current:
            raise ApiError(404, "Metadata item was not found")
        _metadata_writable(row, "delete metadata")
        del current[key]
        conn.execute(
            "UPDATE servers SET metadata = ?, updated_at = ? WHERE id = ?",
            (dumps(current), clock.now_db(), server_id),
        )
    return Response(204)


def server_ips(req, server_id):
    return Response(200, {"addresses": _addresses(_server_row(req, server_id))})


def register(router: Router):
    sid = "(?P<server_id>[^/]+)"
    router.add("GET", "/servers", list_servers)
    router.add("POST", "/servers", create_server)
    router.add("GET", "/servers/detail", list_servers_detail)
    router.add("GET", f"/servers/{sid}", show_server)
    router.add("PUT", f"/servers/{sid}", update_server)
    router.add("DELETE", f"/servers/{sid}", delete_server)
    router.add("POST", f"/servers/{sid}/action", server_action)
    router.add("GET", f"/servers/{sid}/ips", server_ips)
    router.add("GET", f"/servers/{sid}/metadata", get_metadata)
    router.add("PUT", f"/servers/{sid}/metadata", replace_metadata)
    router.add("POST", f"/servers/{sid}/metadata", merge_metadata)
    router.add("GET", f"/servers/{sid}/metadata/(?P<key>[^/]+)", get_metadata_item)
    router.add("PUT", f"/servers/{sid}/metadata/(?P<key>[^/]+)", set_metadata_item)
    router.add("DELETE", f"/servers/{sid}/metadata/(?P<key>[^/]+)", delete_metadata_item)
    fid = "(?P<flavor_id>[^/]+)"
    router.add("GET", "/flavors", flavors.list_flavors)
    router.add("GET", "/flavors/detail", flavors.list_flavors_detail)
    router.add("GET", f"/flavors/{fid}", flavors.show_flavor)
    router.add("GET", f"/flavors/{fid}/os-extra_specs", flavors.flavor_extra_specs)
    router.add("GET", f"/flavors/{fid}/os-extra_specs/(?P<key>[^/]+)", flavors.flavor_extra_spec)
    router.add("GET", f"/flavors/{fid}/os-flavor-access", flavors.flavor_access)
    router.add("POST", "/flavors", flavors.create_flavor)
    router.add("DELETE", f"/flavors/{fid}", flavors.delete_flavor)
    router.add("POST", f"/flavors/{fid}/action", flavors.flavor_action)
    router.add("GET", "/limits", quotas.limits)
    pid = "(?P<project_id>[^/]+)"
    router.add("GET", f"/os-quota-sets/{pid}", quotas.show_quota)
    router.add("PUT", f"/os-quota-sets/{pid}", quotas.update_quota)
    router.add("GET", f"/os-quota-sets/{pid}/detail", quotas.show_quota_detail)
    router.add("GET", f"/os-quota-sets/{pid}/defaults", quotas.show_quota_defaults)
    router.add("GET", "/os-availability-zone", quotas.availability_zones)
    router.add("GET", "/os-availability-zone/detail", quotas.availability_zones_detail)
    router.add("GET", "/os-keypairs", keypairs.list_keypairs)
    router.add("POST", "/os-keypairs", keypairs.create_keypair)
    router.add("GET", "/os-keypairs/(?P<name>[^/]+)", keypairs.show_keypair)
    router.add("DELETE", "/os-keypairs/(?P<name>[^/]+)", keypairs.delete_keypair)
    router.add("GET", "/extensions", quotas.extensions)
    nova_images.register(router)
