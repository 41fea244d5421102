from __future__ import annotations

import django_tables2 as tables
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.translation import gettext_lazy

from portal.tables import EMPTY_CELL, TimeColumn, UnsortedColumn, cell_text, time_text
from snapshots.models import Snapshot


class SnapshotTable(tables.Table):
    """The snapshot lists. Its columns give the headers and the sorting; the rows
    are `row_values` printed by snapshots/_snapshot_row.html, one template per
    row: django-tables2's per-cell rendering cost 1.1 ms a row (see ServerTable)."""

    # Every sort a header offers is walked from an index of live snapshots
    # (images.models.Image.Meta) and stopped after a page; the row id breaks ties,
    # so rows of equal value keep their place from page to page.
    select = tables.CheckBoxColumn(accessor="pk", orderable=False)
    # By the case-folded name: "alpha" and "Alpha" side by side.
    name = tables.Column(order_by=("name_key", "id"), verbose_name=gettext_lazy("Name"))
    project = UnsortedColumn(
        accessor="project__name",
        verbose_name=gettext_lazy("Project"),
        sort_note=gettext_lazy("Not sortable: filter by project name instead."),
    )
    status = tables.Column(order_by=("status", "id"), verbose_name=gettext_lazy("Status"))
    source = tables.Column(
        accessor="source_server_openstack_id",
        verbose_name=gettext_lazy("Source instance"),
        orderable=False,
    )
    site = UnsortedColumn(
        accessor="site__display_name",
        verbose_name=gettext_lazy("Site"),
        sort_note=gettext_lazy("Not sortable: filter by site instead."),
    )
    size = tables.Column(order_by=("size", "id"), verbose_name=gettext_lazy("Size"))
    created_at = TimeColumn(order_by=("created_at", "id"), verbose_name=gettext_lazy("Created at"))
    created_by = UnsortedColumn(
        accessor="created_by__username",
        verbose_name=gettext_lazy("Created by"),
        sort_note=gettext_lazy("Not sortable."),
    )
    openstack_id = tables.Column(verbose_name=gettext_lazy("OpenStack ID"), orderable=False)
    actions = tables.Column(empty_values=(), orderable=False, verbose_name=gettext_lazy("Actions"))

    class Meta:
        model = Snapshot
        fields = ()
        # The order of the headers; snapshots/_snapshot_row.html prints the cells in it.
        sequence = (
            "select", "name", "project", "status", "source", "site", "size", "created_at",
            "created_by", "openstack_id", "actions",
        )  # fmt: skip
        order_by = ("-created_at",)  # the created_at column's order: newest first, then by id

    def __init__(self, *args, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Row links (delete) keep the project page.
        self.project = project
        # Filled per page by the view (one query each, never one per row).
        self.source_servers: dict = {}
        self.jobs: dict = {}
        self.deleting: set[int] = set()
        self.boot_tests: dict = {}

    def page_rows(self) -> list[dict]:
        """`row_values` of every row on the current page."""
        return [self.row_values(row.record) for row in self.paginated_rows]

    def row_values(self, snapshot: Snapshot) -> dict:
        """What one row shows, as plain values: text the row template escapes, the
        snapshot (for its badges and actions) and what the view looked up per page."""
        key = (snapshot.site_id, snapshot.openstack_id)
        project_url = source_url = None
        if snapshot.project_id:
            kwargs = {"project_id": snapshot.project_id}
            project_url = reverse("snapshots:snapshot-project-list", kwargs=kwargs)
        server = self.source_servers.get((snapshot.site_id, snapshot.source_server_openstack_id))
        if server is not None:
            source = server.name
            source_url = reverse("instances:instance-detail", kwargs={"server_id": server.pk})
        else:
            source = cell_text(snapshot.source_server_openstack_id[:8])
        return {
            "snapshot": snapshot,
            "name": cell_text(snapshot.name),
            "project": cell_text(snapshot.project.name if snapshot.project else None),
            "project_url": project_url,
            "job": self.jobs.get(key),
            "deleting": snapshot.pk in self.deleting,
            "boot_test": self.boot_tests.get(key),
            "source": source,
            "source_url": source_url,
            "site": cell_text(snapshot.site.display_name),
            "size": EMPTY_CELL if snapshot.size is None else filesizeformat(snapshot.size),
            "created_at": time_text(snapshot.created_at),
            "created_by": cell_text(snapshot.created_by.username if snapshot.created_by else None),
            "short_id": snapshot.openstack_id[:8],
        }
