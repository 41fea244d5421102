"""Late participants and retried seats launch on what the workshop launched on,
and only while the project may still use it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.errors import ActionRefused
from portal.models import Job
from tests.instances.test_launch_access import catalog, network  # noqa: F401  (fixture)
from workshops.models import Workshop
from workshops.services import workshop_add, workshop_retry


@pytest.fixture
def gpu_workshop(client, people, catalog, monkeypatch):  # noqa: F811
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    network(people["site"], "private", project="p-admin", shared=True)
    lab = network(people["site"], "alphalab", project="p-alpha")
    client.force_login(people["alice"])
    data = {"project": people["alpha"].pk, "flavor": catalog["gpu"].pk,
            "image": catalog["ubuntu"].pk, "count": "1", "participants": "Anna\nBen",
            "network": lab.pk}  # fmt: skip
    assert client.post(reverse("instances:instance-new"), data).status_code == 302
    workshop = Workshop.objects.get()
    assert workshop.launch_job.params["network_ids"] == ["n-alphalab"]
    return workshop


def test_late_participants_join_the_workshops_network(people, gpu_workshop):
    job = workshop_add(workshop=gpu_workshop, actor=people["alice"], participants=["Cem"])
    assert job.params["network_ids"] == ["n-alphalab"]
    assert job.params["flavor_id"] == "f-gpu"


def test_no_late_participant_or_retry_once_the_flavor_is_not_the_projects(
    people,
    catalog,  # noqa: F811
    gpu_workshop,
):
    catalog["gpu"].access_project_ids = ["p-beta"]
    catalog["gpu"].save()
    with pytest.raises(
        ActionRefused, match=r"Flavor de\.NBI gpu is not available in project alpha"
    ):
        workshop_add(workshop=gpu_workshop, actor=people["alice"], participants=["Cem"])

    launch = gpu_workshop.launch_job
    launch.status = Job.Status.FAILED
    launch.result = {"failed_seats": [0, 1]}
    launch.save()
    with pytest.raises(
        ActionRefused, match=r"Flavor de\.NBI gpu is not available in project alpha"
    ):
        workshop_retry(workshop=gpu_workshop, actor=people["alice"])
    assert Job.objects.count() == 1
