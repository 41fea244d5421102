"""Park and resume one instance (instances.park): a POST starts the job; resume
asks for a flavor first when the machine's own is gone."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext, ngettext
from django.views.decorators.http import require_http_methods, require_POST

from instances.models import Flavor
from instances.park import (
    PARK_MANY_MAX,
    park_many_plan,
    park_many_request,
    resume_flavor_choices,
    resume_flavor_problem,
    server_park_request,
    server_resume_request,
)
from instances.selectors import server_detail_context, server_get_for_user, servers_chosen
from portal.errors import ActionRefused
from portal.http import next_url, param_int, redirect_back
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
        job = server_park_request(
            server=server, actor=request.user, verify=request.POST.get("verify") == "1",
            idempotency_key=key,
        )  # fmt: skip
    except ActionRefused as refused:
        return _refused(request, server, refused)
    messages.success(
        request,
        gettext("Parking %(server)s: job #%(job)s started.")
        % {"server": server.name, "job": job.pk},
    )
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
            messages.error(request, gettext("Choose a flavor from the list."))
            return _resume_form(request, server, status=400)
    try:
        job = server_resume_request(
            server=server, actor=request.user, flavor=flavor, idempotency_key=key
        )
    except ActionRefused as refused:
        messages.error(request, refused.message)
        return _resume_form(request, server, status=refused.status)
    messages.success(
        request,
        gettext("Resuming %(server)s: job #%(job)s started.")
        % {"server": server.name, "job": job.pk},
    )
    return redirect_back(request, "instances:instance-detail", server_id=server.pk)


def instance_park_many(request, action: str):
    """ "Park selected" / "Resume selected" on the overview: GET shows each chosen
    machine's fate (or why it is skipped); POST records one job per machine."""
    data = request.POST if request.method == "POST" else request.GET
    back = next_url(request) or reverse("instances:instance-list")
    key = data.get("idempotency_key", "")
    if request.method == "POST" and job_repeated(actor=request.user, key=key) is not None:
        return redirect_back(request, "instances:instance-list")
    chosen, all_matching = servers_chosen(user=request.user, data=data, limit=PARK_MANY_MAX)
    if all_matching:
        chosen = list(chosen[: PARK_MANY_MAX + 1])
    skip = {"csrfmiddlewaretoken", "idempotency_key"}
    verb = "Park" if action == "park" else "Resume"
    context: dict[str, object] = {
        "back": back, "action": action, "verb": verb, "plan": None,
        "carried": [(k, v) for k, values in data.lists() if k not in skip for v in values],
    }  # fmt: skip
    template = "instances/park_many.html"
    if not chosen:
        messages.error(
            request,
            gettext("Select at least one instance to park.")
            if action == "park"
            else gettext("Select at least one instance to resume."),
        )
        return render(request, template, context, status=400)
    if len(chosen) > PARK_MANY_MAX:
        messages.error(
            request,
            (
                gettext("Park at most %(max)s instances at once.")
                if action == "park"
                else gettext("Resume at most %(max)s instances at once.")
            )
            % {"max": PARK_MANY_MAX},
        )
        return render(request, template, context, status=400)
    if request.method == "GET":
        plan = park_many_plan(servers=chosen, actor=request.user, action=action)
        context.update(plan=plan, will=[row for row in plan if not row.refusal])
        return render(request, template, context)
    jobs, plan = park_many_request(
        servers=chosen, actor=request.user, action=action, idempotency_key=key
    )
    context.update(plan=plan, will=[row for row in plan if not row.refusal])
    if not jobs:
        messages.error(
            request,
            gettext("Nothing to park: every chosen instance is skipped.")
            if action == "park"
            else gettext("Nothing to resume: every chosen instance is skipped."),
        )
        return render(request, template, context, status=409)
    done = (
        ngettext(
            "Parking %(count)s instance: one job.",
            "Parking %(count)s instances: one job each.",
            len(jobs),
        )
        if action == "park"
        else ngettext(
            "Resuming %(count)s instance: one job.",
            "Resuming %(count)s instances: one job each.",
            len(jobs),
        )
    )
    messages.success(request, done % {"count": len(jobs)})
    return redirect_back(request, "instances:instance-list")


@login_required
@require_http_methods(["GET", "POST"])
def instance_park_selected(request):
    return instance_park_many(request, "park")


@login_required
@require_http_methods(["GET", "POST"])
def instance_resume_selected(request):
    return instance_park_many(request, "resume")
