"""The new-instance page: project, flavor, image or snapshot, one or a workshop."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from images.models import Image
from instances.forms import LaunchForm
from instances.launch import (
    fit_problems,
    instance_launch_request,
    instance_names,
    launch_check,
    participants_from,
    quota_problem,
)
from instances.models import Flavor
from portal.access import projects_visible_to
from portal.errors import ActionRefused
from snapshots.selectors import source_servers_for

MAX_PREVIEW = 100

FLAVOR_GROUPS = [
    ("Small (up to 4 GiB RAM)", 4 * 1024),
    ("Medium (up to 32 GiB RAM)", 32 * 1024),
    ("Large (up to 256 GiB RAM)", 256 * 1024),
    ("High memory (more than 256 GiB RAM)", None),
]


def _group_flavors(flavors) -> list[tuple[str, list[Flavor]]]:
    groups = []
    remaining = list(flavors)
    for label, limit in FLAVOR_GROUPS:
        members = [f for f in remaining if limit is None or f.ram_mib <= limit]
        remaining = [f for f in remaining if f not in members]
        if members:
            groups.append((label, members))
    return groups


def _choice(queryset, raw):
    if raw and str(raw).isdigit():
        return queryset.filter(pk=int(raw)).first()
    return None


@login_required
@require_http_methods(["GET", "POST"])
def instance_new(request):
    data = request.POST if request.method == "POST" else request.GET
    projects = projects_visible_to(request.user).select_related("site").order_by("name")
    project = _choice(projects, data.get("project")) or projects.first()
    if project is None:
        return render(request, "instances/instance_new.html", {"no_project": True}, status=200)

    flavors = Flavor.objects.filter(site=project.site, deleted_at__isnull=True)
    images = Image.objects.filter(site=project.site, deleted_at__isnull=True).filter(
        Q(is_snapshot=False, visibility__in=("public", "community"))
        | Q(is_snapshot=False, project=project)
        | Q(is_snapshot=True, project=project)
    )
    flavor_q = data.get("flavor_q", "").strip()
    image_q = data.get("image_q", "").strip()
    flavor = _choice(flavors, data.get("flavor"))
    image = _choice(images, data.get("image"))
    shown_flavors = flavors.filter(name__icontains=flavor_q) if flavor_q else flavors
    shown_images = images.filter(name__icontains=image_q) if image_q else images
    if image is not None and image.pk not in {i.pk for i in shown_images}:
        shown_images = images.filter(Q(pk=image.pk) | Q(name__icontains=image_q))

    participants = participants_from(data.get("participants", ""))
    try:
        count = max(1, int(data.get("count") or 1))
    except ValueError:
        count = 1
    if participants:
        count = len(participants)
    prefix = data.get("name", "").strip()

    form = LaunchForm(
        data if request.method == "POST" else None,
        initial={"project": project, "count": count},
        projects=projects, flavors=flavors, images=images,
    )  # fmt: skip
    refusal = None
    if request.method == "POST" and form.is_valid():
        try:
            plan = launch_check(
                actor=request.user,
                project=form.cleaned_data["project"],
                flavor=form.cleaned_data["flavor"],
                image=form.cleaned_data["image"],
                prefix=form.cleaned_data["name"],
                count=form.cleaned_data["count"],
                participants=participants_from(form.cleaned_data["participants"]),
            )
        except ActionRefused as refused:
            refusal = refused
        else:
            job = instance_launch_request(actor=request.user, plan=plan)
            messages.success(request, f"Launching {len(plan.names)} instance(s): job #{job.pk}.")
            return redirect("job-detail", job_id=job.pk)

    def annotate(image_rows):
        image_rows = list(image_rows.order_by("-is_snapshot", "name"))
        sources = source_servers_for(image_rows)
        rows = []
        for row in image_rows:
            reasons = fit_problems(image=row, flavor=flavor) if flavor else (
                [] if row.status == "active" else [f"it is {row.status}, not active"]
            )  # fmt: skip
            source = sources.get((row.site_id, row.source_server_openstack_id))
            rows.append(
                {"image": row, "reasons": reasons, "source_name": source.name if source else ""}
            )
        return rows

    context = {
        "form": form,
        "projects": projects,
        "project": project,
        "flavor_groups": _group_flavors(shown_flavors),
        "flavor": flavor,
        "image": image,
        "base_images": annotate(shown_images.filter(is_snapshot=False)),
        "snapshots": annotate(shown_images.filter(is_snapshot=True)),
        "flavor_q": flavor_q,
        "image_q": image_q,
        "count": count,
        "prefix": prefix,
        "participants_text": data.get("participants", ""),
        "names": instance_names(
            prefix=prefix or (image.name if image else ""), participants=participants, count=count
        )[:MAX_PREVIEW],
        "quota_message": quota_problem(project=project, flavor=flavor, count=count)
        if flavor
        else "",
        "refusal": refusal,
        "tab": "snapshots" if image is not None and image.is_snapshot else data.get("tab", "base"),
    }
    status = 200
    if request.method == "POST":
        status = refusal.status if refusal else 400
    partial = request.htmx and request.method == "GET"
    template = "instances/_launch_form.html" if partial else "instances/instance_new.html"
    return render(request, template, context, status=status)
