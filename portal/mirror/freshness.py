"""Whether the status watcher keeps a site's mirror current."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from portal.models import Site


def site_watched(site: Site) -> bool:
    """Does the status watcher keep this site's mirror current right now? Then a
    job reads its server from the mirror instead of asking the cloud, and the
    watcher wakes it when the server changes."""
    if site.watched_at is None:
        return False
    age = (timezone.now() - site.watched_at).total_seconds()
    return age <= settings.PORTAL_WATCH_FRESH_SECONDS
