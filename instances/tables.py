from __future__ import annotations

import django_tables2 as tables
from django.template.loader import render_to_string
from django.utils.html import format_html

from instances.models import Server
from instances.selectors import server_allowed_actions
from portal.tables import TimeColumn, row_render


class ServerTable(tables.Table):
    select = tables.CheckBoxColumn(accessor="pk", orderable=False)
    name = tables.Column(linkify=("instances:instance-detail", {"server_id": tables.A("pk")}))
    status = tables.Column(order_by=("status", "task_state"))
    project = tables.Column(accessor="project__name", verbose_name="Project")
    site = tables.Column(accessor="site__display_name", verbose_name="Site")
    flavor = tables.Column(
        accessor="flavor_name", order_by=("flavor_ram_mib", "flavor_name"), verbose_name="Flavor"
    )
    image = tables.Column(accessor="image_openstack_id", orderable=False, verbose_name="Image")
    addresses = tables.Column(verbose_name="IP addresses", orderable=False)
    created_by = tables.Column(accessor="created_by__username", verbose_name="Created by")
    created_at = TimeColumn(verbose_name="Created at")
    actions = tables.Column(empty_values=(), orderable=False, verbose_name="Actions")

    class Meta:
        model = Server
        fields = ()
        sequence = (
            "select", "name", "status", "project", "site", "flavor", "image", "addresses",
            "created_by", "created_at", "actions",
        )  # fmt: skip
        order_by = ("-created_at",)
        empty_text = "No instances match."

    def __init__(self, *args, image_names=None, user=None, request=None, next_url="", **kwargs):
        super().__init__(*args, **kwargs)
        # Row forms are rendered with the request (their CSRF token) and go back to
        # the overview the user was on (`next_url`), also from a self-refreshing row.
        self.request = request
        self.next_url = next_url
        # {(site_id, image openstack id): name}, fetched once for the whole page.
        self.image_names = image_names or {}
        # Pks of servers a portal job works on: no actions offered on those.
        self.busy_ids: set[int] = set()
        self.user = user

    def render_select(self, record):
        return format_html(
            '<input class="form-check-input row-select" type="checkbox" name="selected" '
            'value="{}" aria-label="Select {}" form="bulk-form">',
            record.pk,
            record.name,
        )

    def render_status(self, record):
        return render_to_string("instances/_status_badge.html", {"server": record})

    def render_flavor(self, record):
        return f"{record.flavor_name} ({record.flavor_ram_mib / 1024:g} GiB RAM)"

    def render_image(self, record):
        if not record.image_openstack_id:
            return "(boot volume)"
        return self.image_names.get((record.site_id, record.image_openstack_id), "unknown image")

    def render_addresses(self, value):
        return ", ".join(value) or "—"

    def render_actions(self, record):
        actions = server_allowed_actions(self.user, record, busy_ids=self.busy_ids)
        context = {"server": record, "actions": actions, "compact": True, "next": self.next_url}
        return row_render("instances/_actions.html", context, request=self.request)
