from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext, ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from instances.launch_retry import AlreadyRetried
from instances.participants import MAX_COUNT, participants_from
from portal.access import get_project_for_user, projects_visible_to
from portal.errors import ActionRefused
from portal.http import param_id, param_ids
from portal.jobs import job_repeated
from portal.sites import site_shelve_refusal
from workshops.access_links import access_template_problem, allowed_hosts
from workshops.handout import login_user_of, qr_svg
from workshops.services import (
    MAX_INSTRUCTIONS,
    seat_rows,
    workshop_access_url_set,
    workshop_add,
    workshop_csv,
    workshop_get_for_user,
    workshop_instructions_set,
    workshop_list,
    workshop_may_act,
    workshop_park,
    workshop_retry,
    workshop_retry_plan,
    workshop_teardown,
)

# Seats one retry may name: a workshop's launch and its late additions.
MAX_SEATS = 1000


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


def _retry_offer(request, workshop):
    """The failed seats a retry would launch again now (None: the user may not)."""
    try:
        return workshop_retry_plan(workshop=workshop, actor=request.user)
    except ActionRefused:
        return None


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
        "access_problem": workshop.access_url_template
        and access_template_problem(workshop.access_url_template),
        "access_hosts": allowed_hosts(),
        "max_instructions": MAX_INSTRUCTIONS,
        "shelve_refusal": site_shelve_refusal(workshop.site.name),
    }


@login_required
@require_GET
def workshop_detail(request, workshop_id: int):
    workshop = workshop_get_for_user(request.user, workshop_id)
    context = _detail_context(request, workshop)
    if request.htmx and not request.htmx.boosted:
        return render(request, "workshops/_seat_table.html", context)
    context["retry"] = _retry_offer(request, workshop)
    return render(request, "workshops/workshop_detail.html", context)


@login_required
@require_GET
def workshop_download(request, workshop_id: int):
    """The participant list as CSV: participant, email, machine, status, IP, access link.
    Only for whoever runs the workshop: the other members of the project see names
    and machines on the page, never the participants' emails."""
    workshop = workshop_get_for_user(request.user, workshop_id)
    if not workshop_may_act(request.user, workshop):
        raise PermissionDenied
    response = HttpResponse(workshop_csv(workshop), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="workshop-{workshop.pk}.csv"'
    return response


@login_required
@require_GET
def workshop_handout(request, workshop_id: int):
    """One block per participant, to print and hand out."""
    workshop = workshop_get_for_user(request.user, workshop_id)
    context = _detail_context(request, workshop)
    # A seat has an access link only once the organiser confirmed one (seat_rows).
    context["blocks"] = [
        (row, qr_svg(row.access_url) if row.access_url else "") for row in context["rows"]
    ]
    context["login_user"] = login_user_of(workshop.image.properties if workshop.image else {})
    return render(request, "workshops/handout.html", context)


def _act(request, workshop_id: int, action, done: str, *, refused_context=None):
    workshop = workshop_get_for_user(request.user, workshop_id)
    key = request.POST.get("idempotency_key", "")
    if job_repeated(actor=request.user, key=key) is None:
        try:
            action(workshop, key)
        except ActionRefused as refused:
            messages.error(request, refused.message)
            context = _detail_context(request, workshop)
            context["retry"] = _retry_offer(request, workshop)
            context.update(refused_context or {})
            return render(request, "workshops/workshop_detail.html", context, status=refused.status)
        messages.success(request, done)
    return redirect("workshops:workshop-detail", workshop_id=workshop.pk)


@login_required
@require_http_methods(["GET", "POST"])
def workshop_retry_view(request, workshop_id: int):
    """GET: what a retry replaces, launches and leaves alone (and why), from the
    machines as they are now. POST: retry the seats that page showed that are
    still ERROR or without a machine; seats launched again meanwhile send the user
    to that job."""
    workshop = workshop_get_for_user(request.user, workshop_id)
    status = 200
    if request.method == "POST":
        key = request.POST.get("idempotency_key", "")
        if job_repeated(actor=request.user, key=key) is not None:
            return redirect("workshops:workshop-detail", workshop_id=workshop.pk)
        seat_ids = param_ids(request.POST, "seat", limit=MAX_SEATS)
        upto = param_id(request.POST, "upto")
        if not seat_ids or upto is None:
            raise BadRequest(gettext("Choose the seats to retry on the confirmation page."))
        try:
            jobs = workshop_retry(
                workshop=workshop, actor=request.user, seat_ids=seat_ids, upto=upto,
                idempotency_key=key,
            )  # fmt: skip
        except AlreadyRetried as refused:
            messages.error(request, refused.message)
            return redirect("job-detail", job_id=refused.job.pk)
        except ActionRefused as refused:
            messages.error(request, refused.message)
            status = refused.status
        else:
            count = sum(len(job.params["names"]) for job in jobs)
            numbers = ", ".join(f"#{job.pk}" for job in jobs)
            messages.success(
                request,
                ngettext(
                    "Launching %(count)s seat again: job %(jobs)s.",
                    "Launching %(count)s seats again: job %(jobs)s.",
                    count,
                )
                % {"count": count, "jobs": numbers},
            )
            return redirect("workshops:workshop-detail", workshop_id=workshop.pk)
    try:
        plan = workshop_retry_plan(workshop=workshop, actor=request.user)
    except ActionRefused as refused:
        if status == 200:  # a refused POST said so already
            messages.error(request, refused.message)
            status = refused.status
        plan = None
    context = {"workshop": workshop, "plan": plan}
    return render(request, "workshops/retry_confirm.html", context, status=status)


@login_required
@require_POST
def workshop_add_view(request, workshop_id: int):
    participants = participants_from(request.POST.get("participants", ""))
    if not participants:
        messages.error(request, gettext("Enter at least one participant, one per line."))
        return redirect("workshops:workshop-detail", workshop_id=workshop_id)
    return _act(
        request, workshop_id,
        lambda w, key: workshop_add(
            workshop=w, actor=request.user, participants=participants, idempotency_key=key
        ),
        ngettext("Adding %(count)s participant.", "Adding %(count)s participants.", len(participants))
        % {"count": len(participants)},
    )  # fmt: skip


@login_required
@require_POST
def workshop_teardown_view(request, workshop_id: int):
    return _act(
        request, workshop_id,
        lambda w, key: workshop_teardown(workshop=w, actor=request.user, idempotency_key=key),
        gettext("Tearing the workshop down: every machine is being deleted."),
    )  # fmt: skip


@login_required
@require_POST
def workshop_instructions_view(request, workshop_id: int):
    """Save the organiser's instructions for the handout (empty: none)."""
    text = request.POST.get("instructions", "")
    return _act(
        request, workshop_id,
        lambda w, key: workshop_instructions_set(workshop=w, actor=request.user, text=text),
        gettext("Instructions saved: the handout shows them to every participant."),
        refused_context={"instructions_input": text[: MAX_INSTRUCTIONS + 100]},
    )  # fmt: skip


@login_required
@require_POST
def workshop_access_view(request, workshop_id: int):
    """Confirm, change or remove the participants' access link (empty: none)."""
    template = request.POST.get("access_url", "")
    if template.strip():
        done = gettext("Access link confirmed: participants see it on the page, handout and CSV.")
    else:
        done = gettext("Access link removed: participants get the IP address of their machine.")
    return _act(
        request, workshop_id,
        lambda w, key: workshop_access_url_set(workshop=w, actor=request.user, template=template),
        done, refused_context={"access_url_input": template},
    )  # fmt: skip


@login_required
@require_POST
def workshop_park_view(request, workshop_id: int):
    """Park every seat's machine (one job each), e.g. until tomorrow's session."""
    return _act(
        request, workshop_id,
        lambda w, key: workshop_park(workshop=w, actor=request.user, action="park",
                                     idempotency_key=key),
        gettext("Parking every seat's machine: one job each."),
    )  # fmt: skip


@login_required
@require_POST
def workshop_resume_view(request, workshop_id: int):
    return _act(
        request, workshop_id,
        lambda w, key: workshop_park(workshop=w, actor=request.user, action="resume",
                                     idempotency_key=key),
        gettext("Resuming every parked seat's machine: one job each."),
    )  # fmt: skip
