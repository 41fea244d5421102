"""Glance image data across sites: a new image, and its bytes streamed from another.

The bytes never rest in the portal: the source's `GET /v2/images/{id}/file` is
read a piece at a time (`stream=True`) and each piece goes on, as it arrives,
into the target's `PUT /v2/images/{id}/file` (a generator body: chunked
transfer encoding, which Glance accepts). Memory stays at a few pieces
whatever the image's size.

Glance cannot resume an upload: a PUT that breaks off leaves the target image
`queued` again (Glance's _restore) or, when Glance noticed nothing, `saving`;
the caller deletes it and starts over. Nor does Glance check the data against
anything the client says: the caller compares the target's `os_hash_value`
with the source's once the target is active.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from portal.cloud.connection import connection_for, translate_errors
from portal.cloud.errors import Unavailable
from portal.cloud.image import _image_from_body, _raise_for
from portal.cloud.types import CloudImage
from portal.cloud.util import answer_note

# One piece in flight per side: the memory a copy needs, whatever the image's size.
CHUNK_BYTES = 4 * 1024 * 1024


def image_create(
    site: str,
    *,
    project_id: str,
    name: str,
    disk_format: str,
    container_format: str,
    min_disk: int = 0,
    min_ram: int = 0,
    properties: Mapping[str, str] | None = None,
    tags: Sequence[str] = (),
    visibility: str = "private",
) -> CloudImage:
    """A new, empty (`queued`) image owned by `project_id`: Glance makes the token's
    project the owner, so the call is scoped to it. Custom properties are keys of
    the body, as Glance takes them."""
    body: dict[str, Any] = dict(properties or {})
    body.update(
        name=name, disk_format=disk_format, container_format=container_format,
        min_disk=min_disk, min_ram=min_ram, visibility=visibility, tags=list(tags),
    )  # fmt: skip
    with translate_errors(site):
        conn = connection_for(site, project_id=project_id)
        response = conn.image.post("/images", json=body)
        _raise_for(response)
        return _image_from_body(response.json())


def image_data_copy(
    source_site: str,
    *,
    source_image_id: str,
    target_site: str,
    target_project_id: str,
    target_image_id: str,
    on_progress: Callable[[int, int], None] = lambda sent, total: None,
    chunk_bytes: int = CHUNK_BYTES,
) -> int:
    """Stream the data of one image into another (a `queued` one, see image_create);
    returns the bytes sent. `on_progress(sent, total)` is called after each piece;
    `total` is the length the source announced for the download (0: none).

    Each piece that arrives from the source, and each the target takes, counts as
    an answer from that site (cloud.util.answer_note): a long transfer is a site
    at work, not a silent one. The upload is never retried by the SDK (its body
    is a stream that cannot be sent twice): a failure raises, and the caller
    starts over with a new image."""
    source = connection_for(source_site)
    target = connection_for(target_site, project_id=target_project_id)
    with translate_errors(source_site):
        download = source.image.get(f"/images/{source_image_id}/file", stream=True)
        _raise_for(download)
    try:
        announced = max(0, int(download.headers.get("Content-Length") or 0))
    except ValueError:
        announced = 0
    source_failed: list[BaseException] = []

    sent = [0]

    def pieces() -> Iterator[bytes]:
        reading = download.iter_content(chunk_bytes)
        while True:
            try:
                piece = next(reading)
            except StopIteration:
                return
            except Exception as exc:  # the source broke off: not the target's fault
                source_failed.append(exc)
                raise
            answer_note(source_site)
            yield piece
            sent[0] += len(piece)
            answer_note(target_site)
            on_progress(sent[0], announced)

    try:
        with translate_errors(target_site):
            upload = target.image.put(
                f"/images/{target_image_id}/file",
                data=pieces(),
                headers={"Content-Type": "application/octet-stream"},
                connect_retries=0,
                status_code_retries=0,
            )
            _raise_for(upload)
    except Exception as exc:
        if source_failed:
            error = Unavailable(
                f"{source_site} broke off sending the image data: "
                f"{source_failed[0].__class__.__name__}",
                site=source_site,
            )
            error.silent = False  # it answered, then stopped: not a silent site
            raise error from exc
        raise
    finally:
        download.close()
    return sent[0]
