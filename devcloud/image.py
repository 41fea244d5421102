"""Glance v2 subset: discovery, list/filters/sort/pagination, CRUD, data, patch."""

import contextlib
import hashlib
import json
import os
import time
import urllib.parse
import uuid

from . import clock, diskformat
from .store import dumps, keyset_condition, loads, order_by
from .web import ApiError, IncompleteBody, Response

IMAGE_API_VERSIONS = [
    "2.18",
    "2.17",
    "2.16",
    "2.15",
    "2.9",
    "2.7",
    "2.6",
    "2.5",
    "2.4",
    "2.3",
    "2.2",
    "2.1",
    "2.0",
]
DEFAULT_LIMIT = 25
MAX_LIMIT = 1000

STATUSES = [
    "queued",
    "saving",
    "uploading",
    "importing",
    "active",
    "deactivated",
    "killed",
    "deleted",
    "pending_delete",
]
VISIBILITIES = ["public", "private", "shared", "community"]
DISK_FORMATS = ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]
CONTAINER_FORMATS = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]
SORT_KEYS = {
    "name": "COALESCE(name, '')",
    "status": "status",
    "container_format": "COALESCE(container_format, '')",
    "disk_format": "COALESCE(disk_format, '')",
    "size": "COALESCE(size, -1)",
    "id": "id",
    "created_at": "created_at",
    "updated_at": "updated_at",
}
READ_ONLY = {
    "status",
    "size",
    "virtual_size",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "created_at",
    "updated_at",
    "self",
    "file",
    "schema",
    "direct_url",
    "locations",
    "location",
    "deleted",
    "deleted_at",
    "stores",
}
# Query parameters that are not custom-property filters.
NON_PROPERTY_PARAMS = {
    "limit",
    "marker",
    "sort_key",
    "sort_dir",
    "sort",
    "member_status",
    "name",
    "owner",
    "visibility",
    "status",
    "tag",
    "protected",
    "os_hidden",
    "size",
    "size_min",
    "size_max",
    "virtual_size",
    "virtual_size_min",
    "virtual_size_max",
    "min_disk_min",
    "min_disk_max",
    "min_ram_min",
    "min_ram_max",
    "created_at",
    "updated_at",
    "id",
    "disk_format",
    "container_format",
    "min_disk",
    "min_ram",
    "checksum",
    "os_hash_value",
}
PATCH_TYPES = (
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
)


# -- shared helpers (also used by compute and seed) --------------------------------


def synthetic_content(key):
    """Stand-in bytes for images whose real data (GBs) we do not keep.

    The reported size stays the plausible one; only checksums and downloads use
    these bytes. Keyed by image id, or by a catalog key so that the same base
    image on two sites has the same checksum.
    """
    return (f"devcloud synthetic image data for {key}\n").encode() * 64


# Synthetic data up to this size is served at its full size, so that the image's
# size and hashes are those of exactly the bytes a download gets (a copy to another
# site can check them). Larger synthetic images (the seeded ones, GBs) keep a
# plausible size but serve only the short stand-in block: hashing GBs at seed time
# would cost minutes. See README "Image data".
SYNTHETIC_FULL_MAX = 64 * 1024 * 1024
CHUNK = 1024 * 1024


def synthetic_key(row):
    data = row["data"] or ""
    return data[len("synthetic:") :] if data.startswith("synthetic:") else row["id"]


def synthetic_chunks(key, size):
    """The synthetic data of `key` as served: `size` bytes (the stand-in block
    repeated) when size is at most SYNTHETIC_FULL_MAX, else the block alone."""
    block = synthetic_content(key)
    if not size or size > SYNTHETIC_FULL_MAX:
        yield block
        return
    piece = block * (CHUNK // len(block) + 1)
    left = size
    offset = 0
    while left > 0:
        # Continue the repetition where the previous piece stopped.
        start = offset % len(block)
        out = piece[start : start + min(left, CHUNK)]
        yield out
        left -= len(out)
        offset += len(out)


def synthetic_length(size, key):
    return size if size and size <= SYNTHETIC_FULL_MAX else len(synthetic_content(key))


def synthetic_hashes(key, size):
    """(md5, sha512) of what synthetic_chunks(key, size) serves."""
    md5, sha512 = hashlib.md5(), hashlib.sha512()
    for piece in synthetic_chunks(key, size):
        md5.update(piece)
        sha512.update(piece)
    return md5.hexdigest(), sha512.hexdigest()


def stored_content(store, row):
    """The whole data of a small image (tests); None when it has none."""
    chunks = stored_chunks(store, row)
    return None if chunks is None else b"".join(chunks[1])


def stored_chunks(store, row):
    """(length, iterator of bytes) of the image's data, read a piece at a time; None
    when it has none."""
    data = row["data"]
    if data == "file":
        path = store.blob_path(row["id"])
        return os.path.getsize(path), _file_chunks(path)
    if data == "synthetic" or (data and data.startswith("synthetic:")):
        key = synthetic_key(row)
        return synthetic_length(row["size"], key), synthetic_chunks(key, row["size"])
    return None


def _file_chunks(path):
    with open(path, "rb") as fh:
        while True:
            piece = fh.read(CHUNK)
            if not piece:
                return
            yield piece


def content_hashes(data):
    return hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest()


def insert_image(conn, fields):
    now = clock.now_db_seconds()
    row = {
        "id": str(uuid.uuid4()),
        "name": None,
        "status": "queued",
        "visibility": "shared",
        "owner": None,
        "size": None,
        "virtual_size": None,
        "min_disk": 0,
        "min_ram": 0,
        "disk_format": None,
        "container_format": None,
        "protected": 0,
        "os_hidden": 0,
        "checksum": None,
        "os_hash_algo": None,
        "os_hash_value": None,
        "created_at": now,
        "updated_at": now,
        "properties": {},
        "tags": [],
        "data": None,
    }
    row.update(fields)
    row["properties"] = dumps(row["properties"])
    row["tags"] = dumps(row["tags"])
    cols = list(row)
    conn.execute(
        f"INSERT INTO images ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
        [row[c] for c in cols],
    )
    return row["id"]


def visibility_clause(ctx):
    """Images a caller may see at all (GET by id)."""
    if ctx.is_admin:
        return "1 = 1", []
    # The unary + keeps SQLite from answering this OR with a multi-index union
    # followed by a full sort; walking the sort-key index and filtering is far
    # cheaper for listings, and id lookups still use the primary key.
    return "(+visibility IN ('public', 'community') OR +owner = ?)", [ctx.project_id]


def get_visible(store, ctx, image_id):
    clause, args = visibility_clause(ctx)
    return store.one(
        f"SELECT * FROM images WHERE id = ? AND deleted = 0 AND {clause}", [image_id, *args]
    )


def image_view(row):
    body = loads(row["properties"], {})
    body.update(
        {
            "id": row["id"],
            "name": row["name"],
            "status": row["status"],
            "visibility": row["visibility"],
            "owner": row["owner"],
            "size": row["size"],
            "virtual_size": row["virtual_size"],
            "min_disk": row["min_disk"],
            "min_ram": row["min_ram"],
            "disk_format": row["disk_format"],
            "container_format": row["container_format"],
            "protected": bool(row["protected"]),
            "os_hidden": bool(row["os_hidden"]),
            "checksum": row["checksum"],
            "os_hash_algo": row["os_hash_algo"],
            "os_hash_value": row["os_hash_value"],
            "tags": loads(row["tags"], []),
            "created_at": clock.db_to_api(row["created_at"]),
            "updated_at": clock.db_to_api(row["updated_at"]),
            "self": f"/v2/images/{row['id']}",
            "file": f"/v2/images/{row['id']}/file",
            "schema": "/v2/schemas/image",
        }
    )
    return body


# image_view() computed by SQLite, for listings: a page of 1,000 images is
# built in C instead of ~20 ms of Python (10 ms of views, 8 of json.dumps),
# which was most of the time a client listing 100,000 images spent waiting.
# json_set, unlike a merge patch, keeps core keys whose value is null.
# tests/devcloud/test_image.py checks it gives exactly image_view's body.
IMAGE_VIEW_SQL = """json_set(properties,
    '$.id', id, '$.name', name, '$.status', status, '$.visibility', visibility,
    '$.owner', owner, '$.size', size, '$.virtual_size', virtual_size,
    '$.min_disk', min_disk, '$.min_ram', min_ram,
    '$.disk_format', disk_format, '$.container_format', container_format,
    '$.protected', json(CASE WHEN protected THEN 'true' ELSE 'false' END),
    '$.os_hidden', json(CASE WHEN os_hidden THEN 'true' ELSE 'false' END),
    '$.checksum', checksum, '$.os_hash_algo', os_hash_algo, '$.os_hash_value', os_hash_value,
    '$.tags', json(tags),
    '$.created_at', CASE WHEN created_at <> '' THEN substr(created_at, 1, 19) || 'Z' END,
    '$.updated_at', CASE WHEN updated_at <> '' THEN substr(updated_at, 1, 19) || 'Z' END,
    '$.self', '/v2/images/' || id, '$.file', '/v2/images/' || id || '/file',
    '$.schema', '/v2/schemas/image')"""


def _not_found(image_id):
    return ApiError(404, f"No image found with ID {image_id}")


def _load(req, image_id):
    row = get_visible(req.app.store, req.ctx, image_id)
    if row is None:
        raise _not_found(image_id)
    return row


def _may_modify(req, row):
    return req.ctx.is_admin or (row["owner"] is not None and row["owner"] == req.ctx.project_id)


# -- discovery ------------------------------------------------------------------------


def _versions_body(req):
    values = []
    for i, version in enumerate(IMAGE_API_VERSIONS):
        values.append(
            {
                "id": f"v{version}",
                "status": "CURRENT" if i == 0 else "SUPPORTED",
                "links": [{"rel": "self", "href": f"{req.base_url}/image/v2/"}],
            }
        )
    return {"versions": values}


def versions(req):
    return Response(300, _versions_body(req))


def versions_200(req):
    return Response(200, _versions_body(req))


# -- list -------------------------------------------------------------------------------


def _bool_param(name, value):
    lowered = value.lower()
    if lowered in ("true", "false"):
        return 1 if lowered == "true" else 0
    raise ApiError(
        400, f"Invalid value '{value}' for '{name}' filter. Valid values are 'true' or 'false'."
    )


def _split_in(value):
    return [v.strip().strip('"') for v in value[3:].split(",") if v.strip()]


def _time_filter(name, value):
    op, sep, rest = value.partition(":")
    ops = {"eq": "=", "neq": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
    if sep and op in ops:
        stamp = rest
        sql_op = ops[op]
    elif sep and op.isalpha() and not op.isdigit():
        raise ApiError(400, f"Unable to filter on a unknown operator '{op}'.")
    else:
        stamp = value
        sql_op = "="
    try:
        parsed = clock.parse_iso(stamp)
    except ValueError:
        raise ApiError(400, f"Invalid {name} value '{stamp}': expected an ISO 8601 time.") from None
    return f"{name} {sql_op} ?", [parsed[:19] + ".000000"]


def _parse_sort(req):  # a Request or a Query
    has_sort = req.has_param("sort")
    keys = req.params("sort_key")
    dirs = req.params("sort_dir")
    if has_sort and (keys or dirs):
        raise ApiError(
            400, "The 'sort' argument is not supported with the 'sort_key' or 'sort_dir' arguments."
        )
    if has_sort:
        keys, dirs = [], []
        for item in req.param("sort").split(","):
            key, _, direction = item.strip().partition(":")
            keys.append(key.strip())
            dirs.append(direction.strip() or "desc")
    if len(dirs) > len(keys) and keys:
        raise ApiError(400, "The number of sort_dir values exceeds the number of sort_key values.")
    for key in keys:
        if key not in SORT_KEYS:
            raise ApiError(
                400,
                f"Invalid sort key: {key}. It must be one of the following: "
                + ", ".join(SORT_KEYS)
                + ".",
            )
    for direction in dirs:
        if direction not in ("asc", "desc"):
            raise ApiError(400, f"Invalid sort direction: {direction}")
    if not keys:
        keys = ["created_at"]
    default_dir = "desc"
    if not dirs:
        dirs = [default_dir] * len(keys)
    elif len(dirs) == 1:
        default_dir = dirs[0]
        dirs = dirs * len(keys)
    elif len(dirs) != len(keys):
        raise ApiError(
            400, "The number of sort_dir values must match the number of sort_key values."
        )
    keys, dirs = list(keys), list(dirs)
    for extra in ("created_at", "id"):
        if extra not in keys:
            keys.append(extra)
            dirs.append(default_dir)
    return [(SORT_KEYS[k], d) for k, d in zip(keys, dirs, strict=True)]


class Query:
    """The query-string accessors of a Request over a plain list of (key, value) pairs.

    Nova's image proxy translates its own filters into Glance ones and lists
    through the same code as /v2/images.
    """

    def __init__(self, pairs):
        self.query = list(pairs)

    def param(self, name, default=None):
        for key, value in self.query:
            if key == name:
                return value
        return default

    def params(self, name):
        return [value for key, value in self.query if key == name]

    def has_param(self, name):
        return any(key == name for key, _ in self.query)


# Integer columns: `<column>=N` matches exactly, `<column>_min` / `<column>_max`
# bound a range (Glance treats any core column this way).
NUMERIC_COLUMNS = ("size", "virtual_size", "min_disk", "min_ram")


def _range_param(name, value):
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, "Unable to filter on a range with a non-numeric value.") from None


def select_images(store, ctx, query, default_limit=DEFAULT_LIMIT, columns="*"):
    """Glance's listing rules over a Query: returns (rows of `columns`, limit)."""
    where = ["deleted = 0"]
    args = []
    clause, cargs = visibility_clause(ctx)
    where.append(clause)
    args += cargs

    limit_raw = query.param("limit")
    if limit_raw is None:
        limit = default_limit
    else:
        try:
            limit = int(limit_raw)
        except ValueError:
            raise ApiError(400, "limit param must be an integer") from None
        if limit < 0:
            raise ApiError(400, "limit param must be positive")
        limit = min(limit, MAX_LIMIT)

    visibility = query.param("visibility")
    if visibility is not None:
        if visibility not in [*VISIBILITIES, "all"]:
            raise ApiError(400, f"Invalid visibility value: {visibility}")
        if visibility != "all":
            where.append("visibility = ?")
            args.append(visibility)
    else:
        # Community images only show up in the default listing for their owner.
        where.append("(+visibility != 'community' OR +owner = ?)")
        args.append(ctx.project_id)

    os_hidden = query.param("os_hidden")
    where.append("os_hidden = ?")
    args.append(_bool_param("os_hidden", os_hidden) if os_hidden is not None else 0)

    for name in ("name", "id", "status", "container_format", "disk_format"):
        value = query.param(name)
        if value is None:
            continue
        if value.startswith("in:"):
            values = _split_in(value)
            where.append(f"{name} IN ({', '.join('?' * len(values))})" if values else "0 = 1")
            args += values
        else:
            where.append(f"{name} = ?")
            args.append(value)
    for name in ("owner", "checksum", "os_hash_value"):
        value = query.param(name)
        if value is not None:
            where.append(f"{name} = ?")
            args.append(value)
    for name in NUMERIC_COLUMNS:
        value = query.param(name)
        if value is not None:
            try:
                where.append(f"{name} = ?")
                args.append(int(value))
            except ValueError:
                # Glance compares the column with the text, which matches nothing.
                where[-1] = "0 = 1"
        for suffix, op in (("_min", ">="), ("_max", "<=")):
            value = query.param(name + suffix)
            if value is not None:
                where.append(f"{name} {op} ?")
                args.append(_range_param(name + suffix, value))
    if query.param("protected") is not None:
        where.append("protected = ?")
        args.append(_bool_param("protected", query.param("protected")))
    for name in ("created_at", "updated_at"):
        for value in query.params(name):
            sql, sargs = _time_filter(name, value)
            where.append(sql)
            args += sargs
    for tag in query.params("tag"):
        where.append("EXISTS (SELECT 1 FROM json_each(images.tags) WHERE json_each.value = ?)")
        args.append(tag)
    for key, value in query.query:
        if key in NON_PROPERTY_PARAMS:
            continue
        where.append("json_extract(properties, ?) = ?")
        args += ['$."' + key.replace('"', "") + '"', value]

    sort = _parse_sort(query)
    marker = query.param("marker")
    if marker is not None:
        vclause, vargs = visibility_clause(ctx)
        exprs = ", ".join(expr for expr, _ in sort)
        mrow = store.one(
            f"SELECT {exprs} FROM images WHERE id = ? AND deleted = 0 AND {vclause}",
            [marker, *vargs],
        )
        if mrow is None:
            raise ApiError(400, f"Invalid marker. Image {marker} could not be found.")
        kclause, kargs = keyset_condition(sort, list(mrow))
        where.append(kclause)
        args += kargs

    rows = []
    if limit > 0:
        rows = store.query(
            f"SELECT {columns} FROM images WHERE {' AND '.join(where)} "
            f"ORDER BY {order_by(sort)} LIMIT ?",
            [*args, limit],
        )
    return rows, limit


def list_images(req):
    rows, limit = select_images(
        req.app.store, req.ctx, req, columns=f"id, {IMAGE_VIEW_SQL} AS body"
    )
    params = [(k, v) for k, v in req.query if k != "marker"]
    first = "/v2/images"
    if params:
        first += "?" + urllib.parse.urlencode(params)
    links = {"first": first, "schema": "/v2/schemas/images"}
    if rows and len(rows) == limit:
        links["next"] = "/v2/images?" + urllib.parse.urlencode(
            [*params, ("marker", rows[-1]["id"])]
        )
    # {"images": [<bodies as SQLite wrote them>], "first": ..., ...}
    images = ",".join(r["body"] for r in rows)
    text = f'{{"images": [{images}], {json.dumps(links)[1:]}'
    return Response(200, text.encode(), content_type="application/json")


# -- single image -------------------------------------------------------------------------


def show_image(req, image_id):
    return Response(200, image_view(_load(req, image_id)))


def _validate_value(key, value, creating):
    if key == "name":
        if value is not None and (not isinstance(value, str) or len(value) > 255):
            raise ApiError(400, f"Invalid value for name: {value!r}")
    elif key in ("min_disk", "min_ram"):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ApiError(400, f"Invalid value for {key}: {value!r} is not a non-negative integer")
    elif key in ("protected", "os_hidden"):
        if not isinstance(value, bool):
            raise ApiError(400, f"Invalid value for {key}: {value!r} is not of type 'boolean'")
    elif key == "visibility":
        if value not in VISIBILITIES:
            raise ApiError(400, f"Invalid visibility value: {value}")
    elif key == "disk_format":
        if value is not None and value not in DISK_FORMATS:
            raise ApiError(
                400,
                f"Invalid value '{value}' for disk_format. "
                f"Valid values are: {', '.join(DISK_FORMATS)}",
            )
    elif key == "container_format":
        if value is not None and value not in CONTAINER_FORMATS:
            raise ApiError(
                400,
                f"Invalid value '{value}' for container_format. "
                f"Valid values are: {', '.join(CONTAINER_FORMATS)}",
            )
    elif key == "tags":
        if not isinstance(value, list) or not all(
            isinstance(t, str) and len(t) <= 255 for t in value
        ):
            raise ApiError(400, f"Invalid tags: {value!r}")
    elif key == "owner":
        if value is not None and not isinstance(value, str):
            raise ApiError(400, f"Invalid owner: {value!r}")
    elif key == "id":
        if not creating:
            raise ApiError(403, "Attribute 'id' is read-only.")
    else:
        if key.startswith("os_glance"):
            raise ApiError(403, f"Attribute '{key}' is reserved.")
        if not isinstance(value, str):
            raise ApiError(
                400,
                f"Provided object does not match schema 'image': "
                f"{value!r} is not of type 'string' (property {key})",
            )


def _check_permissions(req, key, value, row=None):
    if key in READ_ONLY:
        raise ApiError(403, f"Attribute '{key}' is read-only.")
    if key == "visibility" and value == "public" and not req.ctx.is_admin:
        raise ApiError(403, "You are not authorized to complete publicize_image action.")
    if key == "owner" and not req.ctx.is_admin and value != req.ctx.project_id:
        raise ApiError(403, "You are not permitted to create images owned by another project.")
    if row is not None and key in ("disk_format", "container_format") and row["status"] != "queued":
        raise ApiError(403, f"Attribute {key} can be only replaced for a queued image.")


CORE_COLUMNS = {
    "name",
    "visibility",
    "protected",
    "os_hidden",
    "min_disk",
    "min_ram",
    "disk_format",
    "container_format",
    "owner",
    "tags",
}


def create_image(req):
    body = req.json()
    if not isinstance(body, dict):
        raise ApiError(400, "Image body must be a JSON object.")
    fields = {"owner": req.ctx.project_id, "visibility": "shared"}
    props = {}
    for key, value in body.items():
        _check_permissions(req, key, value)
        _validate_value(key, value, creating=True)
        if key == "id":
            try:
                fields["id"] = str(uuid.UUID(str(value)))
            except ValueError:
                raise ApiError(400, f"Invalid image id: {value!r}") from None
        elif key in ("protected", "os_hidden"):
            fields[key] = 1 if value else 0
        elif key == "tags":
            fields["tags"] = list(dict.fromkeys(value))
        elif key in CORE_COLUMNS:
            fields[key] = value
        else:
            props[key] = value
    fields["properties"] = props
    store = req.app.store
    with store.write() as conn:
        if "id" in fields and store.one("SELECT id FROM images WHERE id = ?", (fields["id"],)):
            raise ApiError(409, f"Image with identifier {fields['id']} already exists!")
        image_id = insert_image(conn, fields)
    row = store.one("SELECT * FROM images WHERE id = ?", (image_id,))
    return Response(
        201,
        image_view(row),
        {
            "Location": f"{req.base_url}/image/v2/images/{image_id}",
            "OpenStack-image-import-methods": "glance-direct,web-download",
        },
    )


def _patch_ops(req):
    ctype = (req.header("Content-Type") or "").split(";")[0].strip().lower()
    if ctype not in PATCH_TYPES:
        raise ApiError(
            415,
            f"Unsupported Content-Type '{ctype}'. Supported: " + ", ".join(PATCH_TYPES),
            {"Accept-Patch": ", ".join(PATCH_TYPES)},
        )
    body = req.json()
    if not isinstance(body, list):
        raise ApiError(400, "Request body must be a JSON array of operation objects.")
    ops = []
    for item in body:
        if not isinstance(item, dict):
            raise ApiError(400, "Operations must be JSON objects.")
        if "op" in item:
            op, path = item.get("op"), item.get("path")
        else:  # the v2.0 media type puts the op name as the key
            found = [k for k in ("add", "replace", "remove") if k in item]
            if len(found) != 1:
                raise ApiError(
                    400,
                    "Operation objects must contain exactly one of "
                    '"add", "remove", or "replace" members.',
                )
            op, path = found[0], item[found[0]]
        if op not in ("add", "replace", "remove"):
            raise ApiError(400, f"Invalid operation: `{op}`.")
        if not isinstance(path, str) or not path.startswith("/") or path.count("/") != 1:
            raise ApiError(400, f"Invalid JSON pointer for this resource: '{path}'")
        key = path[1:].replace("~1", "/").replace("~0", "~")
        if op != "remove" and "value" not in item:
            raise ApiError(400, f'Operation "{op}" requires a member named "value".')
        ops.append((op, key, item.get("value")))
    return ops


def update_image(req, image_id):
    ops = _patch_ops(req)
    store = req.app.store
    with store.write() as conn:
        row = _load(req, image_id)
        if not _may_modify(req, row):
            raise ApiError(403, "You are not permitted to modify this image.")
        props = loads(row["properties"], {})
        core = {}
        for op, key, value in ops:
            if key == "id":
                raise ApiError(403, "Attribute 'id' is read-only.")
            if op == "remove":
                if key in CORE_COLUMNS or key in READ_ONLY:
                    raise ApiError(403, f"Property {key} may not be removed.")
                if key not in props:
                    raise ApiError(409, f"Property {key} does not exist.")
                del props[key]
                continue
            _check_permissions(req, key, value, row)
            _validate_value(key, value, creating=False)
            if key in CORE_COLUMNS:
                if key in ("protected", "os_hidden"):
                    value = 1 if value else 0
                elif key == "tags":
                    value = dumps(list(dict.fromkeys(value)))
                core[key] = value
            elif op == "replace" and key not in props:
                raise ApiError(409, f"Property {key} does not exist.")
            else:
                props[key] = value
        core["properties"] = dumps(props)
        core["updated_at"] = clock.now_db_seconds()
        sets = ", ".join(f"{k} = ?" for k in core)
        conn.execute(f"UPDATE images SET {sets} WHERE id = ?", [*core.values(), image_id])
    row = store.one("SELECT * FROM images WHERE id = ?", (image_id,))
    return Response(200, image_view(row))


def delete_image(req, image_id):
    store = req.app.store
    with store.write() as conn:
        row = _load(req, image_id)
        if not _may_modify(req, row):
            raise ApiError(403, "You are not permitted to delete this image.")
        if row["protected"]:
            raise ApiError(403, f"Image {image_id} is protected and cannot be deleted.")
        mark_deleted(conn, image_id)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(store.blob_path(image_id))
    return Response(204)


def mark_deleted(conn, image_id):
    now = clock.now_db_seconds()
    conn.execute(
        "UPDATE images SET status = 'deleted', deleted = 1, deleted_at = ?, "
        "updated_at = ? WHERE id = ? AND deleted = 0",
        (now, now, image_id),
    )


# -- data -------------------------------------------------------------------------------------


def upload(req, image_id):
    """PUT /file, as Glance does it: the image goes `saving`, the body is written to
    the store a piece at a time while md5 and sha512 are computed, and the image goes
    `active` with its size and hashes. A body cut off half-way (the client went away)
    leaves nothing stored and the image `queued` again (Glance's _restore), ready for
    another upload."""
    ctype = (req.header("Content-Type") or "").split(";")[0].strip().lower()
    if ctype != "application/octet-stream":
        raise ApiError(415, f"Unsupported Content-Type '{ctype}' for image data.")
    store = req.app.store
    with store.write() as conn:
        row = _load(req, image_id)
        if not _may_modify(req, row):
            raise ApiError(403, "You are not permitted to upload data for this image.")
        if row["status"] != "queued":
            raise ApiError(
                409, f"Image status transition from {row['status']} to saving is not allowed"
            )
        if not row["disk_format"] or not row["container_format"]:
            raise ApiError(
                400, "Properties disk_format, container_format must be set prior to saving data."
            )
        conn.execute(
            "UPDATE images SET status = 'saving', updated_at = ? WHERE id = ?",
            (clock.now_db_seconds(), image_id),
        )
    fault = req.app.faults.image_upload(row["name"])
    path = store.blob_path(image_id)
    partial = f"{path}.{uuid.uuid4().hex}.part"
    try:
        size, head, md5, sha512 = _store_body(_body_of(req), partial, fault)
    except (IncompleteBody, OSError) as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        _restore_queued(store, image_id)
        raise ApiError(400, f"Image data upload failed: {exc}") from exc
    with store.write() as conn:
        now_row = conn.execute(
            "SELECT status FROM images WHERE id = ? AND deleted = 0", (image_id,)
        ).fetchone()
        if now_row is None or now_row[0] != "saving":
            os.unlink(partial)
            raise ApiError(
                410,
                f"Image {image_id} could not be found after upload. "
                "The image may have been deleted during the upload.",
            )
        os.replace(partial, path)
        vsize = diskformat.virtual_size(head, row["disk_format"], row["container_format"], size)
        conn.execute(
            "UPDATE images SET status = 'active', size = ?, virtual_size = ?, checksum = ?,"
            " os_hash_algo = 'sha512', os_hash_value = ?, data = 'file', updated_at = ?"
            " WHERE id = ?",
            (size, vsize, md5, sha512, clock.now_db_seconds(), image_id),
        )
    return Response(204)


def _body_of(req):
    if req.stream is not None:
        return iter(req.stream)
    return iter([req.body] if req.body else [])


def _store_body(pieces, partial, fault):
    """Write the pieces to `partial`; returns (size, first bytes, md5, sha512) of what
    was stored. A `corrupt` fault flips a byte of the stored data (so its hashes
    differ from the client's); `bytes_per_second` slows the store down."""
    md5, sha512 = hashlib.md5(), hashlib.sha512()
    size = 0
    head = b""
    corrupt = bool(fault and fault["corrupt"])
    speed = fault["bytes_per_second"] if fault else None
    began = time.monotonic()
    with open(partial, "wb") as fh:
        for piece in pieces:
            if corrupt and piece:
                piece = bytes([piece[0] ^ 0xFF]) + piece[1:]
                corrupt = False
            fh.write(piece)
            md5.update(piece)
            sha512.update(piece)
            size += len(piece)
            if len(head) < diskformat.QCOW2_HEADER_BYTES:
                head += piece[: diskformat.QCOW2_HEADER_BYTES - len(head)]
            if speed:
                ahead = size / speed - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)
    return size, head, md5.hexdigest(), sha512.hexdigest()


def _restore_queued(store, image_id):
    with store.write() as conn:
        conn.execute(
            "UPDATE images SET status = 'queued', updated_at = ? WHERE id = ? AND status = 'saving'",
            (clock.now_db_seconds(), image_id),
        )


def download(req, image_id):
    """GET /file: the data streamed a piece at a time (memory bounded in the size)."""
    store = req.app.store
    row = _load(req, image_id)
    if row["status"] == "deactivated" and not req.ctx.is_admin:
        raise ApiError(
            403, "The requested image has been deactivated. Image data download is forbidden."
        )
    if row["status"] != "active" and row["data"] is None:
        return Response(204)
    try:
        found = stored_chunks(store, row)
    except FileNotFoundError:
        found = None
    if found is None:
        return Response(204)
    length, chunks = found
    return Response(
        200,
        headers={"Content-MD5": row["checksum"] or ""},
        content_type="application/octet-stream",
        stream=chunks,
        length=length,
    )


# -- tags, tasks, members, actions, schemas ------------------------------------------------


def add_tag(req, image_id, tag):
    with req.app.store.write() as conn:
        row = _load(req, image_id)
        if not _may_modify(req, row):
            raise ApiError(403, "You are not permitted to modify this image.")
        tags = loads(row["tags"], [])
        if tag not in tags:
            tags.append(tag)
        conn.execute(
            "UPDATE images SET tags = ?, updated_at = ? WHERE id = ?",
            (dumps(tags), clock.now_db_seconds(), image_id),
        )
    return Response(204)


def delete_tag(req, image_id, tag):
    with req.app.store.write() as conn:
        row = _load(req, image_id)
        if not _may_modify(req, row):
            raise ApiError(403, "You are not permitted to modify this image.")
        tags = loads(row["tags"], [])
        if tag not in tags:
            raise ApiError(404, f"Tag {tag} not found.")
        tags.remove(tag)
        conn.execute(
            "UPDATE images SET tags = ?, updated_at = ? WHERE id = ?",
            (dumps(tags), clock.now_db_seconds(), image_id),
        )
    return Response(204)


def image_tasks(req, image_id):
    _load(req, image_id)
    return Response(200, {"tasks": []})


def list_members(req, image_id):
    _load(req, image_id)
    return Response(200, {"members": [], "schema": "/v2/schemas/members"})


def _set_active_state(req, image_id, target):
    with req.app.store.write() as conn:
        row = _load(req, image_id)
        # Glance's default policy: an admin, or a member of the owning project.
        if not _may_modify(req, row):
            raise ApiError(403, f"You are not authorized to complete {target} action.")
        allowed = {"deactivate": ("active", "deactivated"), "reactivate": ("deactivated", "active")}
        source, dest = allowed[target]
        if row["status"] not in (source, dest):
            raise ApiError(400, f"Not allowed to {target} image in status '{row['status']}'")
        conn.execute(
            "UPDATE images SET status = ?, updated_at = ? WHERE id = ?",
            (dest, clock.now_db_seconds(), image_id),
        )
    return Response(204)


def deactivate(req, image_id):
    return _set_active_state(req, image_id, "deactivate")


def reactivate(req, image_id):
    return _set_active_state(req, image_id, "reactivate")


def _image_schema():
    nullable_str = {"type": ["null", "string"]}
    return {
        "name": "image",
        "additionalProperties": {"type": "string"},
        "properties": {
            "id": {
                "type": "string",
                "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-"
                "([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$",
            },
            "name": {"type": ["null", "string"], "maxLength": 255},
            "status": {"type": "string", "readOnly": True, "enum": STATUSES},
            "visibility": {"type": "string", "enum": VISIBILITIES},
            "protected": {"type": "boolean"},
            "os_hidden": {"type": "boolean"},
            "checksum": dict(nullable_str, readOnly=True),
            "os_hash_algo": dict(nullable_str, readOnly=True),
            "os_hash_value": dict(nullable_str, readOnly=True),
            "owner": nullable_str,
            "size": {"type": ["null", "integer"], "readOnly": True},
            "virtual_size": {"type": ["null", "integer"], "readOnly": True},
            "container_format": {"type": ["null", "string"], "enum": [None, *CONTAINER_FORMATS]},
            "disk_format": {"type": ["null", "string"], "enum": [None, *DISK_FORMATS]},
            "created_at": {"type": "string", "readOnly": True},
            "updated_at": {"type": "string", "readOnly": True},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}},
            "min_ram": {"type": "integer"},
            "min_disk": {"type": "integer"},
            "self": {"type": "string", "readOnly": True},
            "file": {"type": "string", "readOnly": True},
            "schema": {"type": "string", "readOnly": True},
        },
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }


def schema_image(req):
    return Response(200, _image_schema())


def schema_images(req):
    return Response(
        200,
        {
            "name": "images",
            "properties": {
                "images": {"type": "array", "items": _image_schema()},
                "schema": {"type": "string"},
                "first": {"type": "string"},
                "next": {"type": "string"},
            },
            "links": [
                {"rel": "first", "href": "{first}"},
                {"rel": "next", "href": "{next}"},
                {"rel": "describedby", "href": "{schema}"},
            ],
        },
    )


def register(router):
    uuid_re = "(?P<image_id>[^/]+)"
    router.add("GET", "/?", versions, auth=False)
    router.add("GET", "/versions", versions_200, auth=False)
    router.add("GET", "/v2/?", versions_200, auth=False)
    router.add("GET", "/v2/images", list_images)
    router.add("POST", "/v2/images", create_image)
    router.add("GET", f"/v2/images/{uuid_re}", show_image)
    router.add("PATCH", f"/v2/images/{uuid_re}", update_image)
    router.add("DELETE", f"/v2/images/{uuid_re}", delete_image)
    router.add("PUT", f"/v2/images/{uuid_re}/file", upload)
    router.add("GET", f"/v2/images/{uuid_re}/file", download)
    router.add("PUT", f"/v2/images/{uuid_re}/tags/(?P<tag>[^/]+)", add_tag)
    router.add("DELETE", f"/v2/images/{uuid_re}/tags/(?P<tag>[^/]+)", delete_tag)
    router.add("GET", f"/v2/images/{uuid_re}/tasks", image_tasks)
    router.add("GET", f"/v2/images/{uuid_re}/members", list_members)
    router.add("POST", f"/v2/images/{uuid_re}/actions/deactivate", deactivate)
    router.add("POST", f"/v2/images/{uuid_re}/actions/reactivate", reactivate)
    router.add("GET", "/v2/schemas/image", schema_image, auth=False)
    router.add("GET", "/v2/schemas/images", schema_images, auth=False)
