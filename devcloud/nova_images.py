"""Nova's image proxy API: /images and /images/{id}/metadata, deprecated but served.

Nova answers these by calling Glance v2 with the caller's token and reshaping
the result, so every visibility and permission rule is Glance's; here the same
rows are read directly. The image routes exist up to microversion 2.35 and the
image metadata routes up to 2.38; past that Nova answers 404 as for an unknown
URL. Tempest uses this API for its snapshot tests at the default microversion.
"""

import contextlib
import json
import re

from . import clock
from . import image as image_mod
from .nova import limit_param, links, mv, next_link
from .quotas import DEFAULT_QUOTA
from .store import dumps, loads
from .web import ApiError, Response

MAX_PROXY_MINOR = 35  # images: 2.1 - 2.35
MAX_IMAGE_METADATA_MINOR = 38  # image metadata: 2.1 - 2.38

# Glance status -> what Nova shows, and the progress it reports for it.
STATUS = {
    "active": "ACTIVE",
    "queued": "SAVING",
    "saving": "SAVING",
    "deleted": "DELETED",
    "pending_delete": "DELETED",
    "killed": "ERROR",
}
PROGRESS = {"queued": 25, "saving": 50, "active": 100}
# Properties Nova stores as JSON text in Glance and decodes again.
JSON_PROPERTIES = ("block_device_mapping", "mappings")
METADATA_KEY = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")
# Glance refuses to treat these as custom properties.
RESERVED_KEYS = image_mod.CORE_COLUMNS | image_mod.READ_ONLY | {"id"}


def _not_found():
    return ApiError(404, "The resource could not be found.")


def _require_version(req, max_minor):
    if mv(req, max_minor + 1):
        raise _not_found()


def _image_links(req, image_id):
    return [
        *links(req, "images", image_id),
        {
            "rel": "alternate",
            "type": "application/vnd.openstack.image",
            "href": f"{req.base_url}/image/images/{image_id}",
        },
    ]


def _metadata(row):
    props = loads(row["properties"], {})
    for key in JSON_PROPERTIES:
        if isinstance(props.get(key), str):
            with contextlib.suppress(ValueError):
                props[key] = json.loads(props[key])
    return props


def image_view(req, row):
    metadata = _metadata(row)
    view = {
        "id": row["id"],
        "name": row["name"],
        "minRam": row["min_ram"] or 0,
        "minDisk": row["min_disk"] or 0,
        "metadata": metadata,
        "created": clock.db_to_api(row["created_at"]),
        "updated": clock.db_to_api(row["updated_at"]),
        "status": STATUS.get(row["status"], "UNKNOWN"),
        "progress": PROGRESS.get(row["status"], 0),
        # Nova turns Glance's null size (no data yet) into 0.
        "OS-EXT-IMG-SIZE:size": row["size"] or 0,
        "links": _image_links(req, row["id"]),
    }
    server_id = metadata.get("instance_uuid")
    if server_id is not None:
        view["server"] = {"id": server_id, "links": links(req, "servers", server_id)}
    auto = metadata.get("auto_disk_config")
    if auto is not None:
        enabled = str(auto).strip().lower() in ("1", "t", "true", "on", "y", "yes")
        view["OS-DCF:diskConfig"] = "AUTO" if enabled else "MANUAL"
    return view


def _glance_query(req):
    """Nova's filters in Glance v2 terms (nova.image.glance does the same mapping)."""
    query = []
    for key, value in req.query:
        if key == "name":
            query.append(("name", value))
        elif key == "status":
            query.append(("status", value.lower()))
        elif key == "changes-since":
            query.append(("updated_at", "gte:" + value))
        elif key == "server":
            query.append(("instance_uuid", value.rsplit("/", 1)[-1]))
        elif key == "type":
            query.append(("image_type", value))
        elif key == "minRam":
            query.append(("min_ram", value))
        elif key == "minDisk":
            query.append(("min_disk", value))
        elif key.startswith("property-") and len(key) > len("property-"):
            query.append((key[len("property-") :], value))
        elif key == "marker":
            query.append(("marker", value))
    # Glance pages through everything for Nova; the caller's limit caps the total.
    query.append(("limit", str(limit_param(req))))
    return image_mod.Query(query)


def _list(req, detail):
    _require_version(req, MAX_PROXY_MINOR)
    query = _glance_query(req)
    limit = int(query.param("limit"))
    rows, _ = image_mod.select_images(req.app.store, req.ctx, query)
    if detail:
        items = [image_view(req, r) for r in rows]
    else:
        items = [
            {"id": r["id"], "name": r["name"], "links": _image_links(req, r["id"])} for r in rows
        ]
    body = {"images": items}
    if rows and len(rows) == limit:
        body["images_links"] = next_link(
            req, "images/detail" if detail else "images", rows[-1]["id"]
        )
    return Response(200, body)


def list_images(req):
    return _list(req, detail=False)


def list_images_detail(req):
    return _list(req, detail=True)


def _load(req, image_id):
    row = image_mod.get_visible(req.app.store, req.ctx, image_id)
    if row is None:
        raise ApiError(404, "Image not found.")
    return row


def show_image(req, image_id):
    _require_version(req, MAX_PROXY_MINOR)
    return Response(200, {"image": image_view(req, _load(req, image_id))})


def delete_image(req, image_id):
    _require_version(req, MAX_PROXY_MINOR)
    try:
        image_mod.delete_image(req, image_id)
    except ApiError as err:
        if err.status == 404:
            raise ApiError(404, "Image not found.") from None
        if err.status == 403:
            raise ApiError(403, "You are not allowed to delete the image.") from None
        raise
    return Response(204)


# -- image metadata (up to 2.38) ------------------------------------------------------


def _check_metadata(metadata, what="metadata"):
    if not isinstance(metadata, dict):
        raise ApiError(400, f"Invalid input for field/attribute {what}.")
    for key, value in metadata.items():
        if not isinstance(key, str) or not METADATA_KEY.match(key):
            raise ApiError(400, f"Invalid input for field/attribute {what}. Value: {key!r}.")
        if not isinstance(value, str) or len(value) > 255:
            raise ApiError(400, f"Invalid input for field/attribute {what}. Value: {value!r}.")


def _write_properties(req, image_id, change):
    """Apply change(properties) -> properties to an image the caller may modify."""
    with req.app.store.write() as conn:
        row = _load(req, image_id)
        if not image_mod._may_modify(req, row):
            raise ApiError(403, f"Not authorized for image {image_id}.")
        props = change(loads(row["properties"], {}))
        if any(k in RESERVED_KEYS or k.startswith("os_glance") for k in props):
            raise ApiError(403, f"Not authorized for image {image_id}.")
        # Nova checks the image's whole property set against the metadata_items quota.
        if len(props) > DEFAULT_QUOTA["metadata_items"]:
            raise ApiError(403, "Image metadata limit exceeded")
        conn.execute(
            "UPDATE images SET properties = ?, updated_at = ? WHERE id = ?",
            (dumps(props), clock.now_db_seconds(), image_id),
        )
    return props


def _body_metadata(req, key="metadata"):
    body = req.json()
    if not isinstance(body, dict) or key not in body:
        raise ApiError(400, f"Invalid input for field/attribute {key}.")
    _check_metadata(body[key], key)
    return body[key]


def get_metadata(req, image_id):
    _require_version(req, MAX_IMAGE_METADATA_MINOR)
    return Response(200, {"metadata": _metadata(_load(req, image_id))})


def merge_metadata(req, image_id):
    _require_version(req, MAX_IMAGE_METADATA_MINOR)
    metadata = _body_metadata(req)
    props = _write_properties(req, image_id, lambda props: {**props, **metadata})
    return Response(200, {"metadata": props})


def replace_metadata(req, image_id):
    _require_version(req, MAX_IMAGE_METADATA_MINOR)
    metadata = _body_metadata(req)
    _write_properties(req, image_id, lambda props: dict(metadata))
    return Response(200, {"metadata": metadata})


def get_metadata_item(req, image_id, key):
    _require_version(req, MAX_IMAGE_METADATA_MINOR)
    metadata = _metadata(_load(req, image_id))
    if key not in metadata:
        raise _not_found()
    return Response(200, {"meta": {key: metadata[key]}})


def set_metadata_item(req, image_id, key):
    _require_version(req, MAX_IMAGE_METADATA_MINOR)
    meta = _body_metadata(req, "meta")
    if key not in meta:
        raise ApiError(400, "Request body and URI mismatch")
    if len(meta) > 1:
        raise ApiError(400, "Request body contains too many items")
    _write_properties(req, image_id, lambda props: {**props, key: meta[key]})
    return Response(200, {"meta": meta})


def delete_metadata_item(req, image_id, key):
    _require_version(req, MAX_IMAGE_METADATA_MINOR)

    def drop(props):
        if key not in props:
            raise ApiError(404, "Invalid metadata key")
        return {k: v for k, v in props.items() if k != key}

    _write_properties(req, image_id, drop)
    return Response(204)


def register(router):
    iid = "(?P<image_id>[^/]+)"
    router.add("GET", "/images", list_images)
    router.add("GET", "/images/detail", list_images_detail)
    router.add("GET", f"/images/{iid}", show_image)
    router.add("DELETE", f"/images/{iid}", delete_image)
    router.add("GET", f"/images/{iid}/metadata", get_metadata)
    router.add("PUT", f"/images/{iid}/metadata", replace_metadata)
    router.add("POST", f"/images/{iid}/metadata", merge_metadata)
    router.add("GET", f"/images/{iid}/metadata/(?P<key>[^/]+)", get_metadata_item)
    router.add("PUT", f"/images/{iid}/metadata/(?P<key>[^/]+)", set_metadata_item)
    router.add("DELETE", f"/images/{iid}/metadata/(?P<key>[^/]+)", delete_metadata_item)
