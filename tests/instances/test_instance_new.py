from __future__ import annotations

import pytest
from django.urls import reverse

from instances.models import Flavor
from portal.models import Job
from tests.factories import make_image

URL = reverse("instances:instance-new")


@pytest.fixture
def catalog(people):
    site = people["site"]
    flavors = {
        "tiny": Flavor.objects.create(site=site, openstack_id="f1", name="de.NBI tiny", vcpus=1, ram_mib=2048, disk_gb=20),
        "small": Flavor.objects.create(site=site, openstack_id="f2", name="de.NBI small", vcpus=2, ram_mib=4096, disk_gb=50),
        "huge": Flavor.objects.create(site=site, openstack_id="f3", name="de.NBI highmem 2xlarge", vcpus=56, ram_mib=524288, disk_gb=50),
    }  # fmt: skip
    images = {
        "ubuntu": make_image(site=site, name="Ubuntu-22.04-LTS", min_disk=20),
        "gold": make_image(
            site=site, project=people["alpha"], snapshot=True, name="course-gold", min_disk=50
        ),
        "saving": make_image(
            site=site, project=people["alpha"], snapshot=True, name="half-made", status="saving"
        ),
        "betas": make_image(site=site, project=people["beta"], snapshot=True, name="beta-only"),
    }
    people["alpha"].quota_instances, people["alpha"].quota_cores, people["alpha"].quota_ram_mib = (
        10,
        40,
        100_000,
    )
    people["alpha"].save()
    return {"flavors": flavors, "images": images}


def test_it_shows_flavor_groups_and_both_tabs(client, people, catalog):
    client.force_login(people["alice"])
    response = client.get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Small (up to 4 GiB RAM)" in body
    assert "High memory (more than 256 GiB RAM)" in body
    assert "Base images" in body
    assert "Snapshots" in body
    assert "course-gold" in body
    assert "Ubuntu-22.04-LTS" in body
    assert "beta-only" not in body  # another project's snapshot
    assert "Quota in use: 0 / 10 instances" in body


def test_images_that_do_not_fit_the_flavor_are_disabled_with_the_reason(client, people, catalog):
    client.force_login(people["alice"])
    body = client.get(URL, {"flavor": catalog["flavors"]["tiny"].pk}).content.decode()
    gold = catalog["images"]["gold"].pk
    assert f'id="image-{gold}" value="{gold}" disabled' in body
    assert "needs 50 GB disk, the flavor has 20 GB" in body
    assert "it is saving, not active" in body


def test_launch_from_a_snapshot_row_preselects_project_and_snapshot(client, people, catalog):
    client.force_login(people["alice"])
    gold = catalog["images"]["gold"]
    response = client.get(
        URL, {"project": people["alpha"].pk, "image": gold.pk, "tab": "snapshots"}
    )
    assert response.context["image"] == gold
    assert response.context["tab"] == "snapshots"
    assert f'id="image-{gold.pk}" value="{gold.pk}" checked' in response.content.decode()


def test_the_final_names_are_shown(client, people, catalog):
    client.force_login(people["alice"])
    response = client.get(URL, {"name": "RNA Kurs", "participants": "Jürgen\nAnna"})
    assert response.context["names"] == ["rna-kurs-juergen", "rna-kurs-anna"]


def test_post_launches_a_workshop_as_one_job(
    client, people, catalog, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    client.force_login(people["alice"])
    data = {
        "project": people["alpha"].pk, "name": "ws", "flavor": catalog["flavors"]["small"].pk,
        "image": catalog["images"]["gold"].pk, "count": "1", "participants": "Anna\nBen\nCem",
    }  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, data)
    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("job-detail", args=[job.pk])
    assert job.kind == "instances.launch"
    assert job.params["names"] == ["ws-anna", "ws-ben", "ws-cem"]
    assert job.target_image_id == catalog["images"]["gold"].openstack_id


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        ({"flavor": "tiny"}, 400, "needs 50 GB disk"),
        ({"image": "saving"}, 400, "not active"),
        ({"image": "betas"}, 400, "Choose one of the listed images"),
        ({"flavor": "9999"}, 400, "Choose one of the listed flavors"),
        ({"count": "0"}, 400, "greater than or equal to 1"),
        ({"count": "8", "flavor": "small", "participants": ""}, 200, None),
    ],
)
def test_bad_input_is_a_4xx_with_a_message_and_no_job(
    client, people, catalog, monkeypatch, overrides, status, message
):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    client.force_login(people["alice"])
    data = {"project": people["alpha"].pk, "flavor": catalog["flavors"]["small"].pk,
            "image": catalog["images"]["gold"].pk, "count": "1"}  # fmt: skip
    for key, value in overrides.items():
        if key == "flavor" and value in catalog["flavors"]:
            value = catalog["flavors"][value].pk
        if key == "image":
            value = catalog["images"][value].pk
        data[key] = value
    if message is None:
        # 8 small instances need 16 vCPUs of 40: fits, so it launches.
        assert client.post(URL, data).status_code == 302
        return
    response = client.post(URL, data)
    assert response.status_code == status
    assert message in response.content.decode()
    assert Job.objects.count() == 0


def test_quota_too_small_for_the_batch(client, people, catalog):
    client.force_login(people["alice"])
    data = {"project": people["alpha"].pk, "flavor": catalog["flavors"]["small"].pk,
            "image": catalog["images"]["gold"].pk, "count": "25"}  # fmt: skip
    response = client.post(URL, data)
    assert response.status_code == 400
    assert "does not fit project alpha" in response.content.decode()
    assert "needs 25 instances (free: 10)" in response.content.decode()
    assert Job.objects.count() == 0


def test_it_requires_login_and_membership(client, people, catalog):
    assert client.get(URL).status_code == 302
    client.force_login(people["eve"])
    assert "not a member of any project" in client.get(URL).content.decode()


def test_an_unlimited_quota_fits_any_batch_and_says_so(client, people, catalog):
    # Nova reports an unlimited quota as -1; read as "free: -1" it refused every launch.
    alpha = people["alpha"]
    alpha.quota_instances, alpha.quota_cores, alpha.quota_ram_mib = 10, -1, -1
    alpha.used_cores, alpha.used_ram_mib = 500, 10**6
    alpha.save()
    client.force_login(people["alice"])
    page = client.get(URL, {"project": alpha.pk}).content.decode()
    assert "/ unlimited vCPUs" in page
    assert "/ unlimited RAM" in page
    data = {"project": alpha.pk, "flavor": catalog["flavors"]["small"].pk,
            "image": catalog["images"]["gold"].pk, "count": "10"}  # fmt: skip
    assert client.post(URL, data).status_code == 302
    assert Job.objects.count() == 1
    # The limit that is set still holds.
    data["count"] = "11"
    response = client.post(URL, data)
    assert response.status_code == 400
    assert "needs 11 instances (free: 10)" in response.content.decode()
