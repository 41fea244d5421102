from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from instances.filters import ServerFilterSet
from instances.launch import launch_failed_delete_request, launch_retry_request
from instances.selectors import (
    image_names_for,
    server_detail_context,
    server_get_for_user,
    server_list,
)
from instances.services import server_power_request
from instances.tables import ServerTable
from portal.access import projects_visible_to
from portal.errors import ActionRefused
from portal.http import param_int, redirect_back
from portal.jobs import busy_pks
from portal.models import Site
from portal.selectors import job_get_for_user
from portal.tables import PAGE_SIZES, page_records, page_size_from, table_configure

# Seconds before a transitional row asks again: grows with each poll, capped.
ROW_POLL_DELAYS = (2, 3, 5, 8, 13, 20, 30)


@login_required
@require_GET
def instance_list(request):
    servers = server_list(user=request.user)
    filterset = ServerFilterSet(
        request.GET, queryset=servers, projects=projects_visible_to(request.user)
    )
    rows = filterset.qs if filterset.is_valid() else servers.none()
    per_page = page_size_from(request)
    table = ServerTable(rows, user=request.user)
    table_configure(request, table, per_page=per_page)
    page_rows = page_records(table)
    table.image_names = image_names_for(page_rows)
    table.busy_ids = busy_pks(page_rows, target="server")
    context = {
        "table": table,
        "filter": filterset,
        "per_page": per_page,
        "page_sizes": PAGE_SIZES,
        "table_id": "instance-table",
        "sites": Site.objects.all(),
    }
    if request.htmx and not request.htmx.boosted:
        return render(request, "instances/_instance_table.html", context)
    return render(request, "instances/instance_list.html", context)


@login_required
@require_GET
def instance_row(request, server_id: int):
    """One row of the overview, for a row in transition that refreshes itself."""
    server = server_get_for_user(request.user, server_id)
    table = ServerTable([server], user=request.user)
    table.image_names = image_names_for([server])
    table.busy_ids = busy_pks([server], target="server")
    poll = param_int(
        request.GET, "poll", default=0, low=0, high=len(ROW_POLL_DELAYS) - 1, clamp=True
    )
    context = {"row": next(iter(table.rows)), "table": table, "poll": poll + 1,
               "delay": ROW_POLL_DELAYS[poll]}  # fmt: skip
    return render(request, "instances/_instance_row.html", context)


@login_required
@require_GET
def instance_detail(request, server_id: int):
    server = server_get_for_user(request.user, server_id)
    context = server_detail_context(request.user, server)
    if request.htmx and request.GET.get("part") == "live":
        return render(request, "instances/_instance_live.html", context)
    return render(request, "instances/instance_detail.html", context)


def _run_action(request, server_id: int, action: str):
    server = server_get_for_user(request.user, server_id)
    try:
        job = server_power_request(server=server, actor=request.user, action=action)
    except ActionRefused as refused:
        messages.error(request, refused.message)
        context = server_detail_context(request.user, server)
        return render(request, "instances/instance_detail.html", context, status=refused.status)
    messages.success(request, f"{job.steps[0]['label']} {server.name}: job #{job.pk} started.")
    return redirect_back(request, "instances:instance-detail", server_id=server.pk)


@login_required
@require_POST
def instance_stop(request, server_id: int):
    return _run_action(request, server_id, "stop")


@login_required
@require_POST
def instance_start(request, server_id: int):
    return _run_action(request, server_id, "start")


def _launch_followup(request, job_id: int, start, done: str):
    job = job_get_for_user(request.user, job_id)
    try:
        followup = start(job=job, actor=request.user)
    except ActionRefused as refused:
        messages.error(request, refused.message)
        return render(request, "portal/job_detail.html", {"job": job}, status=refused.status)
    messages.success(request, f"{done}: job #{followup.pk}.")
    return redirect("job-detail", job_id=followup.pk)


@login_required
@require_POST
def launch_retry(request, job_id: int):
    """Launch the failed seats of a finished launch again."""
    return _launch_followup(request, job_id, launch_retry_request, "Retrying the failed seats")


@login_required
@require_POST
def launch_failed_delete(request, job_id: int):
    """Delete the machines a finished launch's failed seats still hold."""
    return _launch_followup(
        request, job_id, launch_failed_delete_request, "Deleting the failed machines"
    )
