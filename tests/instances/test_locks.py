"""A server locked by the cloud's operators: Nova lets the portal's admin service
account through its lock check, so the portal must refuse by itself, everywhere,
and say why. Against devcloud over HTTP; devcloud, like Nova, lets admins pass."""

from __future__ import annotations

import pytest
from django.urls import reverse

from instances.models import Server
from instances.services import server_delete_plan, server_power_request, server_refresh
from portal import cloud
from portal.errors import ActionRefused
from portal.jobs import job_advance, job_create
from portal.models import Job
from portal.texts import english
from snapshots.services import snapshot_create_request
from tests.conftest import sdk_connection


@pytest.fixture
def locked_vm(demo, monkeypatch):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    site = demo["sites"]["devcloud"]
    vm = Server.objects.get(site=site, name="alpha-web-01")
    admin = sdk_connection(demo["clouds"])
    admin.compute.post(
        f"/servers/{vm.openstack_id}/action",
        json={"lock": {"locked_reason": "security incident 4711"}},
        microversion="2.73",
    ).raise_for_status()
    yield server_refresh(site, openstack_id=vm.openstack_id)
    admin.compute.post(f"/servers/{vm.openstack_id}/action", json={"unlock": None})


def test_the_mirror_keeps_the_lock_and_its_reason(locked_vm):
    assert locked_vm.locked
    assert locked_vm.locked_reason == "security incident 4711"


def test_the_pages_show_the_lock_and_offer_no_actions(client, demo, locked_vm):
    client.force_login(demo["users"]["alice"])
    body = client.get(reverse("instances:instance-detail", args=[locked_vm.pk])).content.decode()
    assert "alpha-web-01 is locked (security incident 4711)" in body
    assert reverse("instances:instance-stop", args=[locked_vm.pk]) not in body
    assert reverse("snapshots:snapshot-create", args=[locked_vm.pk]) not in body
    listing = client.get(reverse("instances:instance-list")).content.decode()
    assert ">locked</span>" in listing


def test_stop_snapshot_and_delete_are_refused_with_the_reason(client, demo, locked_vm):
    alice = demo["users"]["alice"]
    with pytest.raises(ActionRefused, match="alpha-web-01 is locked"):
        server_power_request(server=locked_vm, actor=alice, action="stop")
    with pytest.raises(ActionRefused, match="locked"):
        snapshot_create_request(server=locked_vm, actor=alice, name="while-locked", restart=True)
    plan = server_delete_plan(servers=[locked_vm], actor=alice)
    assert plan.skipped == [(locked_vm, "locked")]
    assert not plan.deletable
    client.force_login(alice)
    response = client.post(reverse("instances:instance-stop", args=[locked_vm.pk]))
    assert response.status_code == 409
    assert "is locked" in response.content.decode()
    assert not Job.objects.exists()


def test_a_ticked_delete_confirmed_before_the_lock_leaves_the_machine(demo, locked_vm):
    job = job_create(
        kind="instances.delete", actor=demo["users"]["alice"], project=locked_vm.project,
        params={"servers": [{"id": locked_vm.openstack_id, "name": locked_vm.name,
                             "site_id": locked_vm.site_id}]},
    )  # fmt: skip
    job_advance(job.pk)
    job.refresh_from_db()
    assert job.state["outcomes"] == {locked_vm.openstack_id: "failed: alpha-web-01 is locked"}
    assert cloud.server_get(locked_vm.site.name, server_id=locked_vm.openstack_id).locked


def test_a_job_recorded_before_the_lock_refuses_at_its_step(demo, locked_vm):
    """A stop queued a moment before the operators locked the machine: the job
    fails with the reason and never asks Nova (which would obey the admin token)."""
    job = job_create(
        kind="server.stop", actor=demo["users"]["alice"], project=locked_vm.project,
        site=locked_vm.site, target_server_id=locked_vm.openstack_id,
    )  # fmt: skip
    job_advance(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "alpha-web-01 is locked (security incident 4711)" in english(job.error)
    shown = cloud.server_get(locked_vm.site.name, server_id=locked_vm.openstack_id)
    assert shown.status == "ACTIVE"
    assert shown.locked
