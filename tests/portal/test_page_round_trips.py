"""The pages of the load bench's mix read each thing once: every database read is a
round trip, and under load each costs a busy web thread ~14 ms (waiting for the GIL
and a core again), 0.2 ms alone. And what they stop re-reading still shows as before:
the unreachable-sites notice, the user's own projects only."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.models import Project, Site
from tests.factories import make_image, make_server

PAGES = ["/instances/", "/snapshots/", "/snapshots/?status=active&sort=-created_at", "/images/"]


@pytest.fixture
def seen(client, people):
    """Bob (member of alpha) signed in, with a server and a snapshot of it, a second
    site, and a project of carol's he must not see."""
    Site.objects.create(name="devcloud2", display_name="Heidelberg")
    server = make_server(project=people["alpha"], created_by=people["bob"])
    make_image(site=people["site"], project=people["alpha"], snapshot=True,
               created_by=people["bob"], source_server_openstack_id=server.openstack_id)  # fmt: skip
    make_server(project=people["beta"], created_by=people["carol"])
    client.force_login(people["bob"])
    return people


def reads_of(client, url: str, table: str) -> list[str]:
    client.get(url)  # the first visit may remember things (the page size)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    pattern = re.compile(rf'\bFROM "{table}"')
    return [q["sql"] for q in captured.captured_queries if pattern.search(q["sql"])]


@pytest.mark.parametrize("url", PAGES)
def test_a_page_with_site_choices_reads_the_sites_once(client, seen, url):
    """The filter's site choices (no COUNT before them) and the unreachable-sites
    notice share one read."""
    assert len(reads_of(client, url, "portal_site")) == 1


def test_the_overview_reads_the_users_projects_once(client, seen):
    """For the rows, the flavor choices, the project choices and the row actions."""
    reads = reads_of(client, "/instances/", "portal_project") + reads_of(
        client, "/instances/", "portal_membership"
    )
    assert len(reads) == 1


@pytest.mark.parametrize("url", [*PAGES, "/jobs/"])
def test_the_notice_names_a_site_unreachable_since_the_last_view(client, seen, url):
    """Guard: the notice still shows, on the next view, on pages that read every
    site and on pages that do not."""
    assert "unreachable since" not in client.get(url).content.decode()
    Site.objects.filter(name="devcloud2").update(unreachable_since=timezone.now())
    page = client.get(url).content.decode()
    assert "Heidelberg</strong> unreachable since" in page
    assert "Bielefeld</strong> unreachable since" not in page


def test_the_overview_offers_and_shows_only_the_users_projects(client, seen):
    """Guard: the project choices and rows come from the projects read once."""
    Project.objects.create(site=seen["site"], openstack_id="p-gamma", name="gamma")
    page = client.get("/instances/").content.decode()
    options = re.findall(r'<option value="(\d*)"[^>]*>([^<]*)</option>', page)
    projects = {label for value, label in options if value and label in {"alpha", "beta", "gamma"}}
    assert projects == {"alpha"}
    assert client.get("/instances/", {"project": seen["beta"].pk}).status_code == 200
    rows = client.get("/instances/", {"project": seen["beta"].pk}).content.decode()
    assert "carol" not in rows


def test_a_snapshot_table_with_rows_does_not_ask_whether_there_are_any(client, seen):
    reads = reads_of(client, "/snapshots/", "images_image")
    assert not [sql for sql in reads if sql.startswith('SELECT 1 AS "a"')]


def test_the_empty_snapshot_table_still_tells_none_from_none_matching(client, seen):
    """Guard: "No snapshots yet" for a user without any, not for a filter that
    matches none of theirs."""
    assert "No snapshots yet" not in client.get("/snapshots/").content.decode()
    none_matching = client.get("/snapshots/", {"name": "no-such-snapshot"}).content.decode()
    assert "No snapshots yet" not in none_matching
    client.force_login(seen["carol"])
    assert "No snapshots yet" in client.get("/snapshots/").content.decode()
