from __future__ import annotations

from urllib.parse import quote

import django_tables2 as tables
from django.middleware.csrf import get_token
from django.template import engines
from django.urls import reverse
from django.utils.html import conditional_escape, escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, gettext_lazy

from instances.models import Server
from instances.park import frees_text
from instances.selectors import server_allowed_actions
from portal.sites import site_shelve_refusal
from portal.tables import EMPTY_CELL, TimeColumn, UnsortedColumn, cell_text, time_text
from portal.templatetags.portal_tags import filesizeformat_mib, idempotency_input


class ServerTable(tables.Table):
    """The instance overview. Its columns give the headers and the sorting; the
    rows are `row_values` printed by `ServerRows` (a row template cost 0.4 ms a
    row). django-tables2's per-cell rendering (bound rows and columns, accessors,
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
        # The order of the headers; ServerRows prints the cells in it.
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


def _said(text: str, **values) -> SafeString:
    """A translated sentence with values, as {% blocktranslate %} prints it: the
    values escaped, the translation as written."""
    return mark_safe(text % {name: conditional_escape(value) for name, value in values.items()})


def _snapshot_refusal(server) -> str:
    """Why a snapshot cannot be taken now, or "": the snapshot rules live in an app
    above this one, so they are asked by their template library's name, as the
    row template did (`{% load snapshot_rules %}`); no import points up."""
    libraries = engines["django"].engine.template_libraries  # type: ignore[attr-defined]
    return libraries["snapshot_rules"].filters["snapshot_refusal"](server)


class ServerRows:
    """Rows of the instance overview as HTML: what instances/_instance_row.html with
    its status badge and compact actions printed, written out in Python with each
    text translated once per page (the templates cost 0.4 ms a row, a third of the
    overview's CPU). The detail page keeps the templates; the markup is theirs."""

    def __init__(self, table: ServerTable, request, *, poll: int = 0, delay: int = 2):
        self.table = table
        self.poll, self.delay = poll, delay
        # One masked token for every row's forms (the csrf_token tag masks once per form).
        self.csrf = format_html(
            '<input type="hidden" name="csrfmiddlewaretoken" value="{}">', get_token(request)
        )
        self.next = table.next_url or request.get_full_path()
        self.texts = {
            name: escape(text)
            for name, text in {
                "deleted": gettext("deleted"),
                "locked": gettext("locked"),
                "snapshot": gettext("Create snapshot"),
                "stop": gettext("Stop"),
                "start": gettext("Start"),
                "park": gettext("Park"),
                "resume": gettext("Resume"),
            }.items()
        }
        self.sentences = {
            "select": gettext("Select %(server)s"),
            "shelved": gettext(
                "Shelved by Nova: its disk is kept as an image; it frees %(vcpus)s vCPUs "
                "and %(ram)s RAM"
            ),
            "frees": gettext("frees %(vcpus)s vCPUs, %(ram)s RAM"),
            "stop": gettext("Stop %(server)s"),
            "start": gettext("Start %(server)s"),
            "park": gettext("Park %(server)s"),
            "park_title": gettext("Stop it and keep its disk, name and IP; frees %(frees)s"),
            "resume": gettext("Resume %(server)s"),
        }

    def html(self) -> SafeString:
        return mark_safe("".join(f"{self.row(row)}\n    " for row in self.table.page_rows()))

    def row(self, row: dict) -> SafeString:
        server = row["server"]
        live = ""
        if row["live"]:
            live = format_html(
                ' hx-get="{}?poll={}" hx-trigger="load delay:{}s" hx-swap="outerHTML"',
                reverse("instances:instance-row", args=[server.pk]), self.poll, self.delay,
            )  # fmt: skip
        name = format_html('<a href="{}">{}</a>', row["url"], server.name) if server.name else "—"
        return format_html(
            '\n<tr id="server-row-{}"{}>\n  <td><input class="form-check-input row-select" '
            'type="checkbox" name="selected" value="{}" aria-label="{}" form="bulk-form"></td>'
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td><td>{}</td>\n</tr>\n",
            server.pk, live, server.pk, _said(self.sentences["select"], server=server.name),
            name, self.status_badge(server), row["project"], row["site"], row["flavor"],
            row["image"], row["addresses"], row["created_by"], row["created_at"],
            self.actions(server, row["actions"]),
        )  # fmt: skip

    def status_badge(self, server: Server) -> SafeString:
        """instances/_status_badge.html."""
        t, said = self.texts, self.sentences
        if server.is_deleted:
            return format_html('<span class="badge text-bg-dark">{}</span>\n', t["deleted"])
        if server.status == "ACTIVE":
            style = "text-bg-success"
        elif server.status == "SHUTOFF":
            style = "text-bg-secondary"
        elif server.status == "ERROR":
            style = "text-bg-danger"
        elif server.is_parked:
            style = "text-bg-light border"
        else:
            style = "text-bg-info"
        title = frees = ""
        if server.is_parked:
            sizes = {"vcpus": server.flavor_vcpus, "ram": filesizeformat_mib(server.flavor_ram_mib)}
            title = format_html(' title="{}"', _said(said["shelved"], **sizes))
            frees = format_html(
                ' <span class="small text-muted">{}</span>', _said(said["frees"], **sizes)
            )
        html = format_html(
            '<span class="badge {}"{}>{}</span>{}',
            style,
            title,
            gettext(server.status_label),
            frees,
        )
        if server.task_state:
            html += format_html(
                ' <span class="badge text-bg-warning">{}</span>', gettext(server.task_label)
            )
        if server.locked:
            html += format_html(
                ' <span class="badge text-bg-dark" title="{}">{}</span>',
                server.lock_refusal, t["locked"],
            )  # fmt: skip
        return mark_safe(html + "\n")

    def _form(self, url_name: str, server: Server, style: str, label: str, text: str) -> SafeString:
        return format_html(
            '<form method="post" action="{}" data-submit-once>{}{}<input type="hidden" '
            'name="next" value="{}"><button class="btn {} btn-sm" type="submit" '
            'aria-label="{}">{}</button></form>',
            reverse(url_name, args=[server.pk]), self.csrf, idempotency_input(), self.next,
            style, _said(label, server=server.name), text,
        )  # fmt: skip

    def actions(self, server: Server, actions: set[str]) -> SafeString:
        """instances/_actions.html as a row shows it (compact): the buttons the state
        and the user's role allow; the services check again."""
        t, said = self.texts, self.sentences
        parts = ['\n<div class="d-flex gap-1 flex-wrap">\n', "\n"]
        snapshot = park = stop = start = resume = ""
        if "snapshot" in actions:
            refusal = _snapshot_refusal(server)
            if refusal:
                snapshot = format_html(
                    '<span class="d-inline-block" tabindex="0" title="{}"><button class="btn '
                    'btn-primary btn-sm" type="button" disabled aria-describedby="snap-refusal-{}">'
                    '{}</button></span><span class="visually-hidden" id="snap-refusal-{}">{}</span>',
                    refusal, server.pk, t["snapshot"], server.pk, refusal,
                )  # fmt: skip
            else:
                url = reverse("snapshots:snapshot-create", args=[server.pk])
                snapshot = format_html(
                    '<a class="btn btn-primary btn-sm" href="{}" hx-get="{}" '
                    'hx-target="#modal-host" data-opens-dialog>{}</a>',
                    url, url, t["snapshot"],
                )  # fmt: skip
        if "stop" in actions:
            stop = self._form("instances:instance-stop", server, "btn-outline-secondary",
                              said["stop"], t["stop"])  # fmt: skip
        if "start" in actions:
            start = self._form("instances:instance-start", server, "btn-outline-success",
                               said["start"], t["start"])  # fmt: skip
        if "park" in actions:
            refusal = site_shelve_refusal(server.site.name)
            if refusal:
                park = format_html(
                    '<span class="d-inline-block" tabindex="0" title="{}"><button class="btn '
                    'btn-outline-secondary btn-sm" type="button" disabled '
                    'aria-describedby="park-refusal-{}">{}</button></span>'
                    '<span class="visually-hidden" id="park-refusal-{}">{}</span>',
                    refusal, server.pk, t["park"], server.pk, refusal,
                )  # fmt: skip
            else:
                park = format_html(
                    '<form method="post" action="{}" class="d-flex align-items-center" '
                    'data-submit-once>{}{}<input type="hidden" name="next" value="{}"><button '
                    'class="btn btn-outline-secondary btn-sm" type="submit" aria-label="{}" '
                    'title="{}">{}</button></form>',
                    reverse("instances:instance-park", args=[server.pk]), self.csrf,
                    idempotency_input(), self.next, _said(said["park"], server=server.name),
                    _said(said["park_title"], frees=frees_text(server)), t["park"],
                )  # fmt: skip
        if "resume" in actions:
            resume = format_html(
                '<a class="btn btn-outline-success btn-sm" href="{}?next={}" aria-label="{}">{}</a>',
                reverse("instances:instance-resume", args=[server.pk]), quote(self.next, safe="/"),
                _said(said["resume"], server=server.name), t["resume"],
            )  # fmt: skip
        cells = [snapshot, stop, start, park, resume, ""]
        return mark_safe(parts[0] + parts[1] + "".join(f"{c}\n" for c in cells) + "</div>\n")
