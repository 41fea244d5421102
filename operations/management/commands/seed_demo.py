"""Demo logins and projects for `make run`.

It refuses to run with DEBUG off, so demo passwords never reach a
production database. Running it again changes nothing.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from operations.demo import demo_seed


class Command(BaseCommand):
    help = "Create the demo logins and projects and sync the demo sites (DEBUG only)."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates well-known passwords; it only runs with DEBUG on."
            )
        demo_seed(log=lambda message: self.stderr.write(message))
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
