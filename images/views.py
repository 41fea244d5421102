from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from images.models import Image


@login_required
@require_GET
def image_list(request):
    images = Image.objects.filter(is_snapshot=False, deleted_at__isnull=True).select_related("site")
    return render(request, "images/image_list.html", {"images": images})
