"""The participants' access link: an image may only propose it; nobody gets a link
until whoever runs the workshop confirmed it, and only to http(s) on the machine
itself or on a host the operators allow."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from tests.factories import make_image, make_server
from tests.instances.test_launch_access import catalog  # noqa: F401  (fixture)
from tests.instances.test_launch_retry import finish
from workshops.access_links import access_url
from workshops.models import Workshop

RSTUDIO = "https://{ip}:8787/"


def launch_workshop(client, people, catalog, proposal):  # noqa: F811
    image = make_image(
        site=people["site"], name="RStudio", min_disk=20, properties={"portal_access_url": proposal}
    )
    client.force_login(people["alice"])
    data = {"project": people["alpha"].pk, "flavor": catalog["small"].pk, "image": image.pk,
            "count": "1", "participants": "Anna\nBen", "name": "kurs"}  # fmt: skip
    assert client.post(reverse("instances:instance-new"), data).status_code == 302
    workshop = Workshop.objects.get()
    alpha, alice = people["alpha"], people["alice"]
    machines = {
        0: make_server(project=alpha, created_by=alice, name="kurs-anna", addresses=["10.0.0.5"]),
        1: make_server(project=alpha, created_by=alice, name="kurs-ben", addresses=["10.0.0.6"]),
    }
    finish(workshop.launch_job, machines, {0: "active", 1: "active"})
    return workshop


@pytest.fixture
def workshop(client, people, catalog, monkeypatch):  # noqa: F811
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    return launch_workshop(client, people, catalog, RSTUDIO)


def pages(client, workshop) -> dict[str, str]:
    """What participants can be given: the page, the handout, the CSV's access column."""
    got = {
        name: client.get(reverse(f"workshops:workshop-{name}", args=[workshop.pk]))
        for name in ("detail", "handout", "csv")
    }
    assert all(response.status_code == 200 for response in got.values())
    rows = list(csv.reader(io.StringIO(got["csv"].content.decode())))
    return {
        "detail": got["detail"].content.decode(),
        "handout": got["handout"].content.decode(),
        "csv": [row[5] for row in rows[1:]],
    }


def confirm(client, workshop, template):
    url = reverse("workshops:workshop-access", args=[workshop.pk])
    return client.post(url, {"access_url": template, "idempotency_key": "k"})


def test_the_images_link_is_only_proposed_and_gives_no_link(client, workshop):
    assert workshop.access_url_template == RSTUDIO
    assert not workshop.access_url_confirmed
    shown = pages(client, workshop)
    assert "proposed by the image, not confirmed" in shown["detail"]
    assert 'href="https://10.0.0.5' not in shown["detail"]
    assert "10.0.0.5" in shown["detail"]
    assert "Open:" not in shown["handout"]
    assert "10.0.0.5" in shown["handout"]
    assert shown["csv"] == ["", ""]


def test_once_the_organiser_confirms_it_every_participant_gets_their_link(client, workshop):
    response = confirm(client, workshop, RSTUDIO)
    assert response.status_code == 302
    shown = pages(client, workshop)
    assert '<a href="https://10.0.0.5:8787/" rel="noreferrer">' in shown["detail"]
    assert "confirmed by alice" in shown["detail"]
    assert "Open: https://10.0.0.6:8787/" in shown["handout"]
    assert shown["csv"] == ["https://10.0.0.5:8787/", "https://10.0.0.6:8787/"]
    # Emptied: no link again.
    assert confirm(client, workshop, "").status_code == 302
    assert pages(client, workshop)["csv"] == ["", ""]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("javascript:alert(document.cookie)//{ip}", "must start with http:// or https://"),
        ("https://phish.example/{name}", "The host phish.example is not allowed"),
        ("https://{ip}.phish.example/", "The host must be exactly {ip}"),
        ("https://{ip}@phish.example/", "may not contain a user name or password"),
        ("https://{ip}/{user}", "Unknown placeholder {user}"),
        ("https://{ip}:{name}/", "not a valid URL"),
    ],
)
def test_a_link_to_anywhere_but_the_machine_is_refused(client, workshop, template, message):
    response = confirm(client, workshop, template)
    assert response.status_code == 400
    assert message in response.content.decode()
    workshop.refresh_from_db()
    assert workshop.access_url_template == RSTUDIO
    assert not workshop.access_url_confirmed


def test_a_host_the_operators_allow_may_be_used(client, workshop, settings):
    settings.PORTAL_ACCESS_HOSTS = ["gw.example.org"]
    assert confirm(client, workshop, "https://gw.example.org/#/{name}").status_code == 302
    assert pages(client, workshop)["csv"] == [
        "https://gw.example.org/#/kurs-anna", "https://gw.example.org/#/kurs-ben",
    ]  # fmt: skip
    # Allowed no longer: the confirmed link is checked again each time it is made.
    settings.PORTAL_ACCESS_HOSTS = []
    shown = pages(client, workshop)
    assert shown["csv"] == ["", ""]
    assert "The host gw.example.org is not allowed" in shown["detail"]


def test_only_whoever_runs_the_workshop_confirms_its_link(client, people, workshop):
    client.force_login(people["bob"])  # a member who did not launch it
    assert confirm(client, workshop, RSTUDIO).status_code == 403
    assert (
        'name="access_url"'
        not in client.get(reverse("workshops:workshop-detail", args=[workshop.pk])).content.decode()
    )
    workshop.refresh_from_db()
    assert not workshop.access_url_confirmed


def test_a_phishing_proposal_says_why_it_cannot_be_confirmed(
    client,
    people,
    catalog,  # noqa: F811
    monkeypatch,
):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    workshop = launch_workshop(client, people, catalog, "https://phish.example/{name}")
    shown = pages(client, workshop)
    assert "The host phish.example is not allowed" in shown["detail"]
    assert "phish.example" not in shown["handout"]
    assert shown["csv"] == ["", ""]


def test_a_machine_name_or_address_cannot_move_the_link_elsewhere():
    template = "https://{ip}/?machine={name}"
    assert access_url(template, ip="10.0.0.5", name="x/../@evil#") == (
        "https://10.0.0.5/?machine=x%2F..%2F%40evil%23"
    )
    assert access_url(template, ip="evil.example", name="x") == ""
    assert access_url(RSTUDIO, ip="2001:db8::5", name="x") == "https://[2001:db8::5]:8787/"
