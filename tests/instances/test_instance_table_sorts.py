"""The overview's sorts: each header that offers one orders the rows by it, ties
in a fixed order; the headers that offer none (a value read through a join, which
no index orders) say why, and a crafted `?sort=` for them is ignored. (That each
offered sort is walked from an index: tests/portal/test_list_indexes.py.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from instances.tables import ServerTable
from tests.factories import make_server

URL = reverse("instances:instance-list")
NOT_SORTABLE = {"project", "site", "created_by"}


def ids(response) -> list[int]:
    return [row.record.pk for row in response.context["table"].page.object_list]


def test_the_overview_offers_the_sorts_an_index_answers():
    offered = {c.name for c in ServerTable([]).columns if c.orderable}
    assert offered == {"name", "status", "flavor", "created_at"}


@pytest.mark.parametrize("sort", ["name", "flavor"])
def test_ties_keep_the_id_order_in_both_directions(client, people, sort):
    when = timezone.now()
    alike = [make_server(project=people["alpha"], name="same", created_at=when).pk
             for _ in range(12)]  # fmt: skip
    client.force_login(people["alice"])
    for direction, expected in ((sort, sorted(alike)), (f"-{sort}", sorted(alike, reverse=True))):
        first = ids(client.get(URL, {"sort": direction, "per_page": 10}))
        second = ids(client.get(URL, {"sort": direction, "per_page": 10, "page": 2}))
        assert first + second == expected, direction


def test_headers_without_a_sort_say_why(client, people):
    make_server(project=people["alpha"])
    client.force_login(people["alice"])
    body = client.get(URL).content.decode()
    for column in NOT_SORTABLE:
        assert f"sort={column}" not in body
    assert 'title="Not sortable: filter by project instead."' in body


@pytest.mark.parametrize("sort", [*sorted(NOT_SORTABLE), "-created_by"])
def test_a_crafted_sort_without_a_header_is_ignored(client, people, sort):
    now = timezone.now()
    newest = make_server(project=people["beta"], name="b", created_at=now)
    oldest = make_server(project=people["alpha"], name="a", created_at=now - timedelta(hours=1))
    client.force_login(people["admin"])
    response = client.get(URL, {"sort": sort})
    assert response.status_code == 200
    assert ids(response) == [newest.pk, oldest.pk]
