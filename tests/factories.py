"""Mirror rows for view and service tests (what a sync would have written)."""

from __future__ import annotations

import itertools
import uuid

from django.utils import timezone

from images.models import Image
from instances.models import Server

_seq = itertools.count(1)


def make_server(*, project, created_by=None, **fields) -> Server:
    n = next(_seq)
    defaults = {
        "name": f"vm-{n}",
        "openstack_id": str(uuid.uuid4()),
        "project_openstack_id": project.openstack_id if project else "",
        "status": "ACTIVE",
        "power_state": 1,
        "vm_state": "active",
        "flavor_name": "de.NBI small",
        "flavor_vcpus": 2,
        "flavor_ram_mib": 4096,
        "flavor_disk_gb": 50,
        "image_openstack_id": "base-image",  # "": booted from a volume
        "addresses": [f"192.168.0.{n % 250}"],
        "created_at": timezone.now(),
    }
    defaults.update(fields)
    defaults["name_key"] = defaults["name"].casefold()
    site = defaults.pop("site", None) or project.site
    return Server.objects.create(site=site, project=project, created_by=created_by, **defaults)


def make_image(*, site, project=None, snapshot=False, created_by=None, **fields) -> Image:
    n = next(_seq)
    defaults = {
        "name": f"image-{n}",
        "openstack_id": str(uuid.uuid4()),
        "status": "active",
        "visibility": "private" if snapshot else "public",
        "owner_openstack_id": project.openstack_id if project else "",
        "size": 1024**3,
        "min_disk": 20,
        "checksum": "abc",
        "is_snapshot": snapshot,
        "created_at": timezone.now(),
        "properties": {"image_type": "snapshot"} if snapshot else {"os_distro": "ubuntu"},
    }
    defaults.update(fields)
    defaults["name_key"] = defaults["name"].casefold()
    return Image.objects.create(site=site, project=project, created_by=created_by, **defaults)
