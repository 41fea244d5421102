"""Every list page's and form's parameters fed arbitrary text and numbers
(hypothesis, bounded): the portal answers 2xx, 3xx or 4xx, never 5xx."""

from __future__ import annotations

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import make_image, make_server

# Text a person or an attacker might type: digits (also non-ASCII ones), huge and
# negative numbers, separators, markup, control characters.
values = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["²", "١٢", "0", "-1", "1e9", "99999999999999999999", "", " ", "%00",
                     "<script>", "'; drop table", "1,2", "None", "null", "\x00"]),
)  # fmt: skip


def params(names: list[str]):
    return st.dictionaries(st.sampled_from(names), values, max_size=len(names))


PAGES = {
    "instances:instance-list": ["q", "status", "project", "site", "flavor", "page", "per_page",
                                "sort", "filtered"],
    "snapshots:snapshot-list": ["q", "name", "project_name", "openstack_id", "status", "site",
                                "page", "per_page", "sort", "job"],
    "images:image-list": ["name", "tag", "site"],
    "instances:instance-new": ["project", "flavor", "image", "count", "participants", "name",
                               "flavor_q", "image_q", "tab"],
    "job-list": ["page"],
    "snapshots:snapshot-create-many": ["selected", "all_matching", "pattern", "restart", "q",
                                       "status", "next"],
}  # fmt: skip
FORMS = {
    "instances:instance-new": ["project", "flavor", "image", "count", "participants", "name",
                               "preview"],
    "snapshots:snapshot-delete": ["selected", "all_matching", "q", "name", "status", "site"],
    "page-size-set": ["key", "per_page", "next"],
    "snapshots:snapshot-create-many": ["selected", "all_matching", "pattern", "restart", "q",
                                       "next", "idempotency_key"],
}  # fmt: skip

FUZZ = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def world(client, people):
    alpha = people["alpha"]
    vm = make_server(project=alpha, created_by=people["bob"])
    make_image(site=people["site"], project=alpha, snapshot=True, created_by=people["bob"])
    client.force_login(people["alice"])
    return {"vm": vm}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_list_pages_never_answer_5xx(client, world, name):
    @FUZZ
    @given(data=params(PAGES[name]), htmx=st.booleans())
    def check(data, htmx):
        headers = {"HX-Request": "true"} if htmx else {}
        response = client.get(reverse(name), data, headers=headers)
        assert response.status_code < 500, (data, response.status_code)

    check()


@pytest.mark.parametrize("name", sorted(FORMS))
def test_forms_never_answer_5xx(client, world, name, monkeypatch):
    monkeypatch.setattr("portal.celery.app.send_task", lambda *a, **k: None)

    @FUZZ
    @given(data=params(FORMS[name]))
    def check(data):
        response = client.post(reverse(name), data)
        assert response.status_code < 500, (data, response.status_code)

    check()


def test_id_pages_never_answer_5xx(client, world):
    vm = world["vm"]

    @FUZZ
    @given(data=params(["poll", "part", "name", "next"]))
    def check(data):
        for url in (
            reverse("instances:instance-row", args=[vm.pk]),
            reverse("instances:instance-detail", args=[vm.pk]),
            reverse("snapshots:snapshot-name-check", args=[vm.pk]),
            reverse("snapshots:snapshot-create", args=[vm.pk]),
        ):
            response = client.get(url, data)
            assert response.status_code < 500, (url, data, response.status_code)

    check()
