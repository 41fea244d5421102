"""The resume form's flavor question, and what a POST without a flavor may do."""

from __future__ import annotations

import pytest
from django.urls import reverse

from instances.models import Flavor
from portal.models import Job
from tests.factories import make_server


@pytest.fixture
def parked(people):
    alpha = people["alpha"]
    Flavor.objects.create(site=people["site"], openstack_id="f-small", name="de.NBI small",
                          vcpus=2, ram_mib=4096, disk_gb=50)  # fmt: skip
    Flavor.objects.create(site=people["site"], openstack_id="f-big", name="de.NBI big",
                          vcpus=8, ram_mib=16384, disk_gb=100)  # fmt: skip
    make_server(project=alpha, name="running", created_by=people["alice"])
    return make_server(
        project=alpha, name="parked-vm", status="SHELVED_OFFLOADED", vm_state="shelved_offloaded",
        power_state=4, created_by=people["alice"],
    )  # fmt: skip


def _quota(project, *, used_cores):
    project.quota_instances, project.quota_cores, project.quota_ram_mib = 10, 3, 100_000
    project.used_instances, project.used_cores, project.used_ram_mib = 2, used_cores, 8192
    project.save()


def test_a_cloud_still_counting_the_parked_machine_lets_it_resume_on_its_flavor(
    client, people, parked
):
    _quota(people["alpha"], used_cores=4)  # Nova 34's default: both machines count
    client.force_login(people["alice"])
    page = client.get(reverse("instances:instance-resume", args=[parked.pk])).content.decode()
    assert "Resume on de.NBI small" in page


def test_a_quota_that_cannot_hold_it_again_asks_for_another_flavor(client, people, parked):
    _quota(people["alpha"], used_cores=2)  # placement counting: the parked one is freed
    client.force_login(people["alice"])
    url = reverse("instances:instance-resume", args=[parked.pk])
    page = client.get(url).content.decode()
    assert "quota cannot hold it again on de.NBI small" in page
    assert "Resume on de.NBI small" not in page
    assert "de.NBI big: 8 vCPUs" in page  # the choices: usable, big enough for the disk
    refused = client.post(url, {"idempotency_key": "k1"})
    assert refused.status_code == 409
    assert Job.objects.count() == 0
