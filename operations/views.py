from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from instances.launch_retry import launch_followups
from portal.http import next_url, param_int, redirect_back
from portal.selectors import job_get_for_user
from portal.selectors import job_list as jobs_for
from portal.tables import PAGE_SIZES, REMEMBERED_PAGE_SIZES, page_size_save
from workshops.models import Workshop


class LoginView(auth_views.LoginView):
    """Django's login page; its `next` is read as every other one (portal.http):
    only a path on this site, else the default page."""

    def get_redirect_url(self):
        return next_url(self.request)


class LogoutView(auth_views.LogoutView):
    def get_redirect_url(self):
        return next_url(self.request)


@login_required
@require_GET
def job_list(request):
    jobs = jobs_for(user=request.user)[:100]
    return render(request, "portal/job_list.html", {"jobs": jobs})


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
        raise BadRequest(f"Choose a page size of {', '.join(map(str, PAGE_SIZES))}.")
    page_size_save(user=request.user, key=key, size=size)
    return redirect_back(request, "home")


def bad_request(request, exception):
    """400 with the message of the portal's own refusal (portal.http says what was
    wrong with which parameter); anything else Django refuses stays generic."""
    message = str(exception) if type(exception) is BadRequest else ""
    return render(request, "400.html", {"message": message}, status=400)
