"""The demo data of `make run`: logins, projects and memberships on the devcloud sites."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from operations.sync import site_sync
from portal import cloud
from portal.models import Membership, Project, Site
from portal.sites import sites_ensure

USERS = [
    # username, password, superuser
    ("alice", "alice", False),
    ("bob", "bob", False),
    ("carol", "carol", False),
    ("admin", "admin", True),
]

# (cloud project name, username, role); a project is linked on whichever site has it.
MEMBERSHIPS = [
    ("alpha", "alice", Membership.Role.ADMIN),
    ("alpha", "bob", Membership.Role.MEMBER),
    ("beta", "carol", Membership.Role.MEMBER),
    ("gamma", "alice", Membership.Role.MEMBER),
]


def demo_seed(*, log=lambda message: None) -> None:
    """Idempotent: existing users keep their passwords, existing rows stay."""
    User = get_user_model()
    users = {}
    for username, password, superuser in USERS:
        user, created = User.objects.get_or_create(
            username=username, defaults={"email": f"{username}@example.org"}
        )
        if created:
            user.set_password(password)
            user.is_superuser = user.is_staff = superuser
            user.save()
        users[username] = user

    wanted = {name for name, _, _ in MEMBERSHIPS}
    for site in sites_ensure():
        try:
            cloud_projects = cloud.project_list(site.name)
        except cloud.Unavailable as exc:
            log(f"{site.display_name}: {exc.message}")
            continue
        for cp in cloud_projects:
            if cp.name not in wanted:
                continue
            project, _ = Project.objects.update_or_create(
                site=site, openstack_id=cp.id, defaults={"name": cp.name}
            )
            for name, username, role in MEMBERSHIPS:
                if name == cp.name:
                    Membership.objects.get_or_create(
                        user=users[username], project=project, defaults={"role": role}
                    )
    for site in Site.objects.all():
        try:
            site_sync(site, full=True)
        except cloud.Unavailable as exc:
            log(f"{site.display_name}: {exc.message}")
