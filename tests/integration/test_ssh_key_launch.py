"""SSH keys at launch, through the page, a real worker and devcloud: Nova's own record
(read with openstacksdk, not through the portal) names the portal's key pair, whose
public key is the user's; a pair deleted in the cloud comes back at the next launch."""

from __future__ import annotations

import dataclasses
import html
import uuid

import pytest
from django.db import transaction
from django.urls import reverse

from images.models import Image
from instances.launch import instance_launch_request
from instances.launch_rules import launch_check
from instances.models import Flavor, Server
from portal.models import Job, SshKey
from portal.ssh_keys import ssh_key_add
from portal.texts import english
from tests.conftest import sdk_connection, wait_for_job
from tests.ssh_keys import new_ed25519

pytestmark = pytest.mark.worker


def _launch(client, demo, *, name, ssh_key="", participants=""):
    site = demo["sites"]["devcloud"]
    image = Image.objects.get(site=site, name="Ubuntu-22.04-LTS", is_snapshot=False)
    flavor = Flavor.objects.get(site=site, name="de.NBI small")
    return client.post(
        reverse("instances:instance-new"),
        {
            "project": demo["projects"]["alpha"].pk, "flavor": flavor.pk, "image": image.pk,
            "name": name, "count": 1, "participants": participants, "ssh_key": ssh_key,
            "idempotency_key": uuid.uuid4().hex,
        },
    )  # fmt: skip


def _launched(response) -> Job:
    assert response.status_code == 302, html.unescape(response.content.decode())[:3000]
    job = Job.objects.get(pk=int(response["Location"].rstrip("/").split("/")[-1]))
    job = wait_for_job(job, timeout=90)
    assert job.status == Job.Status.SUCCEEDED, job.error
    return job


def _nova_server(sdk, name):
    (server,) = list(sdk.compute.servers(all_projects=True, name=f"^{name}$"))
    return server


def _cleanup(sdk, *names):
    for name in names:
        for server in sdk.compute.servers(all_projects=True, name=f"^{name}"):
            sdk.compute.delete_server(server.id)


def test_a_launch_injects_the_chosen_key_and_the_pair_comes_back(live_demo, client):
    alice = live_demo["users"]["alice"]
    public_key = new_ed25519("alice@laptop")
    key = ssh_key_add(user=alice, text=public_key, name="laptop")
    sdk = sdk_connection(live_demo["clouds"], "devcloud")  # the portal's service account
    client.force_login(alice)
    try:
        # The page preselects the default key.
        page = client.get(reverse("instances:instance-new")).content.decode()
        assert f'<option value="{key.pk}" selected>' in page

        _launched(_launch(client, live_demo, name="key-one", ssh_key=key.pk))
        nova = _nova_server(sdk, "key-one")
        assert nova.key_name == key.keypair_name
        assert nova.key_name.startswith(f"portal-u{alice.pk}-")
        pair = sdk.compute.get_keypair(nova.key_name)
        assert pair.public_key == public_key

        server = Server.objects.get(name="key-one", deleted_at__isnull=True)
        assert server.key_name == key.keypair_name
        detail = html.unescape(
            client.get(reverse("instances:instance-detail", args=[server.pk])).content.decode()
        )
        assert "“laptop” of alice" in detail
        assert key.fingerprint in detail

        # Deleted in the cloud: the next launch imports it again before booting.
        sdk.compute.delete_keypair(key.keypair_name)
        assert sdk.compute.find_keypair(key.keypair_name) is None
        _launched(_launch(client, live_demo, name="key-two", ssh_key=key.pk))
        assert _nova_server(sdk, "key-two").key_name == key.keypair_name
        assert sdk.compute.get_keypair(key.keypair_name).public_key == public_key
    finally:
        _cleanup(sdk, "key-one", "key-two")
        if sdk.compute.find_keypair(key.keypair_name):
            sdk.compute.delete_keypair(key.keypair_name)


def test_a_launch_without_a_key_says_so_on_the_instance_page(live_demo, client):
    alice = live_demo["users"]["alice"]
    sdk = sdk_connection(live_demo["clouds"], "devcloud")
    client.force_login(alice)
    page = html.unescape(client.get(reverse("instances:instance-new")).content.decode())
    assert "You have no SSH key yet" in page
    assert reverse("profile-keys") in page
    try:
        _launched(_launch(client, live_demo, name="nokey-one"))
        assert _nova_server(sdk, "nokey-one").key_name is None
        server = Server.objects.get(name="nokey-one", deleted_at__isnull=True)
        detail = html.unescape(
            client.get(reverse("instances:instance-detail", args=[server.pk])).content.decode()
        )
        assert "Launched without an SSH key" in detail
    finally:
        _cleanup(sdk, "nokey-one")


def test_a_workshops_seats_carry_the_organisers_key(live_demo, client):
    from workshops.models import Workshop
    from workshops.services import workshop_add

    alice = live_demo["users"]["alice"]
    key = ssh_key_add(user=alice, text=new_ed25519("organiser"), name="organiser")
    sdk = sdk_connection(live_demo["clouds"], "devcloud")
    client.force_login(alice)
    try:
        job = _launched(
            _launch(client, live_demo, name="kws", ssh_key=key.pk, participants="Ada\nBo")
        )
        assert job.params["ssh_key_pk"] == key.pk
        for name in ("kws-ada", "kws-bo"):
            assert _nova_server(sdk, name).key_name == key.keypair_name
        # A late participant gets the organiser's (default) key too.
        workshop = Workshop.objects.get(launch_job=job)
        late = wait_for_job(workshop_add(workshop=workshop, actor=alice, participants=["Cy"]))
        assert late.status == Job.Status.SUCCEEDED, late.error
        assert _nova_server(sdk, "kws-cy").key_name == key.keypair_name
    finally:
        _cleanup(sdk, "kws-")
        sdk.compute.delete_keypair(key.keypair_name, ignore_missing=True)


def test_a_key_deleted_after_the_form_was_shown_is_refused(live_demo, client):
    alice = live_demo["users"]["alice"]
    key = ssh_key_add(user=alice, text=new_ed25519(), name="gone")
    client.force_login(alice)
    key_id = key.pk
    SshKey.objects.filter(pk=key_id).delete()
    response = _launch(client, live_demo, name="gone-one", ssh_key=key_id)
    assert response.status_code == 400
    assert "That SSH key is not in your profile (any more)" in html.unescape(
        response.content.decode()
    )
    assert not Job.objects.filter(kind="instances.launch").exists()


def test_a_key_deleted_after_the_launch_was_asked_fails_the_check(live_demo):
    alice = live_demo["users"]["alice"]
    key = ssh_key_add(user=alice, text=new_ed25519(), name="short-lived")
    site = live_demo["sites"]["devcloud"]
    plan = launch_check(
        actor=alice, project=live_demo["projects"]["alpha"],
        flavor=Flavor.objects.get(site=site, name="de.NBI small"),
        image=Image.objects.get(site=site, name="Ubuntu-22.04-LTS", is_snapshot=False),
        prefix="late-del", count=1, participants=[],
    )  # fmt: skip
    # The key goes in the transaction that records the job: the worker sees the job only
    # after the key is gone, as when a user deletes it while the job waits in the queue.
    with transaction.atomic():
        job = instance_launch_request(actor=alice, plan=dataclasses.replace(plan, ssh_key=key))
        key.delete()
    job = wait_for_job(job, timeout=60)
    assert job.status == Job.Status.FAILED
    assert "the SSH key “short-lived” was deleted from its owner's profile" in english(job.error)
    assert not Server.objects.filter(name__startswith="late-del").exists()


def test_a_pair_replaced_in_the_cloud_gets_the_users_key_back(live_demo, client):
    alice = live_demo["users"]["alice"]
    public_key = new_ed25519("alice@desk")
    key = ssh_key_add(user=alice, text=public_key, name="desk")
    sdk = sdk_connection(live_demo["clouds"], "devcloud")
    # Someone with the service account's credentials put another key under the name.
    sdk.compute.create_keypair(name=key.keypair_name, public_key=new_ed25519("intruder"))
    client.force_login(alice)
    try:
        _launched(_launch(client, live_demo, name="key-swapped", ssh_key=key.pk))
        assert _nova_server(sdk, "key-swapped").key_name == key.keypair_name
        assert sdk.compute.get_keypair(key.keypair_name).public_key == public_key
    finally:
        _cleanup(sdk, "key-swapped")
        sdk.compute.delete_keypair(key.keypair_name, ignore_missing=True)
