"""Workshops run by the portal, through a real worker on devcloud: seats from a
launch with participants, retry of the failed ones, late participants, teardown,
and who may do what."""

from __future__ import annotations

import pytest
from django.urls import reverse

from images.models import BootTest, Image
from instances.launch import instance_launch_request
from instances.launch_rules import launch_check
from instances.models import Flavor
from portal.errors import ActionRefused
from portal.models import Job
from portal.texts import english
from tests.conftest import wait_for_job
from tests.instances.test_instance_new import catalog  # noqa: F401  (fixture)
from workshops.models import Workshop
from workshops.services import seat_rows, workshop_add, workshop_retry, workshop_teardown


def _launch(demo, participants, *, prefix):
    site = demo["sites"]["devcloud"]
    plan = launch_check(
        actor=demo["users"]["alice"], project=demo["projects"]["alpha"],
        flavor=Flavor.objects.get(site=site, name="de.NBI tiny"),
        image=Image.objects.get(site=site, name="Ubuntu-22.04-LTS"),
        prefix=prefix, count=len(participants), participants=participants,
    )  # fmt: skip
    return wait_for_job(instance_launch_request(actor=demo["users"]["alice"], plan=plan), 90)


@pytest.mark.worker
def test_a_workshop_retries_its_failed_seat_adds_a_late_one_and_tears_down(live_demo):
    alice, bob = live_demo["users"]["alice"], live_demo["users"]["bob"]
    devcloud = live_demo["clouds"]["devcloud"]
    devcloud.set_faults({"boot_error": {"server_name": "^ws2-ben$", "count": 1}})
    try:
        job = _launch(live_demo, ["Anna <anna@example.org>", "Ben"], prefix="ws2")
    finally:
        devcloud.set_faults({})
    workshop = Workshop.objects.get(launch_job=job)
    rows = seat_rows(workshop)
    assert [(r.seat.participant, r.seat.email, r.status) for r in rows] == [
        ("Anna", "anna@example.org", "ACTIVE"), ("Ben", "", "ERROR"),
    ]  # fmt: skip

    with pytest.raises(ActionRefused):  # a member who did not launch it
        workshop_retry(workshop=workshop, actor=bob)
    (retry,) = workshop_retry(workshop=workshop, actor=alice)
    assert wait_for_job(retry, 90).status == Job.Status.SUCCEEDED
    assert [r.status for r in seat_rows(workshop)] == ["ACTIVE", "ACTIVE"]

    late = wait_for_job(workshop_add(workshop=workshop, actor=alice, participants=["Anna"]), 90)
    assert late.params["names"] == ["ws2-anna-2"]  # no clash with the first Anna's machine
    assert [r.seat.machine_name for r in seat_rows(workshop)] == [
        "ws2-anna",
        "ws2-ben",
        "ws2-anna-2",
    ]

    with pytest.raises(ActionRefused):
        workshop_teardown(workshop=workshop, actor=bob)
    teardown = wait_for_job(workshop_teardown(workshop=workshop, actor=alice), 90)
    assert english(teardown.result["summary"]) == "Deleted 3."
    assert [r.status for r in seat_rows(workshop)] == ["DELETED"] * 3


def test_a_workshop_from_a_snapshot_that_did_not_boot_needs_a_confirmation(
    client,
    people,
    catalog,  # noqa: F811
    monkeypatch,
):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    gold = catalog["images"]["gold"]
    BootTest.objects.create(
        site=gold.site, openstack_id=gold.openstack_id, outcome="failed", reason="Kernel panic"
    )
    client.force_login(people["alice"])
    data = {"project": people["alpha"].pk, "flavor": catalog["flavors"]["small"].pk,
            "image": gold.pk, "count": "1", "participants": "Anna\nBen"}  # fmt: skip
    response = client.post(reverse("instances:instance-new"), data)
    assert response.status_code == 409
    assert "did not boot in its last test (Kernel panic)" in response.content.decode()
    assert not Job.objects.exists()
    response = client.post(reverse("instances:instance-new"), {**data, "launch_unbootable": "1"})
    assert response.status_code == 302
    assert Workshop.objects.get().seats.count() == 2
    # One machine from it needs no confirmation (a user trying it out).
    single = {**data, "participants": "", "name": "try"}
    assert client.post(reverse("instances:instance-new"), single).status_code == 302


def test_workshop_pages_are_for_project_members_only(
    client,
    people,
    catalog,  # noqa: F811
    monkeypatch,
):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    client.force_login(people["alice"])
    data = {"project": people["alpha"].pk, "flavor": catalog["flavors"]["small"].pk,
            "image": catalog["images"]["gold"].pk, "count": "1", "participants": "Anna\nBen"}  # fmt: skip
    client.post(reverse("instances:instance-new"), data)
    workshop = Workshop.objects.get()
    assert client.get(reverse("workshops:workshop-detail", args=[workshop.pk])).status_code == 200
    client.force_login(people["carol"])  # beta only
    for name in ("workshop-detail", "workshop-csv", "workshop-handout"):
        assert client.get(reverse(f"workshops:{name}", args=[workshop.pk])).status_code == 404
    assert (
        client.post(reverse("workshops:workshop-teardown", args=[workshop.pk])).status_code == 404
    )
    assert workshop not in client.get(reverse("workshops:workshop-list")).context["workshops"]


def test_workshops_are_listed_per_project(client, people, catalog, monkeypatch):  # noqa: F811
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    client.force_login(people["alice"])
    data = {"project": people["alpha"].pk, "flavor": catalog["flavors"]["small"].pk,
            "image": catalog["images"]["gold"].pk, "count": "1", "participants": "Anna\nBen",
            "name": "rna-kurs"}  # fmt: skip
    client.post(reverse("instances:instance-new"), data)
    url = reverse("workshops:workshop-list")
    assert [
        w.name for w in client.get(url, {"project": people["alpha"].pk}).context["workshops"]
    ] == ["rna-kurs"]
    assert client.get(url, {"project": people["beta"].pk}).status_code == 404
    assert client.get(url, {"project": "²"}).status_code == 400
