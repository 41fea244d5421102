"""Private flavors and several networks, end to end: the page, the job, devcloud."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from images.models import Image
from instances.launch import instance_launch_request
from instances.launch_rules import launch_check
from instances.models import Flavor, Network, Server
from operations.sync import site_sync
from portal import cloud
from portal.jobs import job_create
from portal.models import Job
from portal.texts import english
from tests.conftest import sdk_connection, wait_for_job

pytestmark = pytest.mark.worker

NEW = reverse("instances:instance-new")


def _creates(devcloud) -> int:
    """Nova server creates devcloud has answered so far."""
    lines = Path(devcloud.access_log_path).read_text(encoding="utf-8").splitlines()
    return sum(1 for line in lines if " POST /compute/v2.1/servers " in line)


def _ubuntu(site):
    return Image.objects.get(site=site, name="Ubuntu-22.04-LTS", deleted_at__isnull=True)


def test_the_gpu_flavor_is_mirrored_with_its_access_list(demo, client):
    site = demo["sites"]["devcloud"]
    gpu = Flavor.objects.get(site=site, name="de.NBI gpu")
    assert not gpu.is_public
    assert gpu.access_project_ids == [demo["projects"]["alpha"].openstack_id]
    assert Flavor.objects.get(site=site, name="de.NBI small").access_project_ids == []

    client.force_login(demo["users"]["carol"])
    assert "de.NBI gpu" not in client.get(NEW).content.decode()
    assert "de.NBI gpu" not in client.get(reverse("instances:instance-list")).content.decode()
    refused = client.post(
        NEW,
        {"project": demo["projects"]["beta"].pk, "flavor": gpu.pk, "image": _ubuntu(site).pk,
         "count": "1"},
    )  # fmt: skip
    assert refused.status_code == 400
    assert Job.objects.count() == 0


def test_a_job_for_beta_on_the_gpu_flavor_fails_its_check_without_asking_nova(live_demo):
    """A job made without the page (an old request, a bug): the check step refuses."""
    site = live_demo["sites"]["devcloud"]
    beta = live_demo["projects"]["beta"]
    gpu = Flavor.objects.get(site=site, name="de.NBI gpu")
    image = _ubuntu(site)
    devcloud = live_demo["clouds"]["devcloud"]
    before = _creates(devcloud)
    job = job_create(
        kind="instances.launch", actor=live_demo["users"]["carol"], project=beta, site=site,
        target_image_id=image.openstack_id,
        params={"prefix": "gpu", "names": ["gpu-sneak"], "participants": [],
                "flavor_id": gpu.openstack_id, "flavor_pk": gpu.pk, "image_pk": image.pk,
                "image_id": image.openstack_id, "network_ids": None},
    )  # fmt: skip
    job = wait_for_job(job, timeout=60)
    assert job.status == Job.Status.FAILED
    assert "Flavor de.NBI gpu is not available in project beta." in english(job.error)
    check = next(s for s in job.steps if s["name"] == "check")
    assert check["status"] == "failed"
    assert _creates(devcloud) == before
    assert cloud.server_find("devcloud", project_id=beta.openstack_id, name="gpu-sneak") == []


def test_alpha_launches_on_the_gpu_flavor(live_demo):
    site = live_demo["sites"]["devcloud"]
    alpha = live_demo["projects"]["alpha"]
    conn = sdk_connection(live_demo["clouds"])
    conn.compute.update_quota_set(alpha.openstack_id, instances=200, cores=400, ram=4 * 1024**2)
    from instances.services import project_quota_refresh

    project_quota_refresh(alpha)
    plan = launch_check(
        actor=live_demo["users"]["alice"], project=alpha,
        flavor=Flavor.objects.get(site=site, name="de.NBI gpu"), image=_ubuntu(site),
        prefix="gpu-ok", count=1, participants=[],
    )  # fmt: skip
    job = wait_for_job(instance_launch_request(actor=live_demo["users"]["alice"], plan=plan))
    try:
        assert job.status == Job.Status.SUCCEEDED, job.error
        server = Server.objects.get(site=site, name="gpu-ok", deleted_at__isnull=True)
        assert server.status == "ACTIVE"
        assert server.flavor_name == "de.NBI gpu"
    finally:
        for server in cloud.server_find("devcloud", project_id=alpha.openstack_id, name="gpu-ok"):
            cloud.server_delete("devcloud", server_id=server.id)


@pytest.fixture
def beta_lab(live_demo):
    """A second network for beta (the shared `private` is the first): until it is
    gone again, "auto" would be a 409 for every server of beta."""
    conn = sdk_connection(live_demo["clouds"])
    beta = live_demo["projects"]["beta"]
    lab = conn.network.create_network(name="lab", project_id=beta.openstack_id)
    site = live_demo["sites"]["devcloud"]
    site_sync(site, full=False)
    yield lab
    for server in conn.compute.servers(all_projects=True, project_id=beta.openstack_id):
        if server.name.startswith("lab-"):
            conn.compute.delete_server(server)
    conn.network.delete_network(lab)
    site_sync(site, full=False)


def test_with_two_networks_the_launch_asks_and_boots_on_the_chosen_one(
    live_demo, beta_lab, client, settings
):
    site = live_demo["sites"]["devcloud"]
    beta = live_demo["projects"]["beta"]
    client.force_login(live_demo["users"]["carol"])
    page = client.get(NEW)
    assert [n.name for n in page.context["networks"]] == ["lab", "private"]
    assert 'name="network" required' in page.content.decode()

    data = {"project": beta.pk, "flavor": Flavor.objects.get(site=site, name="de.NBI tiny").pk,
            "image": _ubuntu(site).pk, "count": "1", "name": "lab-vm"}  # fmt: skip
    missing = client.post(NEW, data)
    assert missing.status_code == 400
    assert "Choose the network the new machines join." in missing.content.decode()
    assert Job.objects.count() == 0

    lab = Network.objects.get(site=site, openstack_id=beta_lab.id)
    response = client.post(NEW, {**data, "network": lab.pk})
    assert response.status_code == 302
    job = wait_for_job(Job.objects.get(), timeout=60)
    assert job.status == Job.Status.SUCCEEDED, job.error
    (server,) = cloud.server_find("devcloud", project_id=beta.openstack_id, name="lab-vm")
    raw = sdk_connection(live_demo["clouds"]).compute.get_server(server.id)
    assert list(raw.addresses) == ["lab"]

    # Configured for the project, or for the site: no question any more.
    beta.network_ids = "lab"
    beta.save()
    assert 'id="id_network"' not in client.get(NEW).content.decode()
    beta.network_ids = ""
    beta.save()
    settings.PORTAL_SITE_NETWORKS = f"devcloud={beta_lab.id}"
    assert 'id="id_network"' not in client.get(NEW).content.decode()


def test_a_job_whose_network_is_gone_fails_its_check_before_creating(live_demo, beta_lab):
    site = live_demo["sites"]["devcloud"]
    beta = live_demo["projects"]["beta"]
    plan = launch_check(
        actor=live_demo["users"]["carol"], project=beta,
        flavor=Flavor.objects.get(site=site, name="de.NBI tiny"), image=_ubuntu(site),
        prefix="lab-late", count=1, participants=[], network_ids=[beta_lab.id],
    )  # fmt: skip
    sdk_connection(live_demo["clouds"]).network.delete_network(beta_lab)
    devcloud = live_demo["clouds"]["devcloud"]
    before = _creates(devcloud)
    job = wait_for_job(instance_launch_request(actor=live_demo["users"]["carol"], plan=plan))
    assert job.status == Job.Status.FAILED
    assert "Network lab is not available in project beta." in english(job.error)
    assert _creates(devcloud) == before


def test_the_gateway_lists_networks_and_private_flavors_access(clouds):
    (network,) = cloud.network_list("devcloud")
    assert (network.name, network.shared, network.external) == ("private", True, False)
    flavors = {f.name: f for f in cloud.flavor_list("devcloud")}
    assert flavors["de.NBI small"].access_project_ids == ()
    (alpha,) = flavors["de.NBI gpu"].access_project_ids
    assert alpha in {p.id for p in cloud.project_list("devcloud") if p.name == "alpha"}
