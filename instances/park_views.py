"""Park and resume one instance (instances.park): a POST starts the job; resume
asks for a flavor first when the machine's own is gone."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from instances.models import Flavor
from instances.park import (
    resume_flavor_choices,
    resume_flavor_problem,
    server_park_request,
    server_resume_request,
)
from instances.selectors import server_detail_context, server_get_for_user
from portal.errors import ActionRefused
from portal.http import param_int, redirect_back
from portal.jobs import job_repeated


def _refused(request, server, refused: ActionRefused):
    messages.error(request, refused.message)
    context = server_detail_context(request.user, server)
    return render(request, "instances/instance_detail.html", context, status=refused.status)


@login_required
@require_POST
def instance_park(request, server_id: int):
    server = server_get_for_user(request.user, server_id)
    key = request.POST.get("idempotency_key", "")
    if job_repeated(actor=request.user, key=key) is not None:
        return redirect_back(request, "instances:instance-detail", server_id=server.pk)
    try:
        job = server_park_request(server=server, actor=request.user, idempotency_key=key)
    except ActionRefused as refused:
        return _refused(request, server, refused)
    messages.success(request, f"Parking {server.name}: job #{job.pk} started.")
    return redirect_back(request, "instances:instance-detail", server_id=server.pk)


def _resume_form(request, server, *, status: int = 200):
    context = {
        "server": server,
        "problem": resume_flavor_problem(server),
        "flavors": resume_flavor_choices(server),
        "next": request.POST.get("next") or request.GET.get("next") or "",
    }
    return render(request, "instances/instance_resume.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def instance_resume(request, server_id: int):
    """GET: the resume form (the flavor choice). POST: resume, on its own flavor
    (no `flavor`) or on the chosen one (a new server: its IP changes)."""
    server = server_get_for_user(request.user, server_id)
    if request.method == "GET":
        return _resume_form(request, server)
    key = request.POST.get("idempotency_key", "")
    if job_repeated(actor=request.user, key=key) is not None:
        return redirect_back(request, "instances:instance-detail", server_id=server.pk)
    flavor = None
    if request.POST.get("flavor"):
        flavor_pk = param_int(request.POST, "flavor", default=0, low=0, high=2**31, clamp=False)
        flavor = Flavor.objects.filter(pk=flavor_pk).first()
        if flavor is None:
            messages.error(request, "Choose a flavor from the list.")
            return _resume_form(request, server, status=400)
    try:
        job = server_resume_request(
            server=server, actor=request.user, flavor=flavor, idempotency_key=key
        )
    except ActionRefused as refused:
        messages.error(request, refused.message)
        return _resume_form(request, server, status=refused.status)
    messages.success(request, f"Resuming {server.name}: job #{job.pk} started.")
    return redirect_back(request, "instances:instance-detail", server_id=server.pk)
