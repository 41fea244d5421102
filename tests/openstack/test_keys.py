"""SSH keys on the stock Nova (loopback OpenStack), through the portal's whole stack: a
launch injects the user's key (key_name in Nova's own record, read with openstacksdk),
and the portal's key pair, deleted in the cloud, comes back at the next launch."""

from __future__ import annotations

import dataclasses

from images.models import Image
from instances.launch import instance_launch_request
from instances.launch_rules import launch_check
from instances.models import Flavor
from portal.models import Job
from portal.ssh_keys import ssh_key_add
from tests.conftest import wait_for_job
from tests.ssh_keys import new_ed25519

JOB_TIMEOUT = 240


def _launch(os_portal, key, suffix: str) -> Job:
    alice, site = os_portal["users"]["alice"], os_portal["site"]
    plan = launch_check(
        actor=alice, project=os_portal["projects"]["alpha"],
        flavor=Flavor.objects.get(site=site, name="de.NBI tiny"),
        image=Image.objects.get(site=site, name="Ubuntu-22.04-LTS", is_snapshot=False),
        prefix=f"{os_portal['prefix']}-{suffix}", count=1, participants=[],
    )  # fmt: skip
    plan = dataclasses.replace(plan, ssh_key=key)
    job = wait_for_job(instance_launch_request(actor=alice, plan=plan), JOB_TIMEOUT)
    assert job.status == Job.Status.SUCCEEDED, job.error
    return job


def _nova_key_name(admin, name: str) -> str | None:
    (server,) = [s for s in admin.compute.servers(all_projects=True) if s.name == name]
    return admin.compute.get_server(server.id).key_name


def test_a_launch_injects_the_key_and_the_deleted_pair_comes_back(os_portal):
    public_key = new_ed25519("alice@laptop")
    key = ssh_key_add(user=os_portal["users"]["alice"], text=public_key, name="laptop")
    admin = os_portal["cloud"].sdk("openstack-admin")
    service = os_portal["cloud"].sdk("openstack")  # the portal's account: its key pairs
    prefix = os_portal["prefix"]
    try:
        _launch(os_portal, key, "key1")
        assert _nova_key_name(admin, f"{prefix}-key1") == key.keypair_name
        assert service.compute.get_keypair(key.keypair_name).public_key == public_key

        service.compute.delete_keypair(key.keypair_name)
        assert service.compute.find_keypair(key.keypair_name) is None
        _launch(os_portal, key, "key2")
        assert _nova_key_name(admin, f"{prefix}-key2") == key.keypair_name
        assert service.compute.get_keypair(key.keypair_name).public_key == public_key
    finally:
        service.compute.delete_keypair(key.keypair_name, ignore_missing=True)
