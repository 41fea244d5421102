from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext, gettext_lazy, ngettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from instances.launch_retry import (
    AlreadyRetried,
    launch_failed_delete_request,
    launch_retry_plan,
    launch_retry_request,
)
from instances.participants import MAX_COUNT
from instances.selectors import (
    image_names_for,
    server_detail_context,
    server_get_for_user,
    server_list,
    servers_chosen,
    servers_shown,
)
from instances.services import SERVER_DELETE, server_power_request
from instances.tables import ServerRows, ServerTable
from portal.access import projects_visible_list, projects_visible_to
from portal.bulk.views import Chosen, DeletePage, bulk_delete_view, list_filters
from portal.errors import ActionRefused
from portal.form_rendering import site_choices
from portal.http import next_url, param_int, redirect_back
from portal.jobs import busy_pks, job_repeated
from portal.selectors import job_get_for_user
from portal.tables import PAGE_SIZES, page_records, page_size_from, table_configure
from portal.texts import render as render_text

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

# Instances one may tick for a delete; more is "select all matching" (any number,
# one job, in batches of ten).
MAX_DELETE = 500

# Seconds before a transitional row asks again: grows with each poll, capped.
ROW_POLL_DELAYS = (2, 3, 5, 8, 13, 20, 30)


@login_required
@require_GET
def instance_list(request):
    # The user's projects (with their roles, for the rows' actions), read once.
    filterset, rows = servers_shown(
        user=request.user,
        data=request.GET,
        projects=projects_visible_to(request.user),
        visible=projects_visible_list(request.user),
    )
    per_page = page_size_from(request)
    table = ServerTable(rows, user=request.user, next_url=request.get_full_path())
    table_configure(request, table, per_page=per_page)
    page_rows = page_records(table)
    table.image_names = image_names_for(page_rows)
    table.busy_ids = busy_pks(page_rows, target="server")
    context = {
        "table": table,
        "rows_html": ServerRows(table, request).html(),
        "filter": filterset,
        "per_page": per_page,
        "page_sizes": PAGE_SIZES,
        "table_id": "instance-table",
    }
    if request.htmx and not request.htmx.boosted:
        return render(request, "instances/_instance_table.html", context)
    # Every site's sync time: the sites the filter offers, read once for both.
    context["sites"] = site_choices(request, filterset.form.fields["site"])
    return render(request, "instances/instance_list.html", context)


@login_required
@require_GET
def instance_row(request, server_id: int):
    """One row of the overview, for a row in transition that refreshes itself."""
    server = server_get_for_user(request.user, server_id)
    table = ServerTable([server], user=request.user, next_url=_overview_url(request))
    table.image_names = image_names_for([server])
    table.busy_ids = busy_pks([server], target="server")
    poll = param_int(
        request.GET, "poll", default=0, low=0, high=len(ROW_POLL_DELAYS) - 1, clamp=True
    )
    rows = ServerRows(table, request, poll=poll + 1, delay=ROW_POLL_DELAYS[poll])
    return HttpResponse(rows.row(table.row_values(server)))


@login_required
@require_GET
def instance_detail(request, server_id: int):
    server = server_get_for_user(request.user, server_id)
    context = server_detail_context(request.user, server)
    if request.htmx and request.GET.get("part") == "live":
        return render(request, "instances/_instance_live.html", context)
    return render(request, "instances/instance_detail.html", context)


def _overview_url(request) -> str:
    """Where a row's forms go back to: the overview the row is on (htmx says which
    page it polls from), else the plain overview."""
    current = request.headers.get("HX-Current-URL", "")
    if current and url_has_allowed_host_and_scheme(
        current, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        parts = urlsplit(current)
        return f"{parts.path}?{parts.query}" if parts.query else parts.path
    return reverse("instances:instance-list")


def _run_action(request, server_id: int, action: str):
    server = server_get_for_user(request.user, server_id)
    key = request.POST.get("idempotency_key", "")
    if job_repeated(actor=request.user, key=key) is not None:
        return redirect_back(request, "instances:instance-detail", server_id=server.pk)
    try:
        job = server_power_request(
            server=server, actor=request.user, action=action, idempotency_key=key
        )
    except ActionRefused as refused:
        messages.error(request, refused.message)
        context = server_detail_context(request.user, server)
        return render(request, "instances/instance_detail.html", context, status=refused.status)
    messages.success(
        request,
        gettext("%(step)s %(server)s: job #%(job)s started.")
        % {"step": render_text(job.steps[0]["label"]), "server": server.name, "job": job.pk},
    )
    return redirect_back(request, "instances:instance-detail", server_id=server.pk)


@login_required
@require_POST
def instance_stop(request, server_id: int):
    return _run_action(request, server_id, "stop")


@login_required
@require_POST
def instance_start(request, server_id: int):
    return _run_action(request, server_id, "start")


def _launch_followup(request, job_id: int, start, template: str, done: "StrOrPromise"):
    """GET: what the follow-up of a finished launch does, seat by seat, from the
    machines as they are now. POST: start it for the seats that page showed
    (`seat`: their names) that are still failed now; a seat that recovered in
    between is left alone, and seats launched again already send the user to that
    job."""
    job = job_get_for_user(request.user, job_id)
    status = 200
    if request.method == "POST":
        key = request.POST.get("idempotency_key", "")
        repeated = job_repeated(actor=request.user, key=key)
        if repeated is not None:
            return redirect("job-detail", job_id=repeated.pk)
        names = request.POST.getlist("seat")
        if len(names) > MAX_COUNT:
            raise BadRequest(gettext("At most %(max)s seats at once.") % {"max": MAX_COUNT})
        try:
            followup = start(job=job, actor=request.user, names=names, idempotency_key=key)
        except AlreadyRetried as refused:
            messages.error(request, refused.message)
            return redirect("job-detail", job_id=refused.job.pk)
        except ActionRefused as refused:
            messages.error(request, refused.message)
            status = refused.status
        else:
            messages.success(
                request, gettext("%(done)s: job #%(job)s.") % {"done": done, "job": followup.pk}
            )
            return redirect("job-detail", job_id=followup.pk)
    try:
        plan = launch_retry_plan(job=job, actor=request.user)
    except ActionRefused as refused:
        if status == 200:  # a refused POST said so already
            messages.error(request, refused.message)
            status = refused.status
        plan = None
    return render(request, template, {"job": job, "plan": plan}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def launch_retry(request, job_id: int):
    """Launch again the failed seats of a finished launch that are still ERROR or
    without a machine: replace the ERROR machines, launch the missing ones."""
    return _launch_followup(
        request, job_id, launch_retry_request, "instances/launch_retry_confirm.html",
        gettext_lazy("Launching the failed seats again"),
    )  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def launch_failed_delete(request, job_id: int):
    """Delete the ERROR machines a finished launch's failed seats hold."""
    return _launch_followup(
        request, job_id, launch_failed_delete_request,
        "instances/launch_failed_delete_confirm.html", gettext_lazy("Deleting the failed machines"),
    )  # fmt: skip


# The overview's bulk delete (portal.bulk.views): the job page follows the job.
DELETE_PAGE = DeletePage(
    spec=SERVER_DELETE,
    consequence=gettext_lazy("Disks are deleted too; this cannot be undone. Snapshots stay."),
    nothing_ticked=gettext_lazy("Nothing to delete: every chosen instance is skipped."),
    nothing_matching=gettext_lazy("Nothing to delete: every matching instance is skipped."),
    started_ticked=ngettext_lazy(
        "Deleting %(count)s instance: job #%(job)s.",
        "Deleting %(count)s instances: job #%(job)s.",
        "count",
    ),
    started_matching=gettext_lazy("Deleting the matching instances: job #{job}."),
)


@login_required
@require_http_methods(["GET", "POST"])
def instance_delete(request):
    """Confirm, then delete the ticked instances or all the overview's filter matches."""
    data = request.POST if request.method == "POST" else request.GET
    rows, all_matching = servers_chosen(user=request.user, data=data, limit=MAX_DELETE)
    chosen = Chosen(
        rows=rows,
        all_matching=all_matching,
        filters=list_filters(data),
        back=next_url(request) or reverse("instances:instance-list"),
        job_url=lambda job: reverse("job-detail", kwargs={"job_id": job.pk}),
        walk=server_list(user=request.user),
    )
    return bulk_delete_view(request, DELETE_PAGE, chosen)
