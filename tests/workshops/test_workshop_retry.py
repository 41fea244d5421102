"""A workshop's "Retry failed seats" reads the seats' machines as they are now,
confirms what it replaces, and retries one failure once, whichever page asks."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from portal.models import Job
from tests.factories import make_server
from tests.instances.test_launch_access import catalog  # noqa: F401  (fixture)
from tests.instances.test_launch_retry import finish, form_of
from workshops.models import Workshop


@pytest.fixture
def workshop(client, people, catalog, monkeypatch):  # noqa: F811
    """A workshop whose launch ended with Ben's machine still building (it runs now)
    and Cem's in ERROR."""
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    client.force_login(people["alice"])
    data = {"project": people["alpha"].pk, "flavor": catalog["small"].pk,
            "image": catalog["ubuntu"].pk, "count": "1", "participants": "Anna\nBen\nCem",
            "name": "kurs"}  # fmt: skip
    assert client.post(reverse("instances:instance-new"), data).status_code == 302
    workshop = Workshop.objects.get()
    alpha, alice = people["alpha"], people["alice"]
    machines = {
        i: make_server(project=alpha, created_by=alice, name=name, status=status)
        for i, (name, status) in enumerate(
            [("kurs-anna", "ACTIVE"), ("kurs-ben", "ACTIVE"), ("kurs-cem", "ERROR")]
        )
    }
    finish(workshop.launch_job, machines, {0: "active", 2: "failed: No valid host was found."})
    return workshop


def url(workshop, name="workshop-retry"):
    return reverse(f"workshops:{name}", args=[workshop.pk])


def workshop_form(body: str) -> dict:
    return {**form_of(body), "seat": re.findall(r'name="seat" value="(\d+)"', body),
            "upto": re.search(r'name="upto" value="(\d+)"', body).group(1)}  # fmt: skip


def retries():
    return list(Job.objects.filter(params__retry_of__isnull=False))


def test_a_workshop_retry_replaces_the_error_seat_and_leaves_the_running_one(client, workshop):
    page = client.get(url(workshop, "workshop-detail")).content.decode()
    assert "Retry 1 failed seat…" in page  # Ben's machine runs now: not a failed seat
    body = client.get(url(workshop)).content.decode()
    assert "1 ERROR machine will be deleted and launched again" in body
    assert "kurs-cem (Cem)" in body
    assert "kurs-ben (Ben): running, not replaced" in body

    response = client.post(url(workshop), workshop_form(body))
    assert response.status_code == 302
    assert response.url == url(workshop, "workshop-detail")
    (retry,) = retries()
    assert retry.params["names"] == ["kurs-cem"]
    assert [r["name"] for r in retry.params["replaces"]] == ["kurs-cem"]
    seats = {s.participant: (s.job_id, s.job_index) for s in workshop.seats.all()}
    launch = workshop.launch_job_id
    assert seats == {"Anna": (launch, 0), "Ben": (launch, 1), "Cem": (retry.pk, 0)}


def test_a_second_workshop_retry_is_sent_to_the_running_one(client, people, workshop):
    form = workshop_form(client.get(url(workshop)).content.decode())
    client.post(url(workshop), form)
    again = client.post(url(workshop), form)  # the same form again: nothing new
    (retry,) = retries()
    assert again.url == url(workshop, "workshop-detail")
    old_tab = client.post(url(workshop), {**form, "idempotency_key": "another-tab"})
    assert old_tab.status_code == 302
    assert old_tab.url == reverse("job-detail", args=[retry.pk])
    assert retries() == [retry]
    page = client.get(url(workshop, "workshop-detail")).content.decode()
    assert "failed seat…" not in page  # no longer offered while the retry runs


def test_a_retry_from_the_launch_page_moves_the_workshop_seat_too(client, workshop):
    launch_url = reverse("instances:launch-retry", args=[workshop.launch_job_id])
    client.post(launch_url, form_of(client.get(launch_url).content.decode()))
    (retry,) = retries()
    cem = workshop.seats.get(participant="Cem")
    assert (cem.job_id, cem.job_index) == (retry.pk, 0)
    # The workshop's own retry then has nothing left for that failure.
    assert "failed seat…" not in client.get(url(workshop, "workshop-detail")).content.decode()


def test_a_torn_down_workshop_offers_no_retry(client, workshop, people):
    workshop.teardown_job = Job.objects.create(kind="instances.delete", actor=people["alice"])
    workshop.save()
    assert "failed seat…" not in client.get(url(workshop, "workshop-detail")).content.decode()
    response = client.get(url(workshop))
    assert response.status_code == 409
    assert 'name="seat"' not in response.content.decode()
    assert "was torn down" in response.content.decode()


def test_a_workshop_retry_post_needs_the_confirmed_seats(client, workshop):
    assert client.post(url(workshop), {"idempotency_key": "k"}).status_code == 400
    assert client.post(url(workshop), {"seat": "x", "upto": "1"}).status_code == 400
    assert retries() == []
