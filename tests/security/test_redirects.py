"""Every `next` a request carries is followed only when it is a path on this site;
anything else (a bare word that `redirect()` would take for a view name, another
host, a script) falls back to the page's own default, never a 500 (issue #21)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import make_image, make_server

BAD_NEXT = [
    "abc",
    "-1",
    "job-detail",
    "//evil.example/",
    "/\\evil",
    "https://evil.example/",
    "javascript:alert(1)",
    "/instances/\r\nSet-Cookie: x=1",
]
GOOD_NEXT = "/snapshots/?page=2"
KEY = "a-form-already-sent"


@pytest.fixture
def bob(client, people, monkeypatch, django_capture_on_commit_callbacks):
    """bob, logged in, with one job started by the form key KEY: posting that key
    again takes each view's "already started" branch, which redirects back."""
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    vm = make_server(project=people["alpha"], created_by=people["bob"])
    client.force_login(people["bob"])
    with django_capture_on_commit_callbacks(execute=True):
        stop = reverse("instances:instance-stop", args=[vm.pk])
        assert client.post(stop, {"idempotency_key": KEY}).status_code == 302
    return {"client": client, "vm": vm}


def posts(people, bob):
    """(url, form, fallback) for each view that redirects to a `next`."""
    vm = bob["vm"]
    queued = make_image(
        site=people["site"], project=people["alpha"], snapshot=True,
        created_by=people["bob"], status="queued",
    )  # fmt: skip
    detail = reverse("instances:instance-detail", args=[vm.pk])
    return [
        (reverse("page-size-set"), {"key": "snapshots", "per_page": "10"}, reverse("home")),
        (reverse("instances:instance-stop", args=[vm.pk]), {"idempotency_key": KEY}, detail),
        (reverse("instances:instance-start", args=[vm.pk]), {"idempotency_key": KEY}, detail),
        (
            reverse("snapshots:snapshot-create-many"),
            {"idempotency_key": KEY, "selected": [vm.pk]},
            reverse("instances:instance-list"),
        ),
        # Refused (the snapshot is not active): back, with the reason as a message.
        (
            reverse("snapshots:snapshot-verify", args=[queued.pk]),
            {},
            reverse("snapshots:snapshot-list"),
        ),
    ]


@pytest.mark.parametrize("target", BAD_NEXT)
def test_a_next_that_is_not_a_path_here_goes_to_the_fallback(people, bob, target):
    client = bob["client"]
    for url, form, fallback in posts(people, bob):
        response = client.post(url, {**form, "next": target})
        assert (response.status_code, response["Location"]) == (302, fallback), url


def test_a_path_on_this_site_is_followed(people, bob):
    client = bob["client"]
    for url, form, _fallback in posts(people, bob):
        response = client.post(url, {**form, "next": GOOD_NEXT})
        assert (response.status_code, response["Location"]) == (302, GOOD_NEXT), url


@pytest.mark.parametrize("target", BAD_NEXT)
def test_login_and_logout_fall_back_on_a_bad_next(client, people, target):
    login = reverse("login")
    response = client.post(login, {"username": "bob", "password": "bob", "next": target})
    assert (response.status_code, response["Location"]) == (302, reverse("instances:instance-list"))
    # The login page does not offer it in its form either.
    assert client.get(login, {"next": target}).context["next"] == ""
    response = client.post(reverse("logout"), {"next": target})
    assert (response.status_code, response["Location"]) == (302, reverse("login"))


def test_login_and_logout_follow_a_path_on_this_site(client, people):
    response = client.post(
        reverse("login"), {"username": "bob", "password": "bob", "next": GOOD_NEXT}
    )
    assert (response.status_code, response["Location"]) == (302, GOOD_NEXT)
    response = client.post(reverse("logout"), {"next": GOOD_NEXT})
    assert (response.status_code, response["Location"]) == (302, GOOD_NEXT)
