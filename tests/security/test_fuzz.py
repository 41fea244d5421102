"""Every list page's parameters and every POST endpoint's fields, hidden ones too
(idempotency_key, next, confirmed, upto, all_matching, selected, the filters a
confirmation carries), fed arbitrary text and numbers (hypothesis, bounded): the
portal answers 2xx, 3xx or 4xx, never 5xx. `test_every_post_endpoint_is_fuzzed`
reads the urlconf, so a new endpoint cannot be forgotten here."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instances.launch import instance_launch_request
from instances.launch_rules import launch_check
from instances.models import Flavor
from portal.models import Job
from portal.ssh_keys import ssh_key_add
from snapshots.models import Snapshot
from tests.factories import make_image, make_server
from tests.ssh_keys import ED25519
from workshops.models import Workshop

# Text a person or an attacker might type: digits (also non-ASCII ones), huge and
# negative numbers, separators, markup, control characters, huge strings, and the
# bare words and addresses a `next` or an id field might be given.
values = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["²", "١٢", "0", "-1", "1e9", "99999999999999999999", "", " ", "%00",
                     "<script>", "'; drop table", "1,2", "None", "null", "\x00", "abc", "1",
                     "//evil.example", "https://evil.example/", "/jobs/", "javascript:alert(1)",
                     "2026-12-05T10:00:00+00:00", "x" * 100_000, "%_*" * 33_334]),
)  # fmt: skip


def params(names: list[str]):
    return st.dictionaries(st.sampled_from(names), values, max_size=len(names))


PAGES = {
    "instances:instance-list": ["q", "status", "project", "site", "flavor", "page", "per_page",
                                "sort", "filtered"],
    "snapshots:snapshot-list": ["q", "name", "project_name", "openstack_id", "status", "site",
                                "boot", "page", "per_page", "sort", "job"],
    "images:image-list": ["name", "tag", "site"],
    "instances:instance-new": ["project", "flavor", "image", "count", "participants", "name",
                               "flavor_q", "image_q", "tab", "network", "ssh_key"],
    "job-list": ["page"],
    "workshops:workshop-list": ["project"],
    "instances:instance-delete": ["selected", "all_matching", "q", "status", "project", "site",
                                  "flavor", "filtered", "next"],
    "snapshots:snapshot-delete": ["selected", "all_matching", "project", "q", "name",
                                  "project_name", "openstack_id", "status", "site", "boot",
                                  "sort", "page"],
    "snapshots:snapshot-create-many": ["selected", "all_matching", "pattern", "restart", "q",
                                       "status", "next"],
    "instances:instance-park-many": ["selected", "all_matching", "q", "status", "next"],
    "instances:instance-resume-many": ["selected", "all_matching", "q", "status", "next"],
}  # fmt: skip

# The list filters a "select all matching" confirmation carries as hidden fields.
SERVER_FILTERS = ["q", "status", "project", "site", "flavor", "filtered"]
SNAPSHOT_FILTERS = ["q", "name", "project_name", "openstack_id", "status", "site", "boot", "sort"]

# Every URL name that accepts POST: (the object its id names, or None; the fields).
POSTS = {
    "page-size-set": (None, ["key", "per_page", "next"]),
    "set_language": (None, ["language", "next"]),
    "instances:instance-new": (None, ["project", "flavor", "image", "count", "participants",
                                      "name", "preview", "network", "confirmed", "flavor_q",
                                      "image_q", "tab", "idempotency_key", "ssh_key"]),
    "instances:instance-delete": (None, ["selected", "all_matching", "upto", "confirmed",
                                         "idempotency_key", "next", *SERVER_FILTERS]),
    "instances:instance-stop": ("server", ["idempotency_key", "next"]),
    "instances:instance-start": ("server", ["idempotency_key", "next"]),
    "instances:instance-park": ("server", ["verify", "idempotency_key", "next"]),
    "instances:instance-resume": ("server", ["flavor", "idempotency_key", "next"]),
    "instances:instance-park-many": (None, ["selected", "all_matching", "next",
                                            "idempotency_key", *SERVER_FILTERS]),
    "instances:instance-resume-many": (None, ["selected", "all_matching", "next",
                                              "idempotency_key", *SERVER_FILTERS]),
    "instances:launch-retry": ("launch", ["seat", "idempotency_key"]),
    "instances:launch-failed-delete": ("launch", ["seat", "idempotency_key"]),
    "snapshots:snapshot-create": ("server", ["name", "description", "restart", "verify",
                                             "idempotency_key"]),
    "snapshots:snapshot-create-many": (None, ["selected", "all_matching", "pattern", "restart",
                                              "next", "idempotency_key", *SERVER_FILTERS]),
    "snapshots:snapshot-delete": (None, ["selected", "all_matching", "project", "upto",
                                         "confirmed", "idempotency_key", "page", "job",
                                         *SNAPSHOT_FILTERS]),
    "snapshots:snapshot-verify": ("snapshot", ["idempotency_key", "next"]),
    "images:image-copy": ("snapshot", ["target", "boot_test", "idempotency_key"]),
    "workshops:workshop-retry": ("workshop", ["seat", "upto", "idempotency_key"]),
    "workshops:workshop-add": ("workshop", ["participants", "idempotency_key"]),
    "workshops:workshop-teardown": ("workshop", ["idempotency_key"]),
    "workshops:workshop-park": ("workshop", ["idempotency_key"]),
    "workshops:workshop-resume": ("workshop", ["idempotency_key"]),
    "workshops:workshop-access": ("workshop", ["access_url", "idempotency_key"]),
    "workshops:workshop-instructions": ("workshop", ["instructions", "idempotency_key"]),
    "profile-keys": (None, ["public_key", "name"]),
    "profile-key-default": ("ssh_key", ["idempotency_key"]),
    "profile-key-delete": ("ssh_key", ["idempotency_key"]),
}  # fmt: skip

# POST endpoints not fuzzed here, and why.
NOT_FUZZED = {
    "home": "a RedirectView: any method is the same redirect to the instance list",
    "login": "Django's LoginView behind django-axes (tests/security/test_production.py)",
    "logout": "Django's LogoutView: it would end the fuzzing session",
}

FUZZ = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def world(client, people, monkeypatch):
    """One of everything alice (admin of alpha) may act on: a machine, a snapshot,
    a finished workshop launch with a failed seat, and its workshop."""
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    alpha, alice, site = people["alpha"], people["alice"], people["site"]
    alpha.quota_instances, alpha.quota_cores, alpha.quota_ram_mib = 10, 100, 10**6
    alpha.save()
    vm = make_server(project=alpha, created_by=people["bob"])
    image = make_image(site=site, project=alpha, snapshot=True, created_by=people["bob"])
    flavor = Flavor.objects.create(
        site=site, openstack_id="f-small", name="de.NBI small", vcpus=2, ram_mib=4096, disk_gb=50
    )
    plan = launch_check(
        actor=alice, project=alpha, flavor=flavor,
        image=make_image(site=site, name="Ubuntu-22.04-LTS", min_disk=20),
        prefix="ws", count=2, participants=["Anna", "Ben"],
    )  # fmt: skip
    launch = instance_launch_request(actor=alice, plan=plan)
    anna = make_server(project=alpha, created_by=alice, name="ws-anna")
    launch.state = {"servers": {"0": anna.openstack_id}, "outcomes": {"0": "active", "1": "failed"}}
    launch.result = {"failed_seats": [1]}
    launch.status, launch.finished_at = Job.Status.FAILED, timezone.now()
    launch.save()
    client.force_login(alice)
    return {
        "server": vm, "snapshot": Snapshot.objects.get(pk=image.pk), "launch": launch,
        "workshop": Workshop.objects.get(launch_job=launch),
        "ssh_key": ssh_key_add(user=alice, text=ED25519),
    }  # fmt: skip


def _never_5xx(response, *context) -> None:
    assert response.status_code < 500, (*context, response.status_code)


@pytest.mark.parametrize("name", sorted(PAGES))
def test_list_pages_never_answer_5xx(client, world, name):
    @FUZZ
    @given(data=params(PAGES[name]), htmx=st.booleans())
    def check(data, htmx):
        headers = {"HX-Request": "true"} if htmx else {}
        _never_5xx(client.get(reverse(name), data, headers=headers), data)

    check()


@pytest.mark.parametrize("name", sorted(POSTS))
def test_post_endpoints_never_answer_5xx(client, world, name):
    target, fields = POSTS[name]
    url = reverse(name, args=[world[target].pk]) if target else reverse(name)

    @FUZZ
    @given(data=params(fields), htmx=st.booleans())
    def check(data, htmx):
        headers = {"HX-Request": "true"} if htmx else {}
        _never_5xx(client.post(url, data, headers=headers), data)

    check()


def test_id_pages_never_answer_5xx(client, world):
    vm = world["server"]

    @FUZZ
    @given(data=params(["poll", "part", "name", "next"]))
    def check(data):
        for url in (
            reverse("instances:instance-row", args=[vm.pk]),
            reverse("instances:instance-detail", args=[vm.pk]),
            reverse("snapshots:snapshot-name-check", args=[vm.pk]),
            reverse("snapshots:snapshot-create", args=[vm.pk]),
        ):
            _never_5xx(client.get(url, data), url, data)

    check()


def _url_names(patterns=None, namespace: str = ""):
    """(name, its URL with every path argument 1) for each named URL of the portal."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                continue
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _url_names(entry.url_patterns, inner)
        elif isinstance(entry, URLPattern) and entry.name:
            name = namespace + entry.name
            yield name, reverse(name, kwargs=dict.fromkeys(entry.pattern.converters, 1))


def test_every_post_endpoint_is_fuzzed(client, people):
    """An OPTIONS request tells which methods a view allows (`require_POST` and
    friends answer 405 with an Allow header): every one allowing POST is in POSTS
    or NOT_FUZZED. A view without a method decorator counts as allowing POST."""
    client.force_login(people["admin"])
    posting = set()
    for name, url in _url_names():
        response = client.options(url)
        # A class-based view answers OPTIONS itself, with an Allow header too.
        allowed = response.headers.get("Allow", "POST")
        if "POST" in allowed:
            posting.add(name)
    assert posting, "no POST endpoint found: the enumeration is broken"
    assert posting - set(POSTS) - set(NOT_FUZZED) == set()
    assert set(POSTS) <= posting, set(POSTS) - posting  # the table names no stale endpoint
