"""The image catalog's rows as HTML (images/_image_table.html prints them)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from html import escape as _e

from django.db.models import QuerySet
from django.urls import reverse
from django.utils.html import conditional_escape, escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language, gettext, pgettext

from images.models import Image
from images.selectors import CatalogRow, image_catalog, image_catalog_version
from portal.models import Site
from portal.tables import EMPTY_CELL
from portal.templatetags.portal_tags import bytes_size, filesizeformat_mib

# Stands for an image's id in a reversed URL, replaced per cell (see CatalogRows).
_ID_PLACE = 999999999999999


class CatalogRows:
    """The catalog's rows as the row loop of images/_image_table.html printed them,
    written out in Python. The catalog has a row per public image (a thousand on a
    site like the load bench's devcloud, all on one page): the loop cost 0.15 ms a
    row, most of the page's 200 ms of CPU, in {% translate %}, {% url %} and variable
    lookups repeated for every cell. This translates each text once per page and
    reverses the copy URL once. The markup is the template's, unchanged."""

    def __init__(self, rows: list[CatalogRow], sites: list[Site]):
        self.rows = rows
        self.sites = sites
        copy_url = reverse("images:image-copy", args=[_ID_PLACE])
        self.copy_url_parts = copy_url.split(str(_ID_PLACE))
        self.texts = {
            name: escape(text)
            for name, text in {
                "copied": gettext("copied by the portal: where it exists"),
                "copy": pgettext("a copy", "copy"),
                "present": gettext("present"),
                "missing": gettext("missing"),
                "copy_here": gettext("copy here"),
            }.items()
        }
        self.sentences = {
            "copy_here": gettext("copy here: %(image)s to %(site)s"),
            "differs_in": gettext("differs in %(fields)s"),
            "differs": gettext("differs: %(fields)s"),
        }

    def copy_url(self, image_id: int) -> str:
        return str(image_id).join(self.copy_url_parts)

    def html(self) -> SafeString:
        return mark_safe("".join(self.row(row) for row in self.rows))

    # f-strings with html.escape (what Django's escape does to a plain str) rather than
    # format_html: a thousand rows of a dozen values each made its lazy-aware escaping
    # half of what was left of the page's CPU.
    def row(self, row: CatalogRow) -> str:
        reference = row.reference
        tags = (
            "".join(
                f'<span class="badge text-bg-primary">{_e(tag)}</span> ' for tag in reference.tags
            )
            or EMPTY_CELL
        )
        cells = "".join(self.cell(row, site, cell) for site, cell in row.cells)
        return (
            f"\n  <tr>\n    <td>{_e(row.name)}</td>\n    <td>{_e(reference.os_label or EMPTY_CELL)}</td>"
            f"\n    <td>{tags}</td>\n    <td>{reference.min_disk} GB / "
            f"{_e(filesizeformat_mib(reference.min_ram))}</td>\n    <td>{_e(bytes_size(reference.size))}"
            f"</td>\n    <td>{_e(reference.status)}</td>\n    <td>{row.snapshot_count}</td>\n    "
            f"{cells}\n  </tr>\n  "
        )

    def cell(self, row: CatalogRow, site: Site, cell) -> str:
        t = self.texts
        html = ""
        if cell.image is not None and cell.image.copied_from_image_id:
            html = (
                f'<a class="badge text-bg-info text-decoration-none" '
                f'href="{self.copy_url(cell.image.pk)}" title="{t["copied"]}">{t["copy"]}</a> '
            )
        if cell.state == "present":
            html += (
                f'<span class="badge text-bg-success" title="{t["present"]}">{t["present"]}</span>'
            )
        elif cell.state == "missing":
            label = _said(self.sentences["copy_here"], image=row.name, site=site.display_name)
            html += (
                f'<span class="badge text-bg-danger">{t["missing"]}</span> <a class="small" '
                f'href="{self.copy_url(row.reference.pk)}?site={site.pk}" aria-label="{label}">'
                f"{t['copy_here']}</a>"
            )
        else:
            fields = mark_safe(", ".join(_e(field) for field in cell.differences))
            html += (
                f'<span class="badge text-bg-warning" '
                f'title="{_said(self.sentences["differs_in"], fields=fields)}">'
                f"{_said(self.sentences['differs'], fields=fields)}</span>"
            )
        return f'<td class="text-center">{html}</td>\n    '


def _said(text: str, **values) -> SafeString:
    """A translated sentence with values, as {% blocktranslate %} prints it: the
    values escaped, the translation as written."""
    return mark_safe(text % {name: conditional_escape(value) for name, value in values.items()})


@dataclass(frozen=True)
class RenderedCatalog:
    rows: list[CatalogRow]
    html: SafeString


class RenderedCatalogs:
    """The catalog as printed, shared by every request of this process that would
    print the same: a site's thousand public images are the same rows for each of its
    users, and building and printing them was the costliest page of the load bench
    (64–78 ms of CPU).

    Keyed by what decides the rows, read afresh on every view: the exact version of
    the images this user may see through this filter (image_catalog_version: a digest
    of their ids, so one user's rows are never another's, and of the columns a row
    shows, so a change shows on the next view), the user's snapshot counts (so the
    members of one set of projects share an entry), the sites and the language. A few
    entries, least recently used out: each holds about 3 MB for a thousand images (the
    rows, which the page's context carries, and their HTML)."""

    def __init__(self, size: int = 8):
        self.size = size
        self.entries: OrderedDict[tuple, RenderedCatalog] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, *, user, images: QuerySet[Image], sites: list[Site]) -> RenderedCatalog:
        key = (
            image_catalog_version(user=user, images=images),
            tuple((site.pk, site.display_name) for site in sites),
            get_language(),
        )
        with self.lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
                return found
        # Printed outside the lock: two threads may both print a new version once.
        rows = image_catalog(user=user, images=images, sites=sites)
        rendered = RenderedCatalog(rows, CatalogRows(rows, sites).html())
        with self.lock:
            self.entries[key] = rendered
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return rendered


rendered_catalogs = RenderedCatalogs()
