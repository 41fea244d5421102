from __future__ import annotations

import django_tables2 as tables
from django.template.defaultfilters import filesizeformat
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html

from portal.tables import TimeColumn, row_render
from snapshots.models import Snapshot


class SnapshotTable(tables.Table):
    select = tables.CheckBoxColumn(accessor="pk", orderable=False)
    name = tables.Column()
    project = tables.Column(
        accessor="project__name",
        verbose_name="Project",
        linkify=lambda record: (
            reverse("snapshots:snapshot-project-list", kwargs={"project_id": record.project_id})
            if record.project_id
            else None
        ),
    )
    status = tables.Column()
    source = tables.Column(
        accessor="source_server_openstack_id", verbose_name="Source instance", orderable=False
    )
    site = tables.Column(accessor="site__display_name", verbose_name="Site")
    size = tables.Column()
    created_at = TimeColumn(verbose_name="Created at")
    created_by = tables.Column(accessor="created_by__username", verbose_name="Created by")
    openstack_id = tables.Column(verbose_name="OpenStack ID", orderable=False)
    actions = tables.Column(empty_values=(), orderable=False, verbose_name="Actions")

    class Meta:
        model = Snapshot
        fields = ()
        sequence = (
            "select", "name", "project", "status", "source", "site", "size", "created_at",
            "created_by", "openstack_id", "actions",
        )  # fmt: skip
        order_by = ("-created_at",)

    def __init__(self, *args, request=None, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Row forms need the request (their CSRF token); links keep the project page.
        self.request = request
        self.project = project
        # Filled per page by the view (one query each, never one per row).
        self.source_servers: dict = {}
        self.jobs: dict = {}
        self.deleting: set[int] = set()
        self.boot_tests: dict = {}

    def render_select(self, record):
        return format_html(
            '<input class="form-check-input row-select" type="checkbox" name="selected" '
            'value="{}" aria-label="Select {}" form="bulk-form">',
            record.pk,
            record.name,
        )

    def render_status(self, record):
        context = {
            "snapshot": record,
            "job": self.jobs.get((record.site_id, record.openstack_id)),
            "deleting": record.pk in self.deleting,
            "boot_test": self.boot_tests.get((record.site_id, record.openstack_id)),
        }
        return render_to_string("snapshots/_row_status.html", context)

    def render_source(self, record):
        server = self.source_servers.get((record.site_id, record.source_server_openstack_id))
        if server is None:
            return record.source_server_openstack_id[:8] or "—"
        url = reverse("instances:instance-detail", kwargs={"server_id": server.pk})
        return format_html('<a href="{}">{}</a>', url, server.name)

    def render_size(self, value):
        return "—" if value is None else filesizeformat(value)

    def render_openstack_id(self, value):
        return format_html(
            '<code class="small">{}</code> <button type="button" class="btn btn-outline-secondary '
            'copy-btn" data-copy="{}" aria-label="Copy OpenStack ID {}">copy</button>',
            value[:8],
            value,
            value,
        )

    def render_actions(self, record):
        context = {"snapshot": record, "project": self.project}
        return row_render("snapshots/_row_actions.html", context, request=self.request)
