"""What a project may launch on: private flavors only where their access list says,
and the network: configured, the only one, or asked for when there are several."""

from __future__ import annotations

import pytest
from django.urls import reverse

from instances.launch_rules import launch_check
from instances.models import Flavor, Network
from portal.errors import ActionRefused
from portal.models import Job
from tests.factories import make_image

NEW = reverse("instances:instance-new")
LIST = reverse("instances:instance-list")


@pytest.fixture
def catalog(people):
    site = people["site"]
    for project in (people["alpha"], people["beta"]):
        project.quota_instances, project.quota_cores, project.quota_ram_mib = 10, 100, 10**6
        project.save()
    return {
        "small": Flavor.objects.create(
            site=site, openstack_id="f-small", name="de.NBI small", vcpus=2, ram_mib=4096,
            disk_gb=50,
        ),
        "gpu": Flavor.objects.create(
            site=site, openstack_id="f-gpu", name="de.NBI gpu", vcpus=12, ram_mib=65536,
            disk_gb=50, is_public=False, access_project_ids=["p-alpha"],
        ),
        "ubuntu": make_image(site=site, name="Ubuntu-22.04-LTS", min_disk=20),
    }  # fmt: skip


@pytest.fixture
def no_tasks(monkeypatch):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)


def network(site, name, *, project="", shared=False, external=False):
    return Network.objects.create(
        site=site, openstack_id=f"n-{name}", name=name, project_openstack_id=project,
        shared=shared, external=external,
    )  # fmt: skip


def launch_data(people, catalog, flavor="small", **extra):
    return {"project": people["beta"].pk, "flavor": catalog[flavor].pk,
            "image": catalog["ubuntu"].pk, "count": "1", **extra}  # fmt: skip


# --- Private flavors -------------------------------------------------------------


def test_the_launch_page_offers_a_private_flavor_only_in_projects_on_its_list(
    client, people, catalog
):
    client.force_login(people["carol"])
    assert "de.NBI gpu" not in client.get(NEW).content.decode()
    client.force_login(people["alice"])
    assert "de.NBI gpu" in client.get(NEW, {"project": people["alpha"].pk}).content.decode()


def test_the_instance_filter_names_a_private_flavor_only_to_those_who_may_use_it(
    client, people, catalog
):
    client.force_login(people["carol"])
    body = client.get(LIST).content.decode()
    assert "de.NBI small" in body
    assert "de.NBI gpu" not in body
    for user in ("alice", "admin"):
        client.force_login(people[user])
        assert "de.NBI gpu" in client.get(LIST).content.decode()


def test_a_post_with_a_private_flavor_of_another_project_is_refused_and_makes_no_job(
    client, people, catalog, no_tasks
):
    client.force_login(people["carol"])
    response = client.post(NEW, launch_data(people, catalog, flavor="gpu"))
    assert response.status_code == 400
    assert "Choose one of the listed flavors" in response.content.decode()
    assert Job.objects.count() == 0


def test_launch_check_refuses_the_flavor_outside_its_access_list(people, catalog):
    def check(user, project):
        return launch_check(
            actor=people[user], project=people[project], flavor=catalog["gpu"],
            image=catalog["ubuntu"], prefix="", count=1, participants=[],
        )  # fmt: skip

    with pytest.raises(ActionRefused) as refused:
        check("carol", "beta")
    assert refused.value.message == "Flavor de.NBI gpu is not available in project beta."
    assert refused.value.status == 400
    assert check("alice", "alpha").flavor == catalog["gpu"]


# --- Networks -----------------------------------------------------------------------


@pytest.fixture
def two_networks(people):
    site = people["site"]
    return {
        "private": network(site, "private", project="p-admin", shared=True),
        "lab": network(site, "lab", project="p-beta"),
        # Not beta's to use: another project's, and an external (floating IP) one.
        "alphanet": network(site, "alphanet", project="p-alpha"),
        "public": network(site, "public", project="p-admin", shared=True, external=True),
    }


def test_with_several_networks_the_page_asks_for_one(client, people, catalog, two_networks):
    client.force_login(people["carol"])
    response = client.get(NEW)
    body = response.content.decode()
    assert '<select class="form-select" id="id_network" name="network" required>' in body
    assert [n.name for n in response.context["networks"]] == ["lab", "private"]
    assert "alphanet" not in body
    assert ">public" not in body


def test_a_post_without_the_network_is_a_form_error_and_makes_no_job(
    client, people, catalog, two_networks, no_tasks
):
    client.force_login(people["carol"])
    response = client.post(NEW, launch_data(people, catalog))
    assert response.status_code == 400
    assert "Choose the network the new machines join." in response.content.decode()
    other = client.post(NEW, launch_data(people, catalog, network=two_networks["alphanet"].pk))
    assert other.status_code == 400
    assert "Choose one of the listed networks." in other.content.decode()
    assert Job.objects.count() == 0


def test_the_chosen_network_goes_into_the_job(
    client, people, catalog, two_networks, no_tasks, django_capture_on_commit_callbacks
):
    client.force_login(people["carol"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(NEW, launch_data(people, catalog, network=two_networks["lab"].pk))
    assert response.status_code == 302
    assert Job.objects.get().params["network_ids"] == ["n-lab"]


@pytest.mark.parametrize("where", ["project", "site"])
def test_a_configured_network_makes_the_question_disappear(
    client, people, catalog, two_networks, no_tasks, settings, where
):
    if where == "project":
        people["beta"].network_ids = "n-lab"  # by id
        people["beta"].save()
        expected = ["n-lab"]
    else:
        settings.PORTAL_SITE_NETWORKS = "other=x;devcloud=private"  # by name
        expected = ["n-private"]
    client.force_login(people["carol"])
    assert 'id="id_network"' not in client.get(NEW).content.decode()
    assert client.post(NEW, launch_data(people, catalog)).status_code == 302
    assert Job.objects.get().params["network_ids"] == expected


def test_the_projects_setting_comes_before_the_sites(people, catalog, two_networks, settings):
    settings.PORTAL_SITE_NETWORKS = "devcloud=private"
    people["beta"].network_ids = "lab"
    people["beta"].save()
    plan = launch_check(
        actor=people["carol"], project=people["beta"], flavor=catalog["small"],
        image=catalog["ubuntu"], prefix="", count=1, participants=[],
    )  # fmt: skip
    assert plan.network_ids == ["n-lab"]


def test_a_configured_network_the_project_cannot_use_is_refused(people, catalog, two_networks):
    people["beta"].network_ids = "alphanet"
    people["beta"].save()
    with pytest.raises(ActionRefused, match="Network alphanet, set for new machines of project"):
        launch_check(
            actor=people["carol"], project=people["beta"], flavor=catalog["small"],
            image=catalog["ubuntu"], prefix="", count=1, participants=[],
        )  # fmt: skip


def test_one_usable_network_is_used_by_id_and_none_leaves_it_to_nova(people, catalog):
    def networks():
        return launch_check(
            actor=people["carol"], project=people["beta"], flavor=catalog["small"],
            image=catalog["ubuntu"], prefix="", count=1, participants=[],
        ).network_ids  # fmt: skip

    assert networks() is None  # Nova's "auto"
    network(people["site"], "public", shared=True, external=True)
    assert networks() is None
    network(people["site"], "private", project="p-admin", shared=True)
    assert networks() == ["n-private"]


def test_a_chosen_network_that_is_no_longer_usable_is_refused(people, catalog, two_networks):
    with pytest.raises(ActionRefused) as refused:
        launch_check(
            actor=people["carol"], project=people["beta"], flavor=catalog["small"],
            image=catalog["ubuntu"], prefix="", count=1, participants=[],
            network_ids=["n-alphanet"],
        )  # fmt: skip
    assert refused.value.message == "Network alphanet is not available in project beta."


def test_a_boot_test_goes_where_a_launch_would_or_on_the_first_usable_network(
    people, two_networks, settings
):
    from snapshots.verify import boot_test_networks

    assert boot_test_networks(people["beta"]) == ["n-lab"]  # several: no 409 from "auto"
    settings.PORTAL_SITE_NETWORKS = "devcloud=private"
    assert boot_test_networks(people["beta"]) == ["n-private"]
