"""The confirmation of "delete all matching" counts each skip rule over the rule's own
few rows (read first), not by testing the rule on every row the filter matches: at
100,000 snapshots alice's "snap-alpha" matched 50,000, and the parked-disk rule was
asked of each (7x the small mirror's time). The counts stay what they were."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.bulk.matching import MAX_RULE_IDS
from tests.factories import make_image, make_server
from tests.plans import sqlite_plan

URL = reverse("snapshots:snapshot-delete")
PARKED = "the saved disk of a parked machine: resume or delete the machine"
NOT_YOURS = "members may delete only snapshots they created"


@pytest.fixture
def mirror(people):
    site, alpha = people["site"], people["alpha"]
    for n in range(30):
        make_image(site=site, project=alpha, snapshot=True, name=f"snap-{n:02d}",
                   created_by=people["bob"])  # fmt: skip
    parked = make_server(project=alpha, name="snap-vm", status="SHELVED_OFFLOADED")
    make_image(
        site=site, project=alpha, snapshot=True, name="snap-vm-shelved", created_by=people["bob"],
        source_server_openstack_id=parked.openstack_id,
    )  # fmt: skip
    make_image(site=site, project=alpha, snapshot=True, name="snap-safe", protected=True,
               created_by=people["bob"])  # fmt: skip
    make_image(site=site, project=alpha, snapshot=True, name="snap-alices",
               created_by=people["alice"])  # fmt: skip
    # Not matching the filter, but matching the rules: never counted.
    other = make_server(project=alpha, name="other", status="SHELVED")
    make_image(site=site, project=alpha, snapshot=True, name="other-shelved",
               source_server_openstack_id=other.openstack_id)  # fmt: skip
    make_image(site=site, project=alpha, snapshot=True, name="other-safe", protected=True)


def test_the_confirmation_counts_every_rule_over_the_filters_rows(client, people, mirror):
    client.force_login(people["bob"])
    response = client.get(URL, {"all_matching": "1", "name": "snap"})
    assert response.status_code == 200
    plan = response.context["matching"]
    assert plan.will_delete == 30
    assert dict(plan.skipped) == {
        NOT_YOURS: 1, "protected in the cloud": 1, PARKED: 1,
    }  # fmt: skip
    page = response.content.decode()
    assert "30 snapshots will be deleted" in page
    assert f"1: {PARKED}" in page


def test_no_rule_is_tested_on_each_row_the_filter_matches(client, people, mirror):
    """The rules with few rows (protected, parked disks) are read on their own and
    counted by id; the filter's query never carries them as a per-row test."""
    client.force_login(people["alice"])
    with CaptureQueriesContext(connection) as queries:
        response = client.get(URL, {"all_matching": "1", "name": "snap"})
    assert response.status_code == 200
    plan = response.context["matching"]
    assert plan.will_delete == 31
    assert dict(plan.skipped) == {"protected in the cloud": 1, PARKED: 1}
    counts = [q["sql"] for q in queries if q["sql"].startswith("SELECT COUNT(*)")]
    assert counts
    for sql in counts:
        assert '"protected"' not in sql, sql
        assert "source_server_openstack_id" not in sql, sql


def test_a_broad_rule_is_still_counted_exactly_up_to_the_cap(client, people, monkeypatch):
    """More rows under a rule than MAX_RULE_IDS (e.g. every protected snapshot of a
    large facility): the rule is asked per row again, with the same counts."""
    monkeypatch.setattr("portal.bulk.matching.MAX_RULE_IDS", 2)
    site, alpha = people["site"], people["alpha"]
    for n in range(4):
        make_image(site=site, project=alpha, snapshot=True, name=f"snap-p{n}", protected=True)
    make_image(site=site, project=alpha, snapshot=True, name="snap-free")
    make_image(site=site, project=alpha, snapshot=True, name="other-p", protected=True)
    client.force_login(people["alice"])
    plan = client.get(URL, {"all_matching": "1", "name": "snap"}).context["matching"]
    assert (plan.will_delete, dict(plan.skipped)) == (1, {"protected in the cloud": 4})
    assert MAX_RULE_IDS >= 1000  # the real bound: as far as the counts are exact


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite plans")
def test_the_parked_machines_are_read_from_their_own_index(people):
    """The parked-disk rule first lists the parked machines: from an index, not by
    reading every server. With two statuses, each half of the servers, SQLite
    reckoned that `status IN (?, ?)` matched them all and read all 10,000 (3x the
    small mirror's time for each delete confirmation)."""
    from images.models import Image
    from portal.mirror.sqlite import planner_statistics_refresh
    from snapshots.services import SNAPSHOT_DELETE

    for n in range(60):
        make_server(project=people["beta"], status="ACTIVE" if n % 2 else "SHUTOFF")
    planner_statistics_refresh()
    (rule,) = [rule for reason, rule in SNAPSHOT_DELETE.rules if reason == PARKED]
    rows = Image.objects.filter(rule).order_by().values_list("name", flat=True)
    found = sqlite_plan(rows)
    assert "SCAN U0" not in found, found
    assert "SCAN instances_server" not in found, found
    # The same disks as before: those named "-shelved" of a machine parked now.
    parked = make_server(project=people["alpha"], name="p", status="SHELVED_OFFLOADED")
    woken = make_server(project=people["alpha"], name="w", status="ACTIVE")
    for server, name in ((parked, "p-shelved"), (parked, "p-later"), (woken, "w-shelved")):
        make_image(site=people["site"], project=people["alpha"], snapshot=True, name=name,
                   source_server_openstack_id=server.openstack_id)  # fmt: skip
    assert list(rows) == ["p-shelved"]
