"""Demo users, projects and memberships, linked to the demo clouds' projects.

Only for `make run` and tests: it refuses to run with DEBUG off, so demo
passwords never reach a production database. Running it again changes nothing.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from portal import cloud
from portal.models import Membership, Project, Site
from portal.services import site_sync
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


class Command(BaseCommand):
    help = "Create the demo logins and projects and sync the demo sites (DEBUG only)."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates well-known passwords; it only runs with DEBUG on."
            )
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
                self.stderr.write(f"{site.display_name}: {exc.message}")
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
                self.stderr.write(f"{site.display_name}: {exc.message}")
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
