"""The site's projects as the mirror's rows refer to them."""

from __future__ import annotations

from portal import cloud
from portal.models import Project, Site


def project_ids(site: Site) -> dict[str, int]:
    """{OpenStack project id: portal project pk} of the site."""
    return dict(Project.objects.filter(site=site).values_list("openstack_id", "pk"))


def projects_sync(site: Site) -> int:
    """Refresh the names of the site's projects the portal knows (ids never change)."""
    names = {p.id: p.name for p in cloud.project_list(site.name)}
    changed = 0
    for project in Project.objects.filter(site=site):
        name = names.get(project.openstack_id)
        if name and name != project.name:
            project.name = name
            project.save(update_fields=["name"])
            changed += 1
    return changed
