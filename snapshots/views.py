from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext, gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from instances.selectors import server_get_for_user, servers_chosen, source_servers_for
from portal.access import get_project_for_user
from portal.bulk.views import Chosen, DeletePage, bulk_delete_view, list_filters
from portal.errors import ActionRefused
from portal.form_rendering import site_choices
from portal.http import next_url, param_id, param_ids, redirect_back
from portal.jobs import job_repeated
from portal.selectors import job_get_for_user
from portal.tables import PAGE_SIZES, page_records, page_size_from, table_configure
from snapshots.forms import SnapshotCreateForm
from snapshots.rules import SNAPSHOT_MAX_RAM_MIB
from snapshots.selectors import (
    boot_tests_for,
    snapshot_get_for_user,
    snapshot_jobs_for,
    snapshots_shown,
)
from snapshots.services import (
    NAME_PATTERN_DEFAULT,
    SNAPSHOT_DELETE,
    SNAPSHOT_MANY_MAX,
    snapshot_allowed_check,
    snapshot_create_check,
    snapshot_create_many_plan,
    snapshot_create_many_request,
    snapshot_create_request,
    snapshot_default_name,
    snapshot_verify_request,
    snapshots_being_deleted,
)
from snapshots.tables import SnapshotRows, SnapshotTable

# Ticked one by one, at most this many per request; more is "select all matching".
MAX_SELECTED = 500


def _shown(user, data, project):
    """The rows a snapshot list shows for these filters: the one definition the
    table, its count, "select all matching" and the delete confirmation all use."""
    return snapshots_shown(user=user, data=data, project=project)


def _list_url(project, query: str = "") -> str:
    if project is not None:
        url = reverse("snapshots:snapshot-project-list", kwargs={"project_id": project.pk})
    else:
        url = reverse("snapshots:snapshot-list")
    return f"{url}?{query}" if query else url


def _table_context(request, *, project=None) -> dict:
    snapshots, filterset, rows = _shown(request.user, request.GET, project)
    # The filter's sites, read once for the form and the unreachable-sites notice.
    site_choices(request, filterset.form.fields["site"])
    per_page = page_size_from(request, remember="snapshots")
    table = SnapshotTable(rows, project=project)
    table_configure(request, table, per_page=per_page)
    page_rows = page_records(table)
    table.source_servers = source_servers_for(page_rows)
    table.jobs = snapshot_jobs_for(page_rows)
    table.deleting = snapshots_being_deleted(page_rows)
    table.boot_tests = boot_tests_for(page_rows)
    job = None
    job_id = param_id(request.GET, "job")
    if job_id is not None:
        try:
            job = job_get_for_user(request.user, job_id)
        except Http404:  # a stale or foreign id in a bookmark: no banner
            job = None
    return {
        "table": table,
        "rows_html": SnapshotRows(table, request).html(),
        "filter": filterset,
        "per_page": per_page,
        "page_sizes": PAGE_SIZES,
        "table_id": "snapshot-table",
        "remember_page_size": "snapshots",
        "project": project,
        "job": job,
        # Rows on the page answer it; only an empty page asks the database.
        "has_any": bool(page_rows) or snapshots.exists(),
        "busy": bool(table.jobs or table.deleting),
        "filter_query": request.GET.urlencode(),
    }


@login_required
@require_GET
def snapshot_list(request, project_id: int | None = None):
    project = get_project_for_user(request.user, project_id) if project_id else None
    context = _table_context(request, project=project)
    if request.htmx and not request.htmx.boosted:
        return render(request, "snapshots/_snapshot_table.html", context)
    return render(request, "snapshots/snapshot_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def snapshot_create(request, server_id: int):
    server = server_get_for_user(request.user, server_id)
    refusal = None
    target = reverse("instances:instance-detail", kwargs={"server_id": server.pk})
    key = request.POST.get("idempotency_key", "")
    if request.method == "POST" and job_repeated(actor=request.user, key=key) is not None:
        # A second click on the same form: the first request started the job.
        if request.htmx:
            return HttpResponse(status=204, headers={"HX-Redirect": target})
        return redirect(target)
    if request.method == "POST":
        form = SnapshotCreateForm(request.POST)
        if form.is_valid():
            try:
                job = snapshot_create_request(
                    server=server,
                    actor=request.user,
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                    restart=form.cleaned_data["restart"],
                    verify=form.cleaned_data["verify"],
                    idempotency_key=key,
                )
            except ActionRefused as refused:
                refusal = refused
            else:
                messages.success(
                    request,
                    gettext("Snapshot “%(name)s” of %(server)s: job #%(job)s started.")
                    % {"name": job.params["name"], "server": server.name, "job": job.pk},
                )
                if request.htmx:
                    return HttpResponse(status=204, headers={"HX-Redirect": target})
                return redirect(target)
    else:
        form = SnapshotCreateForm(
            initial={
                "restart": server.status == "ACTIVE",
                "verify": True,
                "name": snapshot_default_name(server),
            }
        )
        # Refuse up front what can never succeed (e.g. a flavor over 256 GiB).
        try:
            snapshot_allowed_check(server=server, actor=request.user)
        except ActionRefused as refused:
            refusal = refused
    context = {
        "server": server,
        "form": form,
        "refusal": refusal,
        "limit_mib": SNAPSHOT_MAX_RAM_MIB,
        "will_stop": server.status == "ACTIVE",
    }
    status = 400 if form.is_bound else 200
    if refusal is not None:
        status = refusal.status
    if request.htmx and request.htmx.target == "snapshot-modal-body":
        template = "snapshots/_create_form.html"  # a re-submitted dialog: its body only
    elif request.htmx:
        template = "snapshots/_create_modal.html"
    else:
        template = "snapshots/snapshot_create.html"
    return render(request, template, context, status=status)


@login_required
@require_GET
def snapshot_name_check(request, server_id: int):
    """Live check while typing: the same rules the submit applies."""
    server = server_get_for_user(request.user, server_id)
    try:
        name = snapshot_create_check(
            server=server, actor=request.user, name=request.GET.get("name", "")
        )
    except ActionRefused as refused:
        return render(
            request, "snapshots/_name_check.html", {"ok": False, "message": refused.message}
        )
    return render(
        request,
        "snapshots/_name_check.html",
        {"ok": True, "message": gettext("“%(name)s” is available.") % {"name": name}},
    )


# The list's bulk delete (portal.bulk.views): back to the list, whose banner follows the job.
DELETE_PAGE = DeletePage(
    spec=SNAPSHOT_DELETE,
    consequence=gettext_lazy("Deleting from the cloud cannot be undone."),
    nothing_ticked=gettext_lazy("Nothing deleted: skipped {count}: {reasons}."),
    nothing_matching=gettext_lazy("Nothing deleted: every matching snapshot is skipped."),
)


def _chosen_snapshots(request, data) -> Chosen:
    """The rows a bulk action names: explicit ids, or every one matching the filter
    (a queryset, never read whole), always within the page it came from (one
    project's, or all the user's): what the page showed is what is deleted."""
    project_id = param_id(data, "project")
    project = get_project_for_user(request.user, project_id) if project_id else None
    listed, _, shown = _shown(request.user, data, project)
    filters = list_filters(data, scope=("project",))
    chosen: dict[str, Any] = {
        "filters": filters,
        "back": _list_url(project, urlencode(filters)),
        "job_url": lambda job: _list_url(project, f"job={job.pk}"),
        "project": project,
    }
    if data.get("all_matching") == "1":
        return Chosen(
            rows=shown, all_matching=True, **chosen,
            ordered=_in_list_order(shown, project, data),
            walk=_in_list_order(listed, project, data),
        )  # fmt: skip
    ids = param_ids(data, "selected", limit=MAX_SELECTED)
    return Chosen(rows=list(shown.filter(pk__in=ids)), all_matching=False, **chosen)


def _in_list_order(rows, project, data):
    """`rows` in the order the list showed them (its `sort`, else newest first)."""
    table = SnapshotTable(rows, project=project)
    sort = data.get("sort", "")
    if sort and sort.lstrip("-") in {c.name for c in table.columns if c.orderable}:
        table.order_by = sort
    return table.data.data


@login_required
@require_http_methods(["GET", "POST"])
def snapshot_delete(request):
    """Confirm, then delete the ticked snapshots or all the list's filter matches."""
    data = request.POST if request.method == "POST" else request.GET
    return bulk_delete_view(request, DELETE_PAGE, _chosen_snapshots(request, data))


@login_required
@require_POST
def snapshot_verify(request, snapshot_id: int):
    """ "Verify now": a job boots a throwaway instance from the snapshot."""
    snapshot = snapshot_get_for_user(request.user, snapshot_id)
    key = request.POST.get("idempotency_key", "")
    job = job_repeated(actor=request.user, key=key)
    if job is None:
        try:
            job = snapshot_verify_request(
                snapshot=snapshot, actor=request.user, idempotency_key=key
            )
        except ActionRefused as refused:
            messages.error(request, refused.message)
            return redirect_back(request, "snapshots:snapshot-list")
    messages.success(
        request,
        gettext("Testing that %(snapshot)s boots: job #%(job)s.")
        % {"snapshot": snapshot.name, "job": job.pk},
    )
    return redirect("job-detail", job_id=job.pk)


@login_required
@require_http_methods(["GET", "POST"])
def snapshot_create_many(request):
    """ "Snapshot selected" on the instance overview: GET shows each chosen instance's
    snapshot name (from one name pattern) or why it is skipped; POST records one
    job per instance, all at once. Ticked rows, or all matching up to
    SNAPSHOT_MANY_MAX."""
    data = request.POST if request.method == "POST" else request.GET
    back = next_url(request) or reverse("instances:instance-list")
    key = data.get("idempotency_key", "")
    if request.method == "POST" and job_repeated(actor=request.user, key=key) is not None:
        # A second click: the first one started the jobs.
        return redirect_back(request, "instances:instance-list")
    chosen, all_matching = servers_chosen(user=request.user, data=data, limit=SNAPSHOT_MANY_MAX)
    if all_matching:
        chosen = list(chosen[: SNAPSHOT_MANY_MAX + 1])
    first_view = "pattern" not in data
    skip = {"csrfmiddlewaretoken", "idempotency_key", "pattern", "restart"}
    context = {
        "back": back,
        "carried": [(k, v) for k, values in data.lists() if k not in skip for v in values],
        "pattern": data.get("pattern", NAME_PATTERN_DEFAULT),
        "restart": first_view or data.get("restart") == "1",
        "plan": None,
    }
    template = "snapshots/create_many.html"
    if not chosen:
        messages.error(request, gettext("Select at least one instance to snapshot."))
        return render(request, template, context, status=400)
    if len(chosen) > SNAPSHOT_MANY_MAX:
        messages.error(
            request,
            gettext(
                "More than %(max)s instances match; snapshot at most %(max)s at once "
                "(narrow the filter)."
            )
            % {"max": SNAPSHOT_MANY_MAX},
        )
        return render(request, template, context, status=400)
    try:
        if request.method == "GET":
            context["plan"] = snapshot_create_many_plan(
                servers=chosen, actor=request.user, pattern=context["pattern"]
            )
            return render(request, template, context)
        jobs, context["plan"] = snapshot_create_many_request(
            servers=chosen, actor=request.user, pattern=context["pattern"],
            restart=context["restart"], idempotency_key=key,
        )  # fmt: skip
    except ActionRefused as refused:
        messages.error(request, refused.message)
        return render(request, template, context, status=refused.status)
    if not jobs:
        messages.error(request, gettext("Nothing to snapshot: every chosen instance is skipped."))
        return render(request, template, context, status=409)
    first, last = jobs[0].pk, jobs[-1].pk
    numbers = (
        gettext("job #%(job)s") % {"job": first}
        if first == last
        else gettext("jobs #%(first)s–#%(last)s") % {"first": first, "last": last}
    )
    messages.success(
        request,
        ngettext(
            "Snapshotting %(count)s instance: %(jobs)s. Its row shows the progress; "
            "a snapshot that fails is emailed to you.",
            "Snapshotting %(count)s instances: %(jobs)s. Each row shows its progress; "
            "a snapshot that fails is emailed to you.",
            len(jobs),
        )
        % {"count": len(jobs), "jobs": numbers},
    )
    return redirect_back(request, "instances:instance-list")
