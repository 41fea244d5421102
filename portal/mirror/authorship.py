"""Who made a cloud object through the portal (portal.Authorship), and the cloud
metadata key that only hints at it."""

from __future__ import annotations

from collections.abc import Iterable

from portal import prepared
from portal.mirror.rows import CHUNK
from portal.models import Authorship, Site

# Metadata key the portal writes on what it creates: the portal user's name.
# Only a hint, shown as such: anyone with cloud credentials in the project can
# change it. Who created a thing is the Authorship the creating job recorded.
CREATED_BY_KEY = "portal_user"


def authorship_record(*, site: Site, openstack_id: str, user, job=None) -> None:
    """Record that `user` made the object through the portal (first record wins:
    a re-run step, or a later change of cloud metadata, never moves it)."""
    row = Authorship(site=site, openstack_id=openstack_id, user=user, job=job)
    prepared.row_insert_unless_present(row)


def authors_of(site: Site, openstack_ids: Iterable[str] | None = None) -> dict[str, int]:
    """{OpenStack id: user pk} of the objects among `openstack_ids` the portal
    made (of all the site's objects it made when `openstack_ids` is None)."""
    rows = Authorship.objects.filter(site=site, user__isnull=False)
    if openstack_ids is None:
        return dict(rows.values_list("openstack_id", "user_id"))
    ids = set(openstack_ids)
    if not ids:
        return {}
    if len(ids) <= CHUNK:
        rows = rows.filter(openstack_id__in=ids)
    # A full sync asks for every object of the site: reading the site's (few)
    # authorships beats an IN list of 100,000 ids.
    found = rows.values_list("openstack_id", "user_id")
    return {openstack_id: user_id for openstack_id, user_id in found if openstack_id in ids}
