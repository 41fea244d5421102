from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from instances.launch import MAX_COUNT, participants_from
from portal.access import get_project_for_user, projects_visible_to
from portal.errors import ActionRefused
from portal.http import param_id
from portal.jobs import job_repeated
from workshops.services import (
    seat_rows,
    workshop_add,
    workshop_csv,
    workshop_get_for_user,
    workshop_list,
    workshop_may_act,
    workshop_retry,
    workshop_teardown,
)


@login_required
@require_GET
def workshop_index(request):
    """The workshops of the user's projects, or of one (`?project=`)."""
    project_id = param_id(request.GET, "project")
    project = get_project_for_user(request.user, project_id) if project_id else None
    workshops = workshop_list(user=request.user)
    if project is not None:
        workshops = workshops.filter(project=project)
    context = {
        "workshops": workshops,
        "project": project,
        "projects": projects_visible_to(request.user).select_related("site"),
    }
    return render(request, "workshops/workshop_list.html", context)


def _detail_context(request, workshop) -> dict:
    rows = seat_rows(workshop)
    return {
        "workshop": workshop,
        "rows": rows,
        "failed": [row for row in rows if row.failed],
        "may_act": workshop_may_act(request.user, workshop),
        "busy": any(row.status in ("BUILD", "launching") for row in rows)
        or (workshop.teardown_job is not None and not workshop.teardown_job.is_finished),
        "max_count": MAX_COUNT,
    }


@login_required
@require_GET
def workshop_detail(request, workshop_id: int):
    workshop = workshop_get_for_user(request.user, workshop_id)
    context = _detail_context(request, workshop)
    if request.htmx and not request.htmx.boosted:
        return render(request, "workshops/_seat_table.html", context)
    return render(request, "workshops/workshop_detail.html", context)


@login_required
@require_GET
def workshop_download(request, workshop_id: int):
    """The participant list as CSV: participant, email, machine, status, IP, access link."""
    workshop = workshop_get_for_user(request.user, workshop_id)
    response = HttpResponse(workshop_csv(workshop), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="workshop-{workshop.pk}.csv"'
    return response


@login_required
@require_GET
def workshop_handout(request, workshop_id: int):
    """One block per participant, to print and hand out."""
    workshop = workshop_get_for_user(request.user, workshop_id)
    return render(request, "workshops/handout.html", _detail_context(request, workshop))


def _act(request, workshop_id: int, action, done: str):
    workshop = workshop_get_for_user(request.user, workshop_id)
    key = request.POST.get("idempotency_key", "")
    if job_repeated(actor=request.user, key=key) is None:
        try:
            action(workshop, key)
        except ActionRefused as refused:
            messages.error(request, refused.message)
            context = _detail_context(request, workshop)
            return render(request, "workshops/workshop_detail.html", context, status=refused.status)
        messages.success(request, done)
    return redirect("workshops:workshop-detail", workshop_id=workshop.pk)


@login_required
@require_POST
def workshop_retry_view(request, workshop_id: int):
    return _act(
        request, workshop_id,
        lambda w, key: workshop_retry(workshop=w, actor=request.user, idempotency_key=key),
        "Launching the failed seats again.",
    )  # fmt: skip


@login_required
@require_POST
def workshop_add_view(request, workshop_id: int):
    participants = participants_from(request.POST.get("participants", ""))
    if not participants:
        messages.error(request, "Enter at least one participant, one per line.")
        return redirect("workshops:workshop-detail", workshop_id=workshop_id)
    return _act(
        request, workshop_id,
        lambda w, key: workshop_add(
            workshop=w, actor=request.user, participants=participants, idempotency_key=key
        ),
        f"Adding {len(participants)} participant(s).",
    )  # fmt: skip


@login_required
@require_POST
def workshop_teardown_view(request, workshop_id: int):
    return _act(
        request, workshop_id,
        lambda w, key: workshop_teardown(workshop=w, actor=request.user, idempotency_key=key),
        "Tearing the workshop down: every machine is being deleted.",
    )  # fmt: skip
