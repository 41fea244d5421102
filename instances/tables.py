from __future__ import annotations

import django_tables2 as tables
from django.urls import reverse
from django.utils.translation import gettext_lazy

from instances.models import Server
from instances.selectors import server_allowed_actions
from portal.tables import EMPTY_CELL, TimeColumn, UnsortedColumn, cell_text, time_text


class ServerTable(tables.Table):
    """The instance overview. Its columns give the headers and the sorting; the
    rows are `row_values` printed by instances/_instance_row.html, one template per
    row. django-tables2's per-cell rendering (bound rows and columns, accessors,
    a render call and a template per cell) cost 0.8 ms a row, 0.3 ms this way:
    a page of ten rows cost twice one of a single row."""

    # Every sort a header offers is walked from an index of existing servers
    # (instances.models.Server.Meta) and stopped after a page; the row id (or the
    # index's own order) breaks ties, so rows keep their place from page to page.
    select = tables.CheckBoxColumn(accessor="pk", orderable=False)
    name = tables.Column(order_by=("name", "id"), verbose_name=gettext_lazy("Name"))
    # Within a status, newest first (the order of the server_live_status index).
    status = tables.Column(order_by=("status", "-created_at", "name"))
    project = UnsortedColumn(
        accessor="project__name",
        verbose_name=gettext_lazy("Project"),
        sort_note=gettext_lazy("Not sortable: filter by project instead."),
    )
    site = UnsortedColumn(
        accessor="site__display_name",
        verbose_name=gettext_lazy("Site"),
        sort_note=gettext_lazy("Not sortable: filter by site instead."),
    )
    flavor = tables.Column(
        accessor="flavor_name",
        order_by=("flavor_ram_mib", "flavor_name", "id"),
        verbose_name=gettext_lazy("Flavor"),
    )
    image = tables.Column(
        accessor="image_openstack_id", orderable=False, verbose_name=gettext_lazy("Image")
    )
    addresses = tables.Column(verbose_name=gettext_lazy("IP addresses"), orderable=False)
    created_by = UnsortedColumn(
        accessor="created_by__username",
        verbose_name=gettext_lazy("Created by"),
        sort_note=gettext_lazy("Not sortable."),
    )
    created_at = TimeColumn(
        order_by=("created_at", "name"), verbose_name=gettext_lazy("Created at")
    )
    actions = tables.Column(empty_values=(), orderable=False, verbose_name=gettext_lazy("Actions"))

    class Meta:
        model = Server
        fields = ()
        # The order of the headers; instances/_instance_row.html prints the cells in it.
        sequence = (
            "select", "name", "status", "project", "site", "flavor", "image", "addresses",
            "created_by", "created_at", "actions",
        )  # fmt: skip
        order_by = ("-created_at",)
        empty_text = "No instances match."

    def __init__(self, *args, image_names=None, user=None, next_url="", **kwargs):
        super().__init__(*args, **kwargs)
        # Row forms go back to the overview the user was on (`next_url`), also
        # from a self-refreshing row.
        self.next_url = next_url
        # {(site_id, image openstack id): name}, fetched once for the whole page.
        self.image_names = image_names or {}
        # Pks of servers a portal job works on: no actions offered on those.
        self.busy_ids: set[int] = set()
        self.user = user

    def page_rows(self) -> list[dict]:
        """`row_values` of every row on the current page."""
        return [self.row_values(row.record) for row in self.paginated_rows]

    def row_values(self, server: Server) -> dict:
        """What one row shows, as plain values: text the row template escapes, the
        server (for its status badge and actions) and the actions offered."""
        if not server.image_openstack_id:
            image = "(boot volume)"  # Nova lists no image for a server booted from a volume
        else:
            key = (server.site_id, server.image_openstack_id)
            image = self.image_names.get(key, "unknown image")
        return {
            "server": server,
            # A row in transition, or one a job works on, refreshes itself.
            "live": server.is_transitional or server.pk in self.busy_ids,
            "url": reverse("instances:instance-detail", kwargs={"server_id": server.pk}),
            "project": cell_text(server.project.name if server.project else None),
            "site": cell_text(server.site.display_name),
            "flavor": (
                f"{server.flavor_name} ({server.flavor_ram_mib / 1024:g} GiB RAM)"
                if server.flavor_name
                else EMPTY_CELL
            ),
            "image": image,
            "addresses": ", ".join(server.addresses or ()) or EMPTY_CELL,
            "created_by": cell_text(server.created_by.username if server.created_by else None),
            "created_at": time_text(server.created_at),
            "actions": server_allowed_actions(self.user, server, busy_ids=self.busy_ids),
        }
