"""Every rule a snapshot request must pass, checked before anything reaches the cloud."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.errors import ActionRefused
from portal.models import Job
from snapshots.services import snapshot_create_check, snapshot_create_request
from tests.factories import make_image, make_server


@pytest.fixture
def vm(people):
    return make_server(project=people["alpha"], name="workbench", created_by=people["bob"])


def refused(**kwargs) -> ActionRefused:
    with pytest.raises(ActionRefused) as info:
        snapshot_create_check(**kwargs)
    return info.value


def test_exactly_256_gib_is_allowed(people, vm):
    vm.flavor_ram_mib = 262_144
    assert snapshot_create_check(server=vm, actor=people["bob"], name="ok") == "ok"


def test_one_mib_more_is_refused_quoting_limit_and_flavor(people, vm):
    vm.flavor_ram_mib = 262_145
    vm.flavor_name = "odd"
    error = refused(server=vm, actor=people["bob"], name="too big")
    assert error.status == 400
    assert "256 GiB (262,144 MiB)" in error.message
    assert "odd" in error.message
    assert "262,145 MiB" in error.message


def test_512_gib_flavor_is_refused_before_any_job_exists(client, people, vm):
    vm.flavor_ram_mib = 524_288
    vm.flavor_name = "de.NBI highmem 2xlarge"
    vm.save()
    client.force_login(people["bob"])
    url = reverse("snapshots:snapshot-create", args=[vm.pk])
    page = client.get(url)
    assert page.status_code == 400
    assert "512 GiB (524,288 MiB)" in page.content.decode()
    # A request that skips the form (direct POST) is refused the same way.
    response = client.post(url, {"name": "sneaky", "restart": "on"})
    assert response.status_code == 400
    assert "256 GiB" in response.content.decode()
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Enter a name"),
        ("   ", "Enter a name"),
        ("x" * 256, "at most 255"),
        ("bad\tname", "control characters"),
        ("bad\nname", "control characters"),
        ("zero\u200bwidth", "control characters"),
    ],
)
def test_bad_names_are_refused(people, vm, name, message):
    error = refused(server=vm, actor=people["bob"], name=name)
    assert error.status == 400
    assert message in error.message


def test_the_name_is_trimmed_and_255_characters_are_fine(people, vm):
    assert snapshot_create_check(server=vm, actor=people["bob"], name="  gold  ") == "gold"
    assert snapshot_create_check(server=vm, actor=people["bob"], name="y" * 255) == "y" * 255


def test_the_name_must_be_unique_in_the_project_on_the_site(people, vm):
    make_image(site=vm.site, project=people["alpha"], snapshot=True, name="Gold Master")
    error = refused(server=vm, actor=people["bob"], name="gold master")
    assert "already has a snapshot named" in error.message
    # Another project may use it.
    other = make_server(project=people["beta"], created_by=people["carol"])
    assert snapshot_create_check(server=other, actor=people["carol"], name="Gold Master")


def test_a_name_taken_by_a_running_job_is_taken(people, vm, django_capture_on_commit_callbacks):
    snapshot_create_request(server=vm, actor=people["bob"], name="pending one")
    other = make_server(project=people["alpha"], created_by=people["bob"])
    assert "already has" in refused(server=other, actor=people["bob"], name="Pending One").message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"status": "BUILD"}, "Cannot snapshot"),
        ({"status": "ERROR"}, "Cannot snapshot"),
        ({"task_state": "image_snapshot"}, "busy"),
        ({"task_state": "powering-off"}, "busy"),
    ],
)
def test_the_instance_must_be_in_a_state_that_allows_it(people, vm, fields, message):
    for key, value in fields.items():
        setattr(vm, key, value)
    assert message in refused(server=vm, actor=people["bob"], name="n").message


def test_a_deleted_instance_is_refused(people, vm):
    from django.utils import timezone

    vm.deleted_at = timezone.now()
    assert "no longer exists" in refused(server=vm, actor=people["bob"], name="n").message


def test_permissions(people, vm):
    theirs = make_server(project=people["alpha"], created_by=people["alice"])
    # A member acts only on their own instances; an admin on all; outsiders on none.
    assert refused(server=theirs, actor=people["bob"], name="n").status == 403
    assert snapshot_create_check(server=vm, actor=people["alice"], name="n") == "n"
    assert refused(server=vm, actor=people["carol"], name="n").status == 403
    assert snapshot_create_check(server=vm, actor=people["admin"], name="n") == "n"


def test_another_portal_job_on_the_instance_blocks_it(
    people, vm, django_capture_on_commit_callbacks
):
    snapshot_create_request(server=vm, actor=people["bob"], name="first")
    assert "Another portal job" in refused(server=vm, actor=people["bob"], name="second").message


def test_an_unreachable_site_refuses(people, vm):
    from django.utils import timezone

    vm.site.unreachable_since = timezone.now()
    vm.site.save()
    assert "unreachable" in refused(server=vm, actor=people["bob"], name="n").message


def test_a_valid_request_records_the_job(people, vm, django_capture_on_commit_callbacks):
    job = snapshot_create_request(
        server=vm, actor=people["bob"], name=" nightly ", description=" my tools ", restart=True
    )
    assert job.kind == "snapshot.create"
    assert job.params == {
        "name": "nightly", "name_key": "nightly", "description": "my tools",
        "restart": True, "verify": False, "batch": False,  # every field of the kind's Params
    }  # fmt: skip
    assert job.target_server_id == vm.openstack_id
    assert job.project == people["alpha"]
    assert job.actor == people["bob"]
    assert [s["label"] for s in job.steps] == [
        "Checking the request", "Stop requested", "Waiting for SHUTOFF", "Snapshot requested",
        "Uploading the image", "Waiting for Nova to finish", "Start requested", "Waiting for ACTIVE",
        "Choosing a flavor for the boot test", "Booting a test instance",
        "Waiting for the test instance to come up", "Deleting the test instance",
    ]  # fmt: skip


def test_a_server_booted_from_a_volume_is_refused_with_the_reason(client, demo, monkeypatch):
    """Nova shows such a server with no image; its snapshot would be a 0-byte image plus
    Cinder volume snapshots the portal can neither wait for nor delete. Refused, before
    anything reaches the cloud, in the form, the request and the page."""
    from images.models import Image
    from instances.models import Flavor
    from portal import cloud
    from portal.cloud.connection import connection_for

    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    site, alpha = demo["sites"]["devcloud"], demo["projects"]["alpha"]
    image = Image.objects.get(site=site, name="Ubuntu-22.04-LTS")
    body = {"server": {
        "name": "on-a-volume", "networks": "auto",
        "flavorRef": Flavor.objects.get(site=site, name="de.NBI small").openstack_id,
        "block_device_mapping_v2": [{
            "boot_index": 0, "uuid": image.openstack_id, "source_type": "image",
            "destination_type": "volume", "volume_size": 20, "delete_on_termination": True,
        }],
        "metadata": {"portal_user": "alice"},
    }}  # fmt: skip
    made = connection_for(site.name, project_id=alpha.openstack_id).compute.post(
        "/servers", json=body, microversion="2.73"
    )
    assert made.status_code == 202, made.text
    server_id = made.json()["server"]["id"]
    try:
        _refused_everywhere(client, demo, site, server_id)
    finally:  # the project's quota is shared by the session's tests
        cloud.server_delete(site.name, server_id=server_id)


def _refused_everywhere(client, demo, site, server_id):
    from instances.services import server_refresh
    from tests.integration.test_gateway import wait_until

    wait_until(lambda: server_refresh(site, openstack_id=server_id).status == "ACTIVE")
    vm = server_refresh(site, openstack_id=server_id)
    assert vm.boots_from_volume
    error = refused(server=vm, actor=demo["users"]["alice"], name="vol-snap")
    assert error.status == 400
    assert "on-a-volume boots from a volume" in error.message
    client.force_login(demo["users"]["alice"])
    response = client.post(
        reverse("snapshots:snapshot-create", args=[vm.pk]), {"name": "vol-snap", "restart": "on"}
    )
    assert response.status_code == 400
    assert not Job.objects.exists()
    page = client.get(reverse("instances:instance-detail", args=[vm.pk])).content.decode()
    assert "boots from a volume" in page
