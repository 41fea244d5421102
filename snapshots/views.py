from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from snapshots.models import Snapshot


@login_required
@require_GET
def snapshot_list(request):
    snapshots = Snapshot.objects.filter(deleted_at__isnull=True).select_related("site", "project")
    return render(request, "snapshots/snapshot_list.html", {"snapshots": snapshots})
