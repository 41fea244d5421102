"""Every search box and text filter takes at most 200 characters: a longer one is a
400 that says so, never SQLite's "LIKE or GLOB pattern too complex" as a 500
(issue #21)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import make_image, make_server
from tests.instances.test_instance_new import catalog  # noqa: F401  (fixture)

HUGE = "a%_" * 33_334  # 100,002 characters, LIKE's wildcards among them

# (url name, the text parameter) for every list page and the launch page.
SEARCHES = [
    ("instances:instance-list", "q"),
    ("snapshots:snapshot-list", "q"),
    ("snapshots:snapshot-list", "name"),
    ("snapshots:snapshot-list", "project_name"),
    ("snapshots:snapshot-list", "openstack_id"),
    ("images:image-list", "name"),
    ("instances:instance-new", "flavor_q"),
    ("instances:instance-new", "image_q"),
]


@pytest.fixture
def rows(people, catalog):  # noqa: F811
    make_server(project=people["alpha"], created_by=people["alice"])
    make_image(site=people["site"], project=people["alpha"], snapshot=True, name="gold")


@pytest.mark.parametrize(("name", "param"), SEARCHES)
def test_a_100000_character_search_is_a_400_that_says_why(client, people, rows, name, param):
    client.force_login(people["alice"])
    response = client.get(reverse(name), {param: HUGE})
    assert response.status_code == 400
    assert "at most 200 characters" in response.content.decode()


@pytest.mark.parametrize(("name", "param"), SEARCHES)
def test_a_200_character_search_is_answered(client, people, rows, name, param):
    client.force_login(people["alice"])
    response = client.get(reverse(name), {param: "*" + "x" * 199})
    assert response.status_code == 200


def test_a_bulk_action_carrying_a_huge_filter_is_refused(client, people, rows):
    """ "Select all matching" carries the list's filters as hidden fields."""
    client.force_login(people["alice"])
    for name in ("instances:instance-delete", "snapshots:snapshot-delete"):
        response = client.post(reverse(name), {"all_matching": "1", "q": HUGE})
        assert response.status_code == 400, name
        assert "at most 200 characters" in response.content.decode()


def test_the_search_inputs_say_how_long_they_may_be(client, people, rows):
    client.force_login(people["alice"])
    for name in ("instances:instance-list", "snapshots:snapshot-list", "images:image-list"):
        assert 'maxlength="200"' in client.get(reverse(name)).content.decode(), name
