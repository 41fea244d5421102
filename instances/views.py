from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from instances.selectors import server_get_for_user, server_list


@login_required
@require_GET
def instance_list(request):
    servers = server_list(user=request.user).filter(deleted_at__isnull=True)
    return render(request, "instances/instance_list.html", {"servers": servers})


@login_required
@require_GET
def instance_detail(request, server_id: int):
    server = server_get_for_user(request.user, server_id)
    return render(request, "instances/instance_detail.html", {"server": server})
