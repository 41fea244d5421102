from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from instances.launch_retry import launch_followups
from operations.job_rows import JobRows
from portal.errors import ActionRefused
from portal.http import param_int, redirect_back
from portal.selectors import job_get_for_user, jobs_newest
from portal.ssh_keys import (
    MAX_KEY_CHARS,
    MAX_NAME_CHARS,
    KeyRefused,
    ssh_key_add,
    ssh_key_default_set,
    ssh_key_delete,
    ssh_keys_of,
)
from portal.tables import PAGE_SIZES, REMEMBERED_PAGE_SIZES, page_size_save
from workshops.models import Workshop


@login_required
@require_GET
def job_list(request):
    jobs = jobs_newest(user=request.user, limit=100)
    return render(
        request, "portal/job_list.html", {"jobs": jobs, "rows_html": JobRows(jobs).html()}
    )


@login_required
@require_GET
def job_detail(request, job_id: int):
    job = job_get_for_user(request.user, job_id)
    template = "portal/_job_progress.html" if request.htmx else "portal/job_detail.html"
    workshop = Workshop.objects.filter(launch_job=job).first()
    # A finished launch offers to retry (or delete) its failed seats as they are now.
    retry = launch_followups(job, request.user) if job.kind == "instances.launch" else None
    return render(request, template, {"job": job, "workshop": workshop, "retry": retry})


@login_required
@require_POST
def page_size_set(request):
    """Remember the page size of a list for this user, then go back to the list."""
    key = request.POST.get("key", "")
    size = param_int(request.POST, "per_page", default=0, low=1, high=max(PAGE_SIZES))
    if key not in REMEMBERED_PAGE_SIZES or size not in PAGE_SIZES:
        raise BadRequest(
            gettext("Choose a page size of %(sizes)s.") % {"sizes": ", ".join(map(str, PAGE_SIZES))}
        )
    page_size_save(user=request.user, key=key, size=size)
    return redirect_back(request, "home")


@login_required
@require_http_methods(["GET", "POST"])
def profile_keys(request):
    """The user's SSH public keys; POST adds one (400 with the reason when refused)."""
    status, name, text, error = 200, "", "", ""
    if request.method == "POST":
        name = request.POST.get("name", "")[: MAX_NAME_CHARS + 1]
        text = request.POST.get("public_key", "")
        try:
            if len(name) > MAX_NAME_CHARS:
                raise KeyRefused(
                    gettext("A key's name is at most %(max)s characters.") % {"max": MAX_NAME_CHARS}
                )
            key = ssh_key_add(user=request.user, text=text, name=name)
        except KeyRefused as refused:
            status, error = refused.status, refused.message
            # A private key pasted by mistake is never shown again, nor is a paste too
            # long to be a key.
            if refused.private or len(text) > MAX_KEY_CHARS:
                text = ""
        else:
            messages.success(
                request,
                gettext("Key “%(name)s” added: %(fingerprint)s.")
                % {"name": key.name, "fingerprint": key.fingerprint},
            )
            return redirect("profile-keys")
    context = {"keys": ssh_keys_of(request.user), "name": name, "text": text, "error": error}
    return render(request, "portal/profile_keys.html", context, status=status)


def _key_action(request, key_id: int, action, done: str):
    try:
        action(user=request.user, key_id=key_id)
    except ActionRefused as refused:
        if refused.status == 404:
            raise Http404(refused.message) from refused
        raise
    messages.success(request, done)
    return redirect("profile-keys")


@login_required
@require_POST
def profile_key_default(request, key_id: int):
    return _key_action(request, key_id, ssh_key_default_set, gettext("Default key changed."))


@login_required
@require_POST
def profile_key_delete(request, key_id: int):
    return _key_action(
        request, key_id, ssh_key_delete,
        gettext("Key deleted. Machines that have it keep it until you remove it from them."),
    )  # fmt: skip


def bad_request(request, exception):
    """400 with the message of the portal's own refusal (portal.http says what was
    wrong with which parameter); anything else Django refuses stays generic."""
    message = str(exception) if type(exception) is BadRequest else ""
    return render(request, "400.html", {"message": message}, status=400)
