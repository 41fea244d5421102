"""Glance: images and snapshots."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from openstack import exceptions as sdk_exceptions

from portal.cloud.connection import connection_for, translate_errors
from portal.cloud.paging import read_ahead
from portal.cloud.types import CloudImage
from portal.cloud.util import clock_note, glance_time, parse_time

# Glance's maximum page size (api_limit_max); 100,000 images are 100 requests.
PAGE_SIZE = 1000

# Keys of a Glance image body that are not custom properties.
CORE_KEYS = frozenset(
    {
        "id", "name", "status", "visibility", "owner", "size", "virtual_size", "min_disk",
        "min_ram", "checksum", "os_hash_algo", "os_hash_value", "protected", "tags",
        "created_at", "updated_at", "disk_format", "container_format", "self", "file",
        "schema", "locations", "direct_url", "os_hidden", "stores",
    }
)  # fmt: skip


def _image_from_body(body: Mapping[str, Any]) -> CloudImage:
    properties = {
        key: value if isinstance(value, str) else str(value)
        for key, value in body.items()
        if key not in CORE_KEYS and value is not None
    }
    return CloudImage(
        id=body["id"],
        name=body.get("name") or "",
        status=body.get("status") or "",
        visibility=body.get("visibility") or "",
        owner=body.get("owner") or "",
        size=body.get("size"),
        min_disk=int(body.get("min_disk") or 0),
        min_ram=int(body.get("min_ram") or 0),
        checksum=body.get("checksum") or "",
        protected=bool(body.get("protected")),
        tags=tuple(body.get("tags") or ()),
        properties=properties,
        created_at=parse_time(body.get("created_at")),
        updated_at=parse_time(body.get("updated_at")),
        disk_format=body.get("disk_format") or "",
        container_format=body.get("container_format") or "",
        hash_algo=body.get("os_hash_algo") or "",
        hash_value=body.get("os_hash_value") or "",
    )


def _pages(site: str, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """Raw `GET /v2/images` pages, following `next` to the end.

    Why raw: the SDK's `conn.image.images(...)` silently drops filter keys it
    does not know, so a custom-property filter such as `image_type=snapshot`
    would return every image. Glance itself treats any unknown query key as a
    property filter. Its `next` link is relative to the endpoint root and
    starts with `/v2`, which the image proxy already carries, so we keep only
    its query string. A full page always has a `next`, even when nothing
    follows; the page after it is then empty.
    """
    conn = connection_for(site)
    query: dict[str, Any] = {"limit": PAGE_SIZE, **params}
    while True:
        response = conn.image.get("/images", params=query)
        _raise_for(response)
        clock_note(site, response)
        body = orjson.loads(response.content)  # a third faster than json
        yield body.get("images", [])
        next_link = body.get("next")
        if not next_link:
            return
        query = dict(parse_qsl(urlsplit(next_link).query, keep_blank_values=True))


def _raise_for(response: Any) -> None:
    # Raw requests on a proxy do not raise by themselves.
    sdk_exceptions.raise_from_response(response)


def _image_params(
    updated_since: datetime | None, properties: Mapping[str, str] | None
) -> dict[str, Any]:
    params: dict[str, Any] = dict(properties or {})
    if updated_since is not None:
        params["updated_at"] = f"gt:{glance_time(updated_since)}"
    return params


def image_pages(
    site: str,
    *,
    updated_since: datetime | None = None,
    properties: Mapping[str, str] | None = None,
) -> Iterator[list[CloudImage]]:
    """Every image the service account sees (all projects'), a page at a time,
    optionally only those updated after a moment (`updated_at=gt:`) or with
    given custom properties. The next page is fetched while the caller works
    on this one."""
    params = _image_params(updated_since, properties)
    converted = ([_image_from_body(body) for body in page] for page in _pages(site, params))
    with translate_errors(site):
        yield from read_ahead(converted)


def image_list(
    site: str,
    *,
    updated_since: datetime | None = None,
    properties: Mapping[str, str] | None = None,
) -> list[CloudImage]:
    """Every image (or those updated since, or with these properties), as one list:
    the pages one after the other, in this thread (see server_list)."""
    params = _image_params(updated_since, properties)
    with translate_errors(site):
        return [_image_from_body(body) for page in _pages(site, params) for body in page]


def image_get(site: str, *, image_id: str) -> CloudImage:
    with translate_errors(site):
        response = connection_for(site).image.get(f"/images/{image_id}")
        _raise_for(response)
        return _image_from_body(response.json())


def image_find_by_property(site: str, *, key: str, value: str, owner: str = "") -> list[CloudImage]:
    """Images carrying a custom property (of the project `owner` only, if given),
    filtered by Glance (not client-side): Glance takes `owner` as a filter too."""
    filters = {key: value, **({"owner": owner} if owner else {})}
    return image_list(site, properties=filters)


def image_delete(site: str, *, image_id: str) -> None:
    """Delete an image. Glance answers 403 for a protected one (→ Forbidden)."""
    with translate_errors(site):
        connection_for(site).image.delete_image(image_id, ignore_missing=False)
