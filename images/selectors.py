"""Reads of the image mirror: the catalog of base images across sites."""

from __future__ import annotations

import hashlib
import pickle
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db.models import Count, Q, QuerySet, TextField
from django.db.models.functions import Cast

from images.models import LIVE_SNAPSHOT, BootTest, Image
from portal.access import in_visible_projects, projects_visible_to
from portal.models import Site


def base_image_list(*, user) -> QuerySet[Image]:
    """Bootable base images the user may use: public ones and their projects' own."""
    images = Image.objects.filter(is_snapshot=False, deleted_at__isnull=True).select_related("site")
    if user.is_superuser:
        return images
    # Not in_visible_projects: public images belong to no portal project.
    return images.filter(
        Q(visibility__in=("public", "community")) | Q(project__in=projects_visible_to(user))
    )


def boot_tests_of(images) -> dict[tuple[int, str], BootTest]:
    """{(site id, image id): the image's latest boot test} for a page of images, in
    one query answered by the (site, image id) index. Asked by image id alone,
    PostgreSQL (no skip scan) read every test the facility ever ran: 7-16 ms a
    page at 50,000 tests."""
    keys = {(image.site_id, image.openstack_id) for image in images}
    if not keys:
        return {}
    tests = BootTest.objects.filter(
        site_id__in={site for site, _ in keys}, openstack_id__in={id_ for _, id_ in keys}
    )
    # Sites × ids may pair an id with a site it is not from: those are left out.
    return {key: t for t in tests if (key := (t.site_id, t.openstack_id)) in keys}


@dataclass
class CatalogCell:
    state: str  # "present", "missing" or "differs"
    image: Image | None = None
    differences: list[str] = field(default_factory=list)


@dataclass
class CatalogRow:
    name: str
    reference: Image
    cells: list[tuple[Site, CatalogCell]]
    snapshot_count: int = 0

    @property
    def sites_present(self) -> list[Site]:
        return [site for site, cell in self.cells if cell.state != "missing"]

    @property
    def is_consistent(self) -> bool:
        return all(cell.state == "present" for _, cell in self.cells)


# What must match for two sites to offer "the same" image.
COMPARED = (("checksum", "checksum"), ("min_disk", "min disk"), ("min_ram", "min RAM"))


# The columns image_catalog reads; images/tables.py prints rows from them.
CATALOG_FIELDS = (
    "site_id", "openstack_id", "name", "status", "size", "min_disk", "min_ram", "checksum",
    "tags", "properties", "copied_from_image_id",
)  # fmt: skip


def catalog_variant(image: Image) -> tuple:
    """What two sites' copies of an image must share to count as the same image."""
    return tuple(getattr(image, attr) for attr, _ in COMPARED)


def image_catalog(
    *, user, images: QuerySet[Image], sites: list[Site] | None = None
) -> list[CatalogRow]:
    """Rows of images matched by name across every site, with a cell per site.

    de.NBI promises the same images on every site; a cell says whether this
    site has the image, lacks it, or has a copy that differs from the most
    common variant (checksum, min disk, min RAM). `sites`: every site, when the
    caller has them already.
    """
    sites = list(Site.objects.all()) if sites is None else sites
    by_name: dict[str, dict[int, Image]] = defaultdict(dict)
    # Only what a row shows and compares: a thousand public images are a thousand
    # model instances per view, and their dates, JSON and joined sites were a third
    # of the page's CPU.
    images = images.select_related(None).only(*CATALOG_FIELDS)
    for image in images.order_by("name", "site__display_name"):
        by_name[image.name].setdefault(image.site_id, image)

    counts = _snapshot_counts(user)
    rows = []
    for name, per_site in sorted(by_name.items(), key=lambda item: item[0].lower()):
        majority, _ = Counter(catalog_variant(i) for i in per_site.values()).most_common(1)[0]
        reference = next(i for i in per_site.values() if catalog_variant(i) == majority)
        cells = []
        for site in sites:
            image = per_site.get(site.pk)
            if image is None:
                cells.append((site, CatalogCell("missing")))
                continue
            differences = [
                label
                for attr, label in COMPARED
                if getattr(image, attr) != getattr(reference, attr)
            ]
            cells.append(
                (site, CatalogCell("differs" if differences else "present", image, differences))
            )
        snapshots = sum(counts.get((i.site_id, i.openstack_id), 0) for i in per_site.values())
        rows.append(CatalogRow(name, reference, cells, snapshots))
    return rows


def image_catalog_version(*, user, images: QuerySet[Image]) -> tuple[bytes, frozenset]:
    """All that image_catalog's rows for `images` are made of, read without building
    them: a digest of each image's id and the columns a row shows (JSON as its text,
    not decoded), and the user's snapshot counts. Equal versions give equal rows,
    whichever writer changed what (images/tables.py keys its printed catalog by it)."""
    columns = [
        Cast(name, TextField()) if name in ("tags", "properties") else name
        for name in CATALOG_FIELDS
    ]
    rows = list(images.order_by("pk").values_list("pk", *columns))
    # A digest, not the rows: a cache key holding a thousand rows' text weighed more
    # than the page it stands for.
    digest = hashlib.sha256(pickle.dumps(rows, protocol=5)).digest()
    return digest, frozenset(_snapshot_counts(user).items())


# "Snapshots from it" counts every live snapshot of the user's projects (an index-only
# GROUP BY, still O(snapshots)): the catalog reuses one count this long, no staler than
# the mirror itself between two syncs (PORTAL_SYNC_INTERVAL).
SNAPSHOT_COUNTS_SECONDS = 30


def _snapshot_counts(user) -> dict[tuple[int, str], int]:
    """{(site id, base image id): snapshots derived from it in the user's projects}."""
    if user.is_superuser:
        key = "images.snapshot_counts:all"
    else:
        projects = sorted(projects_visible_to(user).values_list("pk", flat=True))
        key = "images.snapshot_counts:" + ",".join(map(str, projects))
    counts = cache.get(key)
    if counts is None:
        snapshots = in_visible_projects(Image.objects.filter(LIVE_SNAPSHOT), user)
        rows = (
            snapshots.order_by()
            .values_list("site_id", "base_image_openstack_id")
            .annotate(n=Count("pk"))
        )
        counts = {(site_id, base_id): n for site_id, base_id, n in rows}
        cache.set(key, counts, SNAPSHOT_COUNTS_SECONDS)
    return counts


# How far a snapshot's ancestry is followed (a snapshot of a machine booted from a
# snapshot of ...); deeper chains are not trusted.
ANCESTRY_MAX = 10


def image_catalog_root(image: Image) -> Image | None:
    """The catalog image a snapshot descends from, following Nova's `base_image_ref`
    (for a non-snapshot, the image itself); None when an ancestor is gone or the chain
    is longer than ANCESTRY_MAX."""
    current: Image | None = image
    for _ in range(ANCESTRY_MAX):
        if current is None or not current.is_snapshot:
            return current
        base_id = current.base_image_openstack_id
        if not base_id:
            return None
        current = Image.objects.filter(site_id=current.site_id, openstack_id=base_id).first()
    return None if current is None or current.is_snapshot else current


def image_catalog_property(image: Image, key: str) -> str:
    """A property as the site's public catalog sets it for this image or, for a
    snapshot, for the catalog image it descends from.

    Nova copies the base image's properties into every snapshot, and any project
    member may set properties on the project's own images, so a value found on a
    snapshot (or a private upload) says nothing about who set it. Only a public
    image, which only the cloud's operators can publish, is trusted."""
    root = image_catalog_root(image)
    if root is None or root.visibility != "public":
        return ""
    return str(root.properties.get(key, ""))
