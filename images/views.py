from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods

from images.copy import image_copies, image_copy_request, image_copy_targets
from images.filters import ImageFilterSet
from images.models import Image
from images.selectors import base_image_list
from images.tables import rendered_catalogs
from portal.access import in_visible_projects
from portal.errors import ActionRefused
from portal.form_rendering import site_choices
from portal.http import param_id
from portal.jobs import job_repeated
from portal.models import Project


@login_required
@require_GET
def image_list(request):
    images = base_image_list(user=request.user)
    filterset = ImageFilterSet(request.GET, queryset=images)
    sites = site_choices(request, filterset.form.fields["site"])
    catalog = rendered_catalogs.get(
        user=request.user,
        images=filterset.qs if filterset.is_valid() else images.none(),
        sites=sites,
    )
    context = {
        "rows": catalog.rows, "rows_html": catalog.html, "filter": filterset, "sites": sites,
    }  # fmt: skip
    if request.htmx and not request.htmx.boosted:
        return render(request, "images/_image_table.html", context)
    return render(request, "images/image_list.html", context)


def _copyable_image(user, image_id: int) -> Image:
    """A live image the user may see: a public or community one, or one of their
    projects' (404 otherwise, the same answer whether it exists or not)."""
    images = Image.objects.filter(deleted_at__isnull=True).select_related("site", "project")
    shared = Q(visibility__in=("public", "community"), is_snapshot=False)
    return get_object_or_404(
        images.filter(shared | Q(pk__in=in_visible_projects(images, user).values("pk"))),
        pk=image_id,
    )


@login_required
@require_http_methods(["GET", "POST"])
def image_copy(request, image_id: int):
    """ "Copy to another site": GET shows where the image exists and a form to choose
    one of the user's projects at another site; POST records the copy job."""
    image = _copyable_image(request.user, image_id)
    targets = image_copy_targets(user=request.user, image=image)
    chosen_site = request.GET.get("site", "")  # "copy here" on the image matrix
    context = {
        "image": image, "targets": targets, "copies": image_copies(image),
        "chosen_site": int(chosen_site) if chosen_site.isdigit() else None,
    }  # fmt: skip
    if request.method == "GET":
        return render(request, "images/image_copy.html", context)
    key = request.POST.get("idempotency_key", "")
    job = job_repeated(actor=request.user, key=key)
    if job is None:
        target_id = param_id(request.POST, "target")  # malformed: 400
        target = (
            Project.objects.filter(pk=target_id).select_related("site").first()
            if target_id is not None
            else None
        )
        try:
            job = image_copy_request(
                image=image, actor=request.user, target=target,
                boot_test=request.POST.get("boot_test") == "1", idempotency_key=key,
            )  # fmt: skip
        except ActionRefused as refused:
            messages.error(request, refused.message)
            return render(request, "images/image_copy.html", context, status=refused.status)
    messages.success(
        request,
        gettext("Copying %(image)s to another site: job #%(job)s.")
        % {"image": image.name, "job": job.pk},
    )
    return redirect("job-detail", job_id=job.pk)
