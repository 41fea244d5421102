from __future__ import annotations

import django_tables2 as tables
from django.middleware.csrf import get_token
from django.template.defaultfilters import filesizeformat, truncatechars
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import conditional_escape, escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, gettext_lazy, pgettext

from portal.tables import EMPTY_CELL, TimeColumn, UnsortedColumn, cell_text, time_text
from portal.templatetags.portal_tags import idempotency_input
from portal.texts import render as job_text
from snapshots.models import Snapshot

# An id no row has, that cannot be part of the rest of a URL by chance.
_STAND_IN_ID = 987654321987


def id_urls(name: str, kwarg: str | None = None):
    """`reverse(name)` for many ids, as a function of the id: reversed once, with a
    stand-in id the row's id then replaces. A row links to up to four such pages, and
    each reverse() walks the resolver's candidates with their regexes: ~8 % of a
    snapshot page's CPU for 25 rows."""
    url = (
        reverse(name, kwargs={kwarg: _STAND_IN_ID}) if kwarg else reverse(name, args=[_STAND_IN_ID])
    )
    parts = url.split(str(_STAND_IN_ID))
    if len(parts) != 2:  # not where we can tell it apart: reverse each time
        if kwarg:
            return lambda pk: reverse(name, kwargs={kwarg: pk})
        return lambda pk: reverse(name, args=[pk])
    head, tail = parts
    return lambda pk: f"{head}{int(pk)}{tail}"


class SnapshotTable(tables.Table):
    """The snapshot lists. Its columns give the headers and the sorting; the rows
    are `row_values` printed by `SnapshotRows` (django-tables2's per-cell rendering
    cost 1.1 ms a row, see ServerTable; a row template 2.9 ms)."""

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
        # The order of the headers; SnapshotRows prints the cells in it.
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
        self.project_url = id_urls("snapshots:snapshot-project-list", "project_id")
        self.server_url = id_urls("instances:instance-detail", "server_id")

    def page_rows(self) -> list[dict]:
        """`row_values` of every row on the current page."""
        return [self.row_values(row.record) for row in self.paginated_rows]

    def row_values(self, snapshot: Snapshot) -> dict:
        """What one row shows, as plain values: text the row template escapes, the
        snapshot (for its badges and actions) and what the view looked up per page."""
        key = (snapshot.site_id, snapshot.openstack_id)
        project_url = source_url = None
        if snapshot.project_id:
            project_url = self.project_url(snapshot.project_id)
        server = self.source_servers.get((snapshot.site_id, snapshot.source_server_openstack_id))
        if server is not None:
            source = server.name
            source_url = self.server_url(server.pk)
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


def _said(text: str, **values) -> SafeString:
    """A translated sentence with values, as {% blocktranslate %} prints it: the
    values escaped, the translation as written."""
    return mark_safe(text % {name: conditional_escape(value) for name, value in values.items()})


class SnapshotRows:
    """The rows of a page of the snapshot table as HTML: what a row template printed,
    written out in Python. A row template cost 2.9 ms a row (twenty {% translate %}
    and {% include %} nodes resolved per row), more than half of the page's CPU; this
    translates each text once per page and costs about a tenth of that. The markup
    is the row template's, unchanged: the page tests and axe check it."""

    def __init__(self, table: SnapshotTable, request):
        self.table = table
        self.project = table.project
        # One token for every row's form: the csrf_token tag would mask the same
        # secret once per row; one masked token is as good for each of them.
        self.csrf = format_html(
            '<input type="hidden" name="csrfmiddlewaretoken" value="{}">', get_token(request)
        )
        self.next_path = request.get_full_path()
        self.urls = {
            "delete": reverse("snapshots:snapshot-delete"),
            "new": reverse("instances:instance-new"),
        }
        self.copy_url = id_urls("images:image-copy")
        self.verify_url = id_urls("snapshots:snapshot-verify")
        self.texts = {
            name: escape(text)
            for name, text in {
                "copy_note": gettext("A copy of a snapshot at another site: where it exists"),
                "copy_badge": pgettext("a copy", "copy"),
                "copy": gettext("copy"),
                "deleting": gettext("deleting"),
                "deleted": gettext("deleted"),
                "active": gettext("active"),
                "failed": gettext("failed"),
                "not_verified": gettext("not verified"),
                "boot_test": gettext("Boot test:"),
                "delete": gettext("Delete"),
                "launch": gettext("Launch"),
                "copy_site": gettext("Copy to another site"),
                "verify": gettext("Verify now"),
            }.items()
        }
        self.sentences = {
            "select": gettext("Select %(snapshot)s"),
            "copy_id": gettext("Copy OpenStack ID %(id)s"),
            "delete": gettext("Delete %(snapshot)s"),
            "launch": gettext("Launch instance from %(snapshot)s"),
            "copy_site": gettext("Copy to another site: %(image)s"),
            "verify": gettext("Verify now: test that %(snapshot)s boots"),
        }

    def html(self) -> SafeString:
        return mark_safe("".join(f"\n    {self.row(row)}\n  " for row in self.table.page_rows()))

    def row(self, row: dict) -> str:
        snapshot, t, said = row["snapshot"], self.texts, self.sentences
        name = conditional_escape(row["name"])
        if snapshot.copied_from_image_id:
            name = format_html(
                '{} <a class="badge text-bg-info text-decoration-none" href="{}" title="{}">{}</a>',
                name, self.copy_url(snapshot.pk), t["copy_note"],
                t["copy_badge"],
            )  # fmt: skip
        openstack_id: str
        if snapshot.openstack_id:
            openstack_id = format_html(
                '<code class="small">{}</code> <button type="button" class="btn '
                'btn-outline-secondary copy-btn" data-copy="{}" aria-label="{}">{}</button>',
                row["short_id"], snapshot.openstack_id,
                _said(said["copy_id"], id=snapshot.openstack_id), t["copy"],
            )  # fmt: skip
        else:
            openstack_id = EMPTY_CELL
        return format_html(
            '<tr><td><input class="form-check-input row-select" type="checkbox" '
            'name="selected" value="{}" aria-label="{}" form="bulk-form"></td>'
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td><td>{}</td></tr>\n",
            snapshot.pk, _said(said["select"], snapshot=snapshot.name), name,
            _linked(row["project"], row["project_url"]), self.status(row),
            _linked(row["source"], row["source_url"]), row["site"], row["size"],
            row["created_at"], row["created_by"], openstack_id, self.actions(snapshot),
        )  # fmt: skip

    def status(self, row: dict) -> SafeString:
        """snapshots/_row_status.html's cell: the status, a job's progress, the boot test."""
        snapshot, t, job, test = row["snapshot"], self.texts, row["job"], row["boot_test"]
        html: str
        if row["deleting"]:
            html = format_html('<span class="badge text-bg-warning">{}</span>', t["deleting"])
        else:
            html = self.status_badge(snapshot)
        if job:
            html += format_html(' <span class="small text-muted">{}</span>', job_text(job.progress))
        html += "\n"
        if test is None:
            html += format_html(
                '<span class="badge text-bg-light border">{}</span>\n', t["not_verified"]
            )
        else:  # rarer, and with dates and durations: the shared badge template prints it
            html += render_to_string("images/_boot_badge.html", {"test": test})
        if test is not None and test.reason and test.outcome not in ("verified", "running"):
            html += format_html(
                '<div class="small text-muted">{} {} — {}</div>', t["boot_test"],
                test.get_outcome_display(), truncatechars(job_text(test.reason), 160),
            )  # fmt: skip
        return mark_safe(html + "\n")

    def status_badge(self, snapshot) -> SafeString:
        """snapshots/_status_badge.html."""
        t = self.texts
        if snapshot.deleted_at:
            badge = format_html('<span class="badge text-bg-dark">{}</span>', t["deleted"])
        elif snapshot.status == "active":
            badge = format_html('<span class="badge text-bg-success">{}</span>', t["active"])
        elif snapshot.status == "killed":
            badge = format_html('<span class="badge text-bg-danger">{}</span>', t["failed"])
        elif snapshot.status in ("queued", "saving"):
            badge = format_html('<span class="badge text-bg-info">{}</span>', snapshot.status)
        else:
            badge = format_html('<span class="badge text-bg-secondary">{}</span>', snapshot.status)
        return mark_safe(badge + "\n")

    def actions(self, snapshot) -> SafeString:
        """snapshots/_row_actions.html."""
        t, said = self.texts, self.sentences
        project = f"&amp;project={self.project.pk}" if self.project else ""
        html = format_html(
            '<div class="d-flex gap-1 flex-wrap">\n  <a class="btn btn-sm btn-outline-danger" '
            'href="{}?selected={}{}" aria-label="{}">{}</a>\n  ',
            self.urls["delete"], snapshot.pk, mark_safe(project),
            _said(said["delete"], snapshot=snapshot.name), t["delete"],
        )  # fmt: skip
        if snapshot.status == "active":
            html += format_html(
                '<a class="btn btn-sm btn-outline-primary" href="{}?project={}&amp;image={}'
                '&amp;tab=snapshots" aria-label="{}">{}</a>\n'
                '  <a class="btn btn-sm btn-outline-primary" href="{}" aria-label="{}">{}</a>\n'
                '  <form method="post" action="{}" data-submit-once>{}{}<input type="hidden" '
                'name="next" value="{}"><button class="btn btn-sm btn-outline-secondary" '
                'type="submit" aria-label="{}">{}</button></form>',
                self.urls["new"], snapshot.project_id, snapshot.pk,
                _said(said["launch"], snapshot=snapshot.name), t["launch"],
                self.copy_url(snapshot.pk),
                _said(said["copy_site"], image=snapshot.name), t["copy_site"],
                self.verify_url(snapshot.pk), self.csrf,
                idempotency_input(), self.next_path,
                _said(said["verify"], snapshot=snapshot.name), t["verify"],
            )  # fmt: skip
        return mark_safe(html + "\n</div>\n")


def _linked(text, url) -> SafeString:
    return format_html('<a href="{}">{}</a>', url, text) if url else conditional_escape(text)
