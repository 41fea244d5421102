"""Park (shelve) and resume end to end: real worker, Redis, openstacksdk, devcloud."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from images.models import Image
from instances.models import Flavor, Server
from instances.park import server_park_request, server_resume_request
from instances.services import flavors_sync, server_refresh
from portal import cloud
from portal.errors import ActionRefused
from portal.models import Job
from portal.ssh_keys import keypair_ensure, ssh_key_add
from portal.texts import english
from tests.conftest import sdk_connection, wait_for_job
from tests.integration.test_gateway import wait_until
from tests.ssh_keys import new_ed25519

pytestmark = pytest.mark.worker


def boot(demo, name, *, flavor="de.NBI tiny", metadata=None, key_name=None) -> Server:
    site = demo["sites"]["devcloud"]
    image = Image.objects.get(site=site, name="Ubuntu-22.04-LTS")
    flavor_row = Flavor.objects.get(site=site, name=flavor)
    made = cloud.server_create(
        site.name, project_id=demo["projects"]["alpha"].openstack_id, name=name,
        flavor_id=flavor_row.openstack_id, image_id=image.openstack_id,
        metadata={"portal_user": "alice", **(metadata or {})}, key_name=key_name,
    )  # fmt: skip
    wait_until(lambda: cloud.server_get(site.name, server_id=made.id).status == "ACTIVE")
    return server_refresh(site, openstack_id=made.id)


def mirrored_saved_disks(site, server) -> list[str]:
    """The parked machine's saved disks the portal still shows (snapshot list, pages)."""
    return list(
        Image.objects.filter(
            site=site, source_server_openstack_id=server.openstack_id,
            name=f"{server.name}-shelved", deleted_at__isnull=True,
        ).values_list("openstack_id", flat=True)
    )  # fmt: skip


def shelved_images(site, server):
    return cloud.image_find_by_property(
        site.name, key="instance_uuid", value=server.openstack_id,
        owner=server.project_openstack_id,
    )  # fmt: skip


def test_park_then_resume_keeps_name_ip_and_metadata(live_demo):
    alice = live_demo["users"]["alice"]
    site = live_demo["sites"]["devcloud"]
    alpha = live_demo["projects"]["alpha"]
    server = boot(live_demo, "park-trip", metadata={"course": "bio101"})
    ip = list(server.addresses)
    assert ip

    job = wait_for_job(server_park_request(server=server, actor=alice), timeout=90)
    assert job.status == Job.Status.SUCCEEDED, job.error
    server.refresh_from_db()
    assert server.status == "SHELVED_OFFLOADED"
    assert server.status_label == "parked"
    assert list(server.addresses) == ip
    assert job.result["vcpus"] == 1
    assert job.result["ram_mib"] == server.flavor_ram_mib
    assert "frees 1 vCPUs" in english(job.result["summary"])
    (image,) = shelved_images(site, server)
    assert image.name == "park-trip-shelved"
    assert image.status == "active"
    assert job.result["image_id"] == image.id
    assert mirrored_saved_disks(site, server) == [image.id]  # on the snapshot list at once
    # The cores as the cloud counts them: Nova 34 (and devcloud) still count a
    # shelved-offloaded server against the quota; the portal shows what it says.
    alpha.refresh_from_db()
    assert alpha.used_cores == cloud.limits_get(site.name, project_id=alpha.openstack_id).used_cores

    again = server_resume_request(server=server, actor=alice)
    job = wait_for_job(again, timeout=90)
    assert job.status == Job.Status.SUCCEEDED, job.error
    # Nova deleted the saved disk: the job's own refresh takes it off the snapshot
    # list at once (Glance lists no deleted images: a sync would see it only when full).
    assert mirrored_saved_disks(site, server) == []
    server.refresh_from_db()
    assert server.status == "ACTIVE"
    assert server.name == "park-trip"
    assert list(server.addresses) == ip
    assert server.metadata["course"] == "bio101"
    wait_until(lambda: not shelved_images(site, server))
    cloud.server_delete(site.name, server_id=server.openstack_id)


def test_resume_when_the_flavor_is_gone_boots_the_disk_on_the_chosen_flavor(live_demo):
    alice = live_demo["users"]["alice"]
    site = live_demo["sites"]["devcloud"]
    admin = sdk_connection(live_demo["clouds"])
    name = f"park-tmp-{uuid.uuid4().hex[:6]}"
    made = admin.compute.post(
        "/flavors", json={"flavor": {"name": name, "ram": 1024, "vcpus": 1, "disk": 20}}
    )
    assert made.status_code == 200, made.text
    flavors_sync(site)
    key = ssh_key_add(user=alice, text=new_ed25519("alice@park"))
    key_name = keypair_ensure(site=site.name, key=key)
    server = boot(
        live_demo, "park-gone", flavor=name, metadata={"course": "bio102"}, key_name=key_name
    )
    assert server.key_name == key_name
    job = wait_for_job(server_park_request(server=server, actor=alice), timeout=90)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert len(mirrored_saved_disks(site, server)) == 1
    admin.compute.delete(f"/flavors/{made.json()['flavor']['id']}")
    flavors_sync(site)
    server.refresh_from_db()

    with pytest.raises(ActionRefused, match="no longer available"):
        server_resume_request(server=server, actor=alice)
    small = Flavor.objects.get(site=site, name="de.NBI small")
    job = wait_for_job(server_resume_request(server=server, actor=alice, flavor=small), 90)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert mirrored_saved_disks(site, server) == []
    assert "IP changed" in english(job.result["summary"])

    new = Server.objects.get(site=site, openstack_id=job.result["server_id"])
    assert new.name == "park-gone"
    assert new.status == "ACTIVE"
    assert new.flavor_name == "de.NBI small"
    assert new.metadata["course"] == "bio102"
    assert new.created_by == alice
    # The successor carries the parked machine's SSH key, in Nova's own record.
    nova = sdk_connection(live_demo["clouds"]).compute.get_server(new.openstack_id)
    assert nova.key_name == key_name
    with pytest.raises(cloud.NotFound):
        cloud.server_get(site.name, server_id=server.openstack_id)
    server.refresh_from_db()
    assert server.is_deleted
    wait_until(lambda: not shelved_images(site, server))
    cloud.server_delete(site.name, server_id=new.openstack_id)


def test_a_cloud_refusing_shelve_fails_the_park_and_restarts_the_machine(live_demo):
    alice = live_demo["users"]["alice"]
    devcloud = live_demo["clouds"]["devcloud"]
    server = boot(live_demo, "park-403")
    devcloud.set_faults({"shelve_forbidden": {"server_name": "^park-403$"}})
    try:
        job = wait_for_job(server_park_request(server=server, actor=alice), timeout=90)
    finally:
        devcloud.set_faults({})
    assert job.status == Job.Status.FAILED
    assert "does not allow parking" in english(job.error)
    assert "os_compute_api:os-shelve:shelve" in english(job.error)
    server.refresh_from_db()
    assert server.status == "ACTIVE"
    undo = {s["name"]: s["status"] for s in job.steps if s.get("phase") == "undo"}
    assert undo == {"undo_unshelve": "skipped", "undo_restart": "done"}
    cloud.server_delete(live_demo["sites"]["devcloud"].name, server_id=server.openstack_id)


def test_a_site_without_shelve_offers_no_park_and_refuses_a_forged_post(demo, client, settings):
    settings.PORTAL_SITE_NO_SHELVE = "devcloud=Shelving is off at Bielefeld (no image store)"
    server = Server.objects.filter(
        site__name="devcloud", project__name="alpha", status="ACTIVE", locked=False
    ).first()
    client.force_login(demo["users"]["alice"])
    page = client.get(reverse("instances:instance-detail", args=[server.pk])).content.decode()
    assert "Shelving is off at Bielefeld (no image store)" in page
    assert reverse("instances:instance-park", args=[server.pk]) not in page
    before = Job.objects.count()
    forged = client.post(reverse("instances:instance-park", args=[server.pk]))
    assert forged.status_code == 403
    assert "Shelving is off at Bielefeld" in forged.content.decode()
    assert Job.objects.count() == before


def test_park_selected_parks_each_machine_in_its_own_job_and_resume_brings_them_back(
    live_demo, client
):
    alice = live_demo["users"]["alice"]
    servers = [boot(live_demo, f"park-bulk-{n}") for n in (1, 2)]
    client.force_login(alice)
    selected = [s.pk for s in servers]
    before = Job.objects.count()
    page = client.get(reverse("instances:instance-park-many"), {"selected": selected})
    assert "2 instances will be parked" in page.content.decode()
    form = {"selected": selected, "idempotency_key": uuid.uuid4().hex}
    assert client.post(reverse("instances:instance-park-many"), form).status_code == 302
    assert client.post(reverse("instances:instance-park-many"), form).status_code == 302  # twice
    jobs = list(Job.objects.order_by("pk")[before:])
    assert [j.kind for j in jobs] == ["server.park", "server.park"]
    assert {j.target_server_id for j in jobs} == {s.openstack_id for s in servers}
    for job in jobs:
        assert wait_for_job(job, timeout=90).status == Job.Status.SUCCEEDED, job.error
    listed = client.get(reverse("instances:instance-list"), {"status": "parked", "filtered": "1"})
    text = listed.content.decode()
    assert "park-bulk-1" in text
    assert "park-bulk-2" in text
    assert "frees 1 vCPUs" in text

    form = {"selected": selected, "idempotency_key": uuid.uuid4().hex}
    client.post(reverse("instances:instance-resume-many"), form)
    jobs = list(Job.objects.filter(kind="server.resume").order_by("pk"))[-2:]
    for job in jobs:
        assert wait_for_job(job, timeout=90).status == Job.Status.SUCCEEDED, job.error
    for server in servers:
        server.refresh_from_db()
        assert server.status == "ACTIVE"
        cloud.server_delete("devcloud", server_id=server.openstack_id)


def test_park_with_a_boot_test_boots_the_saved_disk_and_cleans_up(live_demo):
    from images.models import BootTest

    alice = live_demo["users"]["alice"]
    site = live_demo["sites"]["devcloud"]
    server = boot(live_demo, "park-verify")
    job = server_park_request(server=server, actor=alice, verify=True)
    job = wait_for_job(job, timeout=120)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert english(job.result["boot_test"]) == "boots"
    assert BootTest.objects.get(site=site, openstack_id=job.result["image_id"]).outcome == (
        BootTest.Outcome.VERIFIED
    )
    alpha = live_demo["projects"]["alpha"].openstack_id
    assert cloud.server_find(site.name, project_id=alpha, name=f"boot-test-{job.pk}") == []
    server.refresh_from_db()
    assert server.status == "SHELVED_OFFLOADED"
    cloud.server_delete(site.name, server_id=server.openstack_id)
