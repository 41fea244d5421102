"""List pages cost the same number of queries for 5 rows as for 50."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import make_image, make_server


def queries_for(client, url) -> int:
    client.get(url, {"per_page": "50"})  # first visit remembers the page size
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, {"per_page": "50"}).status_code == 200
    return len(captured)


@pytest.mark.parametrize("page", ["instances:instance-list", "snapshots:snapshot-list"])
def test_queries_do_not_grow_with_rows(client, people, page):
    def add(n):
        for _ in range(n):
            server = make_server(project=people["alpha"], created_by=people["bob"])
            make_image(site=people["site"], project=people["alpha"], snapshot=True,
                       created_by=people["bob"], source_server_openstack_id=server.openstack_id)  # fmt: skip

    client.force_login(people["bob"])
    add(5)
    few = queries_for(client, reverse(page))
    add(45)
    many = queries_for(client, reverse(page))
    assert many == few
