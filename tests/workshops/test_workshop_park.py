"""'Park all seats' / 'Resume all' on a workshop: one job per machine that can."""

from __future__ import annotations

from django.urls import reverse

from instances.models import Server
from portal.models import Job
from tests.instances.test_launch_access import catalog  # noqa: F401  (fixture)
from tests.workshops.test_workshop_retry import workshop  # noqa: F401  (fixture)


def url(workshop, name):  # noqa: F811
    return reverse(f"workshops:{name}", args=[workshop.pk])


def test_park_all_seats_parks_each_running_machine_once(client, workshop):  # noqa: F811
    page = client.get(url(workshop, "workshop-detail")).content.decode()
    assert "Park all seats" in page
    assert client.post(url(workshop, "workshop-park"), {"idempotency_key": "w1"}).status_code == 302
    assert client.post(url(workshop, "workshop-park"), {"idempotency_key": "w1"}).status_code == 302
    parked = Job.objects.filter(kind="server.park")
    names = set(
        Server.objects.filter(openstack_id__in=parked.values("target_server_id")).values_list(
            "name", flat=True
        )
    )
    assert names == {"kurs-anna", "kurs-ben"}  # Cem's machine is in ERROR: skipped
    assert parked.count() == 2


def test_a_site_without_shelve_says_so_on_the_workshop_page(client, workshop, settings):  # noqa: F811
    settings.PORTAL_SITE_NO_SHELVE = f"{workshop.site.name}=Shelving is off at this site"
    page = client.get(url(workshop, "workshop-detail")).content.decode()
    assert "Shelving is off at this site" in page
    assert url(workshop, "workshop-park") not in page
    refused = client.post(url(workshop, "workshop-park"), {"idempotency_key": "w2"})
    assert refused.status_code == 403
    assert "Shelving is off at this site" in refused.content.decode()
    assert not Job.objects.filter(kind="server.park").exists()
