"""The new-instance page: project, flavor, image or snapshot, one or a workshop."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.shortcuts import redirect, render
from django.utils.translation import gettext, gettext_lazy, ngettext
from django.views.decorators.http import require_http_methods

from images.models import LIVE_BASE, LIVE_SNAPSHOT, Image
from instances.forms import LaunchForm
from instances.launch import instance_launch_request
from instances.launch_rules import (
    boot_tests_of,
    fit_problems,
    launch_check,
    network_question,
    quota_problem,
    unbootable_check,
)
from instances.models import Flavor
from instances.naming import instance_names
from instances.participants import MAX_COUNT, participants_from
from instances.selectors import flavors_usable_by, source_servers_for
from portal.access import projects_visible_to
from portal.errors import ActionRefused
from portal.filters import name_starts
from portal.http import param_id, param_int, param_search
from portal.jobs import job_repeated
from portal.ssh_keys import ssh_keys_of

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

MAX_PREVIEW = 100

# Images and snapshots listed per tab; a project with thousands of snapshots
# searches them by name instead of receiving every one (~700 KB of HTML).
MAX_CHOICES = 50

FLAVOR_GROUPS = [
    (gettext_lazy("Small (up to 4 GiB RAM)"), 4 * 1024),
    (gettext_lazy("Medium (up to 32 GiB RAM)"), 32 * 1024),
    (gettext_lazy("Large (up to 256 GiB RAM)"), 256 * 1024),
    (gettext_lazy("High memory (more than 256 GiB RAM)"), None),
]


def _group_flavors(flavors) -> list[tuple[StrOrPromise, list[Flavor]]]:
    groups: list[tuple[StrOrPromise, list[Flavor]]] = []
    remaining = list(flavors)
    for label, limit in FLAVOR_GROUPS:
        members = [f for f in remaining if limit is None or f.ram_mib <= limit]
        remaining = [f for f in remaining if f not in members]
        if members:
            groups.append((label, members))
    return groups


def _choice(queryset, data, name: str):
    """The row `data[name]` names among `queryset`; None if none is named; 400 if
    the value is not an id."""
    pk = param_id(data, name)
    return None if pk is None else queryset.filter(pk=pk).first()


def _launchable_images(project):
    """Images and snapshots the project may boot: public base images, its own
    base images, and its own snapshots."""
    return _launchable_base_images(project) | _launchable_snapshots(project)


def _launchable_base_images(project):
    return Image.objects.filter(LIVE_BASE, site=project.site).filter(
        Q(visibility__in=("public", "community")) | Q(project=project)
    )


def _launchable_snapshots(project):
    # Written as the partial index's condition plus the project: the index
    # (project, name_key) then yields the first names of one project directly.
    return Image.objects.filter(LIVE_SNAPSHOT, project=project, site=project.site)


def _image_rows(images, *, flavor, chosen=None, snapshots=False) -> tuple[list[dict], bool]:
    """The first MAX_CHOICES images by name (and the chosen one, wherever it sorts),
    each with the reasons it cannot boot on `flavor` and its source instance's name;
    and whether more match (the page then asks the user to search)."""
    # Each list in the order of its partial index: base images by name, snapshots
    # by (project, name_key).
    order = "name_key" if snapshots else "name"
    images = list(images.order_by(order)[: MAX_CHOICES + 1])
    more = len(images) > MAX_CHOICES
    images = images[:MAX_CHOICES]
    if chosen is not None and chosen not in images:
        images.insert(0, chosen)
    sources = source_servers_for(images)
    tests = boot_tests_of(images)
    rows = []
    for image in images:
        if flavor is not None:
            reasons = fit_problems(image=image, flavor=flavor)
        else:
            reasons = (
                []
                if image.status == "active"
                else [gettext("it is %(status)s, not active") % {"status": image.status}]
            )
        source = sources.get((image.site_id, image.source_server_openstack_id))
        rows.append(
            {
                "image": image,
                "reasons": reasons,
                "source_name": source.name if source else "",
                "boot_test": tests.get((image.site_id, image.openstack_id)),
            }
        )
    return rows, more


def _requested_count(data, participants: list[str]) -> int:
    """How many instances the page previews: one per participant, else the count
    asked for, kept within 1…MAX_COUNT before any name is built."""
    if participants:
        return min(len(participants), MAX_COUNT)
    return param_int(data, "count", default=1, low=1, high=MAX_COUNT, clamp=True)


def _ssh_key_choice(data, keys) -> str:
    """The key the form shows chosen, as the option's value: the one asked for ("" for
    none), else the user's default."""
    if "ssh_key" in data:
        return str(data.get("ssh_key", ""))
    default = next((key for key in keys if key.is_default), None)
    return str(default.pk) if default else ""


def _launch_submit(request, form):
    """Check the posted form's plan and start the job; returns (job, refusal)."""
    key = request.POST.get("idempotency_key", "")
    repeated = job_repeated(actor=request.user, key=key)
    if repeated is not None:
        return repeated, None  # a double click: the first request started it
    network = form.cleaned_data.get("network")
    try:
        unbootable_check(
            image=form.cleaned_data["image"],
            count=len(participants_from(form.cleaned_data["participants"]))
            or form.cleaned_data["count"],
            confirmed=bool(request.POST.get("launch_unbootable")),
        )
        plan = launch_check(
            actor=request.user,
            project=form.cleaned_data["project"],
            flavor=form.cleaned_data["flavor"],
            image=form.cleaned_data["image"],
            prefix=form.cleaned_data["name"],
            count=form.cleaned_data["count"],
            participants=participants_from(form.cleaned_data["participants"]),
            network_ids=[network.openstack_id] if network is not None else None,
        )
    except ActionRefused as refused:
        return None, refused
    plan = dataclasses.replace(plan, ssh_key=form.cleaned_data.get("ssh_key"))
    job = instance_launch_request(actor=request.user, plan=plan, idempotency_key=key)
    messages.success(
        request,
        ngettext(
            "Launching %(count)s instance: job #%(job)s.",
            "Launching %(count)s instances: job #%(job)s.",
            len(plan.names),
        )
        % {"count": len(plan.names), "job": job.pk},
    )
    return job, None


def _image_search(images, image_q: str):
    # By name prefix ("*" in front: anywhere in the name), answered by an index;
    # the chosen image stays visible even when the filter excludes it.
    return name_starts(images, "image_q", image_q)


def _launch_context(data, *, project, projects, form, refusal) -> dict:
    """What the page shows for the choices in `data`: flavors, images, preview, quota."""
    flavors = form.fields["flavor"].queryset
    images = form.fields["image"].queryset
    flavor_q = param_search(data, "flavor_q", label=gettext("Filter flavors by name"))
    image_q = param_search(data, "image_q", label=gettext("Search images by name"))
    flavor = _choice(flavors, data, "flavor")
    image = _choice(images, data, "image")
    networks = form.fields["network"].queryset
    shown_flavors = flavors.filter(name__icontains=flavor_q) if flavor_q else flavors
    participants = participants_from(data.get("participants", ""))
    too_many = len(participants) > MAX_COUNT
    participants = participants[:MAX_COUNT]
    count = _requested_count(data, participants)
    prefix = data.get("name", "").strip()
    names = instance_names(
        prefix=prefix or (image.name if image else ""), participants=participants, count=count
    )
    base_rows, more_base = _image_rows(
        _image_search(_launchable_base_images(project), image_q),
        flavor=flavor,
        chosen=image if image is not None and not image.is_snapshot else None,
    )
    snapshot_rows, more_snapshots = _image_rows(
        _image_search(_launchable_snapshots(project), image_q),
        flavor=flavor,
        chosen=image if image is not None and image.is_snapshot else None,
        snapshots=True,
    )
    return {
        "form": form,
        "projects": projects,
        "project": project,
        "flavor_groups": _group_flavors(shown_flavors),
        "flavor": flavor,
        "image": image,
        "networks": list(networks),
        "network": _choice(networks, data, "network"),
        "base_images": base_rows,
        "snapshots": snapshot_rows,
        "more_base_images": more_base,
        "more_snapshots": more_snapshots,
        "max_choices": MAX_CHOICES,
        # Why each image cannot boot on the chosen flavor, for the page to apply
        # without replacing the inputs (see _launch_form.html).
        "fit": {
            str(row["image"].pk): (
                gettext("Not available: %(reasons)s.") % {"reasons": "; ".join(row["reasons"])}
                if row["reasons"]
                else ""
            )
            for row in base_rows + snapshot_rows
        },
        "flavor_q": flavor_q,
        "image_q": image_q,
        "count": count,
        "prefix": prefix,
        "participants_text": data.get("participants", ""),
        "names": names[:MAX_PREVIEW],
        "quota_message": (
            quota_problem(project=project, flavor=flavor, count=count) if flavor else ""
        ),
        "refusal": refusal,
        "too_many": too_many,
        "max_count": MAX_COUNT,
        "ssh_keys": list(form.fields["ssh_key"].queryset),
        "ssh_key_choice": _ssh_key_choice(data, form.fields["ssh_key"].queryset),
        "tab": "snapshots" if image is not None and image.is_snapshot else data.get("tab", "base"),
    }


@login_required
@require_http_methods(["GET", "POST"])
def instance_new(request):
    """GET previews the choices (live, through htmx); POST checks and launches."""
    data = request.POST if request.method == "POST" else request.GET
    # Without JavaScript, "Update choices" posts the form to preview it: no launch.
    launching = request.method == "POST" and not data.get("preview")
    projects = projects_visible_to(request.user).select_related("site").order_by("name")
    project = _choice(projects, data, "project") or projects.first()
    if project is None:
        return render(request, "instances/instance_new.html", {"no_project": True})

    form = LaunchForm(
        data if launching else None,
        initial={"project": project},
        projects=projects,
        flavors=flavors_usable_by(project),
        images=_launchable_images(project),
        networks=network_question(project),
        ssh_keys=ssh_keys_of(request.user),
    )
    refusal = None
    if launching and form.is_valid():
        job, refusal = _launch_submit(request, form)
        if job is not None:
            return redirect("job-detail", job_id=job.pk)

    context = _launch_context(data, project=project, projects=projects, form=form, refusal=refusal)
    status = 200
    if launching:
        status = refusal.status if refusal else 400
    partial = request.htmx and request.method == "GET"
    template = "instances/_launch_form.html" if partial else "instances/instance_new.html"
    return render(request, template, context, status=status)
