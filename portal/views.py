from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from portal.selectors import job_get_for_user
from portal.selectors import job_list as jobs_for


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
    return render(request, template, {"job": job})
