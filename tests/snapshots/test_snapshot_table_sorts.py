"""The snapshot table's sorts: each header that offers one orders the rows by it,
ties by the row id (pages neither repeat nor drop a row); the headers that offer
none (a value read through a join, which no index orders) say why, and a crafted
`?sort=` for them is ignored. (That each offered sort is walked from an index:
tests/portal/test_list_indexes.py.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from snapshots.tables import SnapshotTable
from tests.factories import make_image

URL = reverse("snapshots:snapshot-list")
NOT_SORTABLE = {"project", "site", "created_by"}


def ids(response) -> list[int]:
    return [row.record.pk for row in response.context["table"].page.object_list]


@pytest.fixture
def alike(people):
    """Twelve snapshots of alpha that share every sortable value (ties everywhere)."""
    when = timezone.now() - timedelta(hours=1)
    return [
        make_image(site=people["site"], project=people["alpha"], snapshot=True, name="same",
                   size=5, created_at=when).pk
        for _ in range(12)
    ]  # fmt: skip


def test_the_table_offers_the_sorts_an_index_answers():
    offered = {c.name for c in SnapshotTable([]).columns if c.orderable}
    assert offered == {"name", "status", "size", "created_at"}


@pytest.mark.parametrize("sort", ["name", "status", "size", "created_at"])
def test_ties_keep_the_id_order_in_both_directions(client, people, alike, sort):
    client.force_login(people["alice"])
    for direction, expected in ((sort, sorted(alike)), (f"-{sort}", sorted(alike, reverse=True))):
        first = ids(client.get(URL, {"sort": direction, "per_page": 10}))
        second = ids(client.get(URL, {"sort": direction, "per_page": 10, "page": 2}))
        assert first + second == expected, direction


def test_headers_without_a_sort_say_why(client, people, alike):
    client.force_login(people["alice"])
    body = client.get(URL).content.decode()
    for column in NOT_SORTABLE:
        assert f"sort={column}" not in body
    assert 'title="Not sortable: filter by project name instead."' in body
    assert "Not sortable: filter by site instead." in body
    assert "sort=-created_at" in body or "sort=created_at" in body  # the others still link


@pytest.mark.parametrize("sort", [*sorted(NOT_SORTABLE), "-project", "nonsense"])
def test_a_crafted_sort_without_a_header_is_ignored(client, people, sort):
    now = timezone.now()
    # Newest first is the reverse of the project-name order (and of the user's).
    newest = make_image(site=people["site"], project=people["beta"], snapshot=True,
                        name="b", created_at=now)  # fmt: skip
    oldest = make_image(site=people["site"], project=people["alpha"], snapshot=True,
                        name="a", created_at=now - timedelta(hours=1))  # fmt: skip
    client.force_login(people["admin"])
    response = client.get(URL, {"sort": sort})
    assert response.status_code == 200
    assert ids(response) == [newest.pk, oldest.pk]


@pytest.mark.parametrize(
    ("boot", "expected"),
    [("verified", ["boots"]), ("failed", ["fails"]), ("untested", ["other-site", "untested"])],
)
def test_the_boot_filter_reads_each_sites_own_test(client, people, boot, expected):
    """A test at another site with the same image id (ids are unique per site only)
    says nothing about this snapshot."""
    from images.services import boot_test_save
    from portal.models import Site

    other = Site.objects.create(name="devcloud2", display_name="Heidelberg")
    site, alpha = people["site"], people["alpha"]
    rows = {
        name: make_image(site=site, project=alpha, snapshot=True, name=name)
        for name in ("boots", "fails", "untested", "other-site")
    }
    boot_test_save(site=site, openstack_id=rows["boots"].openstack_id, outcome="verified")
    boot_test_save(site=site, openstack_id=rows["fails"].openstack_id, outcome="failed")
    boot_test_save(site=other, openstack_id=rows["other-site"].openstack_id, outcome="verified")
    client.force_login(people["alice"])
    response = client.get(URL, {"boot": boot, "sort": "name"})
    assert [row.record.name for row in response.context["table"].page.object_list] == expected
