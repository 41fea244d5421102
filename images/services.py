"""Writes to the image mirror (base images and snapshots alike)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from images.models import BootTest, Image
from portal import cloud
from portal.jobs import parked_wake
from portal.mirror.authorship import CREATED_BY_KEY, authors_of
from portal.mirror.listing import WRITE_BATCH, NewestSeen, batched
from portal.mirror.projects import project_ids
from portal.mirror.rows import row_fingerprint
from portal.mirror.upsert import MirrorWriter, UpsertResult, mirror_row_write
from portal.models import Project, Site


def image_fields(
    image: cloud.CloudImage, *, projects: dict[str, int], authors: dict[str, int]
) -> dict:
    props = dict(image.properties)
    return {
        "name": image.name,
        "name_key": image.name.casefold()[:255],
        "status": image.status,
        "visibility": image.visibility,
        "project_id": projects.get(image.owner),
        "owner_openstack_id": image.owner,
        "size": image.size,
        "min_disk": image.min_disk,
        "min_ram": image.min_ram,
        "checksum": image.checksum,
        "protected": image.protected,
        "tags": list(image.tags),
        "properties": props,
        "is_snapshot": image.is_snapshot,
        "source_server_openstack_id": props.get("instance_uuid", ""),
        "base_image_openstack_id": props.get("base_image_ref", ""),
        "created_by_id": authors.get(image.id),
        "created_by_hint": str(props.get(CREATED_BY_KEY, ""))[:150],
        "created_at": image.created_at,
        "updated_at": image.updated_at,
    }


def images_store(
    site: Site,
    images: Iterable[cloud.CloudImage],
    *,
    complete: bool,
    observed_at: datetime | None = None,
) -> UpsertResult:
    """Upsert images as listed by Glance (at `observed_at`: see MirrorWriter).

    `images` may still be arriving (a full listing's pages): rows are built,
    hashed and written a batch at a time, while the gateway fetches the next
    pages."""
    projects = project_ids(site)
    if complete:
        authors, ids = authors_of(site), None
    else:
        images = list(images)
        authors = authors_of(site, (i.id for i in images if i.is_snapshot))
        ids = {i.id for i in images}

    writer = MirrorWriter(Image, site=site, complete=complete, ids=ids, observed_at=observed_at)
    with writer:
        for batch in batched(images, WRITE_BATCH):
            # Glance shows `deleted` / `pending_delete` images only transiently: they are
            # gone. A `killed` one stays visible (a failed snapshot) until someone deletes it.
            gone = {i.id for i in batch if i.status in ("deleted", "pending_delete")}
            rows = {
                # Only snapshots are the portal's work; a base image is never attributed.
                i.id: image_fields(i, projects=projects, authors=authors if i.is_snapshot else {})
                for i in batch
                if i.id not in gone
            }
            fingerprints = {i: row_fingerprint(fields) for i, fields in rows.items()}
            writer.write(rows, fingerprints=fingerprints, deleted_ids=gone)
        written = writer.finish()
    if writer.moved:  # after the write, what it moved: see portal.jobs.parking
        parked_wake(site, "image", writer.moved)
    return written


# Glance statuses on the way to active (or to a failure): no job waits for these.
IMAGE_IN_PROGRESS = frozenset({"queued", "saving", "uploading", "importing"})


def image_wait_state(status: str, deleted_at) -> str:
    """What a job waiting for its image waits to change (portal.jobs.parking): the
    image became usable, failed or went; its way there (queued, saving) is progress."""
    if deleted_at is not None:
        return "deleted"
    return "on its way" if status in IMAGE_IN_PROGRESS else status


def images_sync(
    site: Site, *, updated_since: datetime | None, seen: NewestSeen | None = None
) -> UpsertResult:
    """Glance lists no deleted images, so only a complete listing notices deletions.
    `seen` learns the newest `updated_at` listed (the cloud's clock). A row a job or
    the watcher refreshed after this listing began keeps its newer news."""
    asked = timezone.now()
    pages = cloud.image_pages(site.name, updated_since=updated_since)
    images = (image for page in pages for image in page)
    if seen is not None:
        images = seen.note(images)
    return images_store(site, images, complete=updated_since is None, observed_at=asked)


def image_refresh(
    site: Site, *, openstack_id: str, made_for: Project | None = None, made_by=None
) -> Image | None:
    """Targeted refresh of one image (see server_refresh: the same lean path).

    `made_for` / `made_by`: the project and user of the job that just made the
    image, so its first row needs no lookups: one INSERT (the general upsert if a
    sync or the watcher wrote the row meanwhile)."""
    asked = timezone.now()
    try:
        image = cloud.image_get(site.name, image_id=openstack_id)
    except cloud.NotFound:
        image = None
    row = Image.objects.filter(site=site, openstack_id=openstack_id).first()
    if row is not None and (image is None or image.owner == row.owner_openstack_id):
        fields = None
        if image is not None and image.status not in ("deleted", "pending_delete"):
            authors = {openstack_id: row.created_by_id}
            if row.created_by_id is None and image.properties.get(CREATED_BY_KEY):
                authors = authors_of(site, [openstack_id])  # see server_refresh
            projects = {image.owner: row.project_id}
            fields = image_fields(image, projects=projects, authors=authors)
        before = image_wait_state(row.status, row.deleted_at)
        written = mirror_row_write(row, fields, observed_at=asked)
        if image_wait_state(row.status, row.deleted_at) != before:
            parked_wake(site, "image", [openstack_id])  # another job may wait on it
        return written
    if image is None:
        return None
    if row is None and made_for is not None and image.owner == made_for.openstack_id:
        projects = {made_for.openstack_id: made_for.pk}
        authors = {openstack_id: getattr(made_by, "pk", None)}
        fields = image_fields(image, projects=projects, authors=authors)
        try:
            with transaction.atomic():
                return Image.objects.create(
                    site=site, openstack_id=openstack_id, fingerprint=row_fingerprint(fields),
                    synced_at=asked, **fields,
                )  # fmt: skip
        except IntegrityError:
            pass
    images_store(site, [image], complete=False, observed_at=asked)
    return Image.objects.filter(site=site, openstack_id=openstack_id).first()


def boot_test_save(*, site: Site, openstack_id: str, outcome: str, **fields) -> BootTest:
    """Record the outcome of the image's latest boot test (one row per image, the
    latest test wins) and copy it onto the image's row, where the snapshot table's
    `?boot=` filter reads it (Image.boot_outcome). Together, so the two never
    disagree. An image the mirror does not hold yet gets no copy: the tests run on
    images a job or a page has already read into the mirror."""
    with transaction.atomic():
        test, _ = BootTest.objects.update_or_create(
            site=site, openstack_id=openstack_id, defaults={"outcome": outcome, **fields}
        )
        Image.objects.filter(site=site, openstack_id=openstack_id).update(boot_outcome=outcome)
    return test
