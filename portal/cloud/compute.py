"""Nova: servers, flavors, limits."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from openstack import exceptions as sdk_exceptions

from portal.cloud.connection import connection_for, translate_errors
from portal.cloud.image import image_list
from portal.cloud.paging import read_ahead
from portal.cloud.types import CloudFlavor, CloudImage, CloudServer, Limits
from portal.cloud.util import clock_note, parse_time

if TYPE_CHECKING:
    import openstack.connection
    import requests

# Nova caps a page at 1000 by default (osapi_max_limit); asking for that many
# keeps a 10,000-server sync at ten requests.
PAGE_SIZE = 1000


# The microversion our raw server requests speak: from 2.47 a server embeds
# its flavor (original_name, ram, vcpus, disk), so no flavor lookups per row;
# `locked` is shown from 2.9 and `locked_reason` from 2.73. Every Nova since
# Stein (2019) supports it.
SERVER_MICROVERSION = "2.73"


def _addresses_of(raw: Mapping[str, list[dict[str, Any]]] | None) -> tuple[str, ...]:
    return tuple(
        entry["addr"] for entries in (raw or {}).values() for entry in entries if entry.get("addr")
    )


def _server_from_body(body: Mapping[str, Any]) -> CloudServer:
    flavor = body.get("flavor") or {}
    image = body.get("image") or {}  # "" for a server booted from a volume
    fault = body.get("fault") or {}
    return CloudServer(
        id=body["id"],
        name=body.get("name") or "",
        status=(body.get("status") or "").upper(),
        task_state=body.get("OS-EXT-STS:task_state") or None,
        vm_state=body.get("OS-EXT-STS:vm_state") or None,
        power_state=body.get("OS-EXT-STS:power_state"),
        project_id=body.get("tenant_id") or "",
        user_id=body.get("user_id") or "",
        flavor_name=flavor.get("original_name") or flavor.get("name") or "",
        flavor_vcpus=int(flavor.get("vcpus") or 0),
        flavor_ram_mib=int(flavor.get("ram") or 0),
        flavor_disk_gb=int(flavor.get("disk") or 0),
        image_id=(image.get("id") if isinstance(image, Mapping) else "") or "",
        addresses=_addresses_of(body.get("addresses")),
        metadata=dict(body.get("metadata") or {}),
        created_at=parse_time(body.get("created")),
        updated_at=parse_time(body.get("updated")),
        fault_message=fault.get("message") or "",
        locked=bool(body.get("locked")),
        locked_reason=body.get("locked_reason") or "",
        key_name=body.get("key_name") or None,
    )


def _server_pages(site: str, query: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """Raw `GET /servers/detail` pages, following `servers_links` to the end.

    Why raw: building an SDK resource per server costs ~3 ms, so a 10,000-server
    listing took a minute in the SDK and takes seconds this way. Nova adds a
    `next` link only when the page was full; it carries the marker.
    """
    conn = connection_for(site)
    while True:
        response = conn.compute.get(
            "/servers/detail", params=query, microversion=SERVER_MICROVERSION
        )
        sdk_exceptions.raise_from_response(response)
        clock_note(site, response)
        body = orjson.loads(response.content)  # a third faster than json
        yield body.get("servers", [])
        links = [link for link in body.get("servers_links", []) if link.get("rel") == "next"]
        if not links:
            return
        query = dict(parse_qsl(urlsplit(links[0]["href"]).query, keep_blank_values=True))


def _server_query(changes_since: datetime | None, project_id: str) -> dict[str, Any]:
    query: dict[str, Any] = {"all_tenants": "True", "limit": PAGE_SIZE}
    if project_id:
        query["project_id"] = project_id
    if changes_since is not None:
        query["changes-since"] = changes_since.isoformat()
    return query


def server_pages(
    site: str, *, changes_since: datetime | None = None, project_id: str = ""
) -> Iterator[list[CloudServer]]:
    """Every server of every project on the site (or of `project_id`), a page
    at a time, following pagination to the end; the next page is fetched
    while the caller works on this one.

    With `changes_since`, Nova returns only servers changed since then, and
    includes the ones deleted since then (status DELETED): that is what makes
    an incremental sync able to notice deletions cheaply, and lets a launch job
    watch all its servers with one call per poll.
    """
    query = _server_query(changes_since, project_id)
    converted = ([_server_from_body(b) for b in page] for page in _server_pages(site, query))
    with translate_errors(site):
        yield from read_ahead(converted)


def server_list(
    site: str, *, changes_since: datetime | None = None, project_id: str = ""
) -> list[CloudServer]:
    """Every server (or those changed since), as one list: the pages one after the
    other, in this thread (the status watcher's listing every second is one page,
    and a thread started for it would cost more than it hides)."""
    query = _server_query(changes_since, project_id)
    with translate_errors(site):
        return [_server_from_body(b) for page in _server_pages(site, query) for b in page]


def server_find(site: str, *, project_id: str, name: str) -> list[CloudServer]:
    """Servers of a project with exactly this name.

    Nova's `name` filter is a regular expression matched anywhere in the
    name, so the name is escaped and anchored.
    """
    query = {
        "all_tenants": "True", "project_id": project_id, "name": f"^{re.escape(name)}$",
        "limit": PAGE_SIZE,
    }  # fmt: skip
    with translate_errors(site):
        found = [_server_from_body(b) for page in _server_pages(site, query) for b in page]
        return [s for s in found if s.name == name and s.project_id == project_id]


def server_get(site: str, *, server_id: str) -> CloudServer:
    with translate_errors(site):
        response = connection_for(site).compute.get(
            f"/servers/{server_id}", microversion=SERVER_MICROVERSION
        )
        sdk_exceptions.raise_from_response(response)
        return _server_from_body(response.json()["server"])


def _server_action(
    site: str, server_id: str, body: dict[str, Any], *, project_id: str = ""
) -> requests.Response:
    """POST a server action, raw (like server_get): the SDK's proxy methods build a
    Server resource first, which cost more CPU than the rest of the job's step."""
    conn = connection_for(site, project_id=project_id) if project_id else connection_for(site)
    response = conn.compute.post(
        f"/servers/{server_id}/action", json=body, microversion=SERVER_MICROVERSION
    )
    sdk_exceptions.raise_from_response(response)
    return response


def server_stop(site: str, *, server_id: str) -> None:
    with translate_errors(site):
        _server_action(site, server_id, {"os-stop": None})


def server_start(site: str, *, server_id: str) -> None:
    with translate_errors(site):
        _server_action(site, server_id, {"os-start": None})


def server_shelve(site: str, *, server_id: str, project_id: str) -> None:
    """Ask Nova to shelve the server: it snapshots the disk to an image named
    "<server name>-shelved" and, with Nova's default shelved_offload_time=0, offloads
    it at once (SHELVED_OFFLOADED: no host, the same name, flavor, metadata and ports).

    Scoped to the server's project so the shelved image is the project's, as when a
    user shelves. A site whose policy refuses shelving answers 403 (Forbidden).
    Nova 34 still counts an offloaded server's cores and RAM against the quota
    unless the site counts usage from placement.
    """
    with translate_errors(site):
        _server_action(site, server_id, {"shelve": None}, project_id=project_id)


def server_unshelve(site: str, *, server_id: str, project_id: str) -> None:
    """Ask Nova to unshelve: it boots the server from its shelved image, on the same
    flavor (Nova cannot unshelve onto another), keeps its ports and IP, and deletes
    the shelved image once the server runs."""
    with translate_errors(site):
        _server_action(site, server_id, {"unshelve": None}, project_id=project_id)


def server_shelved_image(
    site: str, *, server_id: str, server_name: str, project_id: str
) -> CloudImage | None:
    """The image Nova made when it shelved the server, or None: the project's image
    named "<name>-shelved" whose `instance_uuid` is the server (a snapshot of a
    machine booted from another shelved image carries that one's properties too,
    but Nova sets instance_uuid to the server it snapshots). Filtered by Glance."""
    with translate_errors(site):
        found = image_list(
            site,
            properties={
                "instance_uuid": server_id, "name": f"{server_name}-shelved", "owner": project_id,
            },
        )  # fmt: skip
    own = [i for i in found if i.properties.get("instance_uuid") == server_id]
    return max(own, key=lambda i: i.created_at or datetime.min.replace(tzinfo=UTC), default=None)


def server_delete(site: str, *, server_id: str) -> None:
    with translate_errors(site):
        connection_for(site).compute.delete_server(server_id, ignore_missing=False)


def server_create(
    site: str,
    *,
    project_id: str,
    name: str,
    flavor_id: str,
    image_id: str,
    metadata: Mapping[str, str],
    network_ids: Sequence[str] | None = None,
    key_name: str | None = None,
) -> CloudServer:
    """Boot one server inside the project. Returns it as Nova first describes it (BUILD).

    From microversion 2.37 Nova requires `networks`: the given networks as
    `[{"uuid": id}]`, or with None "auto", which asks Nova to pick the project's
    one network (or to allocate one). With several networks visible to the
    project, "auto" is a 409 "Multiple possible networks found" (a Conflict):
    callers that know of several pass the one to use.

    `key_name`: a key pair of the portal's service account (see keypairs), whose
    public key Nova injects; one it does not have is a 400 "Invalid key_name
    provided.".
    """
    networks: str | list[dict[str, str]] = (
        "auto" if network_ids is None else [{"uuid": n} for n in network_ids]
    )
    with translate_errors(site):
        conn = connection_for(site, project_id=project_id)
        created = conn.compute.create_server(
            name=name,
            flavor_id=flavor_id,
            image_id=image_id,
            networks=networks,
            metadata=dict(metadata),
            **({"key_name": key_name} if key_name else {}),
        )
        return server_get(site, server_id=created.id)


def server_create_image(
    site: str, *, project_id: str, server_id: str, name: str, metadata: Mapping[str, str]
) -> str:
    """Ask Nova for a snapshot of the server; returns the new image's id.

    Goes through a connection scoped to the server's project so the image is
    owned by that project, as if the user had asked. The SDK's
    create_server_image() would also fetch the image afterwards; we only need
    the id (in the response body from microversion 2.45), the job looks at the
    image itself.
    """
    body = {"createImage": {"name": name, "metadata": dict(metadata)}}
    with translate_errors(site):
        response = _server_action(site, server_id, body, project_id=project_id)
        image_id: str = response.json()["image_id"]
        return image_id


def server_console_output(site: str, *, server_id: str, length: int = 60) -> str:
    """The last `length` lines of the server's console log (Nova os-getConsoleOutput).

    NotFound when the server is gone; Conflict while Nova has no console for it
    yet (e.g. still building); BadRequest where the cloud does not offer one.
    """
    with translate_errors(site):
        response = _server_action(site, server_id, {"os-getConsoleOutput": {"length": length}})
        return response.json().get("output") or ""


def _flavor_access(conn: openstack.connection.Connection, flavor_id: str) -> tuple[str, ...]:
    """The project ids on a private flavor's access list (admin only in Nova)."""
    response = conn.compute.get(f"/flavors/{flavor_id}/os-flavor-access")
    sdk_exceptions.raise_from_response(response)
    entries = response.json().get("flavor_access") or []
    return tuple(sorted({e["tenant_id"] for e in entries if e.get("tenant_id")}))


def flavor_list(site: str) -> list[CloudFlavor]:
    """Public and private flavors (the SDK sends `is_public=None` for "both"), each
    private one with its access list: one more call per private flavor, and sites
    have few. The admin service account sees every flavor, but Nova boots a
    private one only in the projects on its list."""
    with translate_errors(site):
        conn = connection_for(site)
        return [
            CloudFlavor(
                id=f.id,
                name=f.name,
                vcpus=int(f.vcpus or 0),
                ram_mib=int(f.ram or 0),
                disk_gb=int(f.disk or 0),
                is_public=bool(f.is_public),
                access_project_ids=() if f.is_public else _flavor_access(conn, f.id),
            )
            for f in conn.compute.flavors(details=True, is_public=None)
        ]


def limits_get(site: str, *, project_id: str) -> Limits:
    """Absolute compute limits and usage of one project."""
    with translate_errors(site):
        conn = connection_for(site, project_id=project_id)
        absolute = conn.compute.get_limits().absolute
        return Limits(
            max_instances=int(absolute.instances),
            max_cores=int(absolute.total_cores),
            max_ram_mib=int(absolute.total_ram),
            used_instances=int(absolute.instances_used or 0),
            used_cores=int(absolute.total_cores_used or 0),
            used_ram_mib=int(absolute.total_ram_used or 0),
        )
