"""Participants' personal data: the emails stay with whoever runs the workshop,
never reach the cloud, and are deleted a while after the teardown."""

from __future__ import annotations

import pytest
from django.urls import reverse

from instances.jobs import step_launch_create
from portal import cloud
from tests.instances.test_launch_access import catalog  # noqa: F401  (fixture)
from workshops.models import Workshop


@pytest.fixture
def workshop(client, people, catalog, monkeypatch):  # noqa: F811
    monkeypatch.setattr("portal.celery.app.send_task", lambda *a, **k: None)
    client.force_login(people["alice"])
    data = {"project": people["alpha"].pk, "flavor": catalog["small"].pk,
            "image": catalog["ubuntu"].pk, "count": "1", "name": "kurs",
            "participants": "Anna Example <anna@example.org>\nBen"}  # fmt: skip
    assert client.post(reverse("instances:instance-new"), data).status_code == 302
    client.logout()
    return Workshop.objects.get()


def test_only_the_participants_name_goes_into_the_machines_metadata(workshop, monkeypatch):
    sent = []

    def server_create(site, **kwargs):
        sent.append(kwargs["metadata"])
        raise cloud.BadRequest("Quota exceeded")  # the metadata is all this test needs

    monkeypatch.setattr(cloud, "server_create", server_create)
    step_launch_create(workshop.launch_job)
    assert [metadata["participant"] for metadata in sent] == ["Anna Example", "Ben"]
    assert not any("example.org" in str(value) for value in sent[0].values())
