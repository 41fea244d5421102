"""A page that offers the sites as a filter and also lists them (the overview's sync
times, the catalog's columns) reads them once (portal.form_rendering.choice_objects)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.models import Site


def site_list_reads(client, url) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    every_site = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith('SELECT "portal_site"."id"') and "WHERE" not in q["sql"]
    ]  # not the notice of unreachable sites every page shows, a read of its own
    return response.content.decode(), len(every_site)


@pytest.mark.parametrize("url", [reverse("instances:instance-list"), reverse("images:image-list")])
def test_the_sites_are_read_once_for_the_filter_and_the_page(client, people, url):
    Site.objects.create(name="devcloud2", display_name="Heidelberg")
    client.force_login(people["bob"])
    body, reads = site_list_reads(client, url)
    assert reads == 1
    for name in ("Bielefeld", "Heidelberg"):
        assert f">{name}</option>" in body  # offered by the filter
        assert body.count(name) >= 2  # and listed by the page
