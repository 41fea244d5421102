from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from images.filters import ImageFilterSet
from images.selectors import base_image_list, image_catalog
from portal.models import Site


@login_required
@require_GET
def image_list(request):
    images = base_image_list(user=request.user)
    filterset = ImageFilterSet(request.GET, queryset=images)
    rows = image_catalog(
        user=request.user, images=filterset.qs if filterset.is_valid() else images.none()
    )
    context = {"rows": rows, "filter": filterset, "sites": Site.objects.all()}
    if request.htmx and not request.htmx.boosted:
        return render(request, "images/_image_table.html", context)
    return render(request, "images/image_list.html", context)
