"""Launching from a snapshot through a real worker against devcloud."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from images.models import Image
from instances.launch import instance_launch_request
from instances.launch_rules import launch_check
from instances.models import Flavor, Server
from portal import cloud
from portal.jobs import JOB_KEY, Wait, job_key, step_run_once
from portal.models import Job
from portal.texts import english
from tests.conftest import wait_for_job

pytestmark = pytest.mark.worker


def plan_for(demo, *, participants, prefix="ws"):
    site = demo["sites"]["devcloud"]
    alpha = demo["projects"]["alpha"]
    alpha.refresh_from_db()
    snapshot = Image.objects.filter(
        site=site, project=alpha, is_snapshot=True, status="active", deleted_at__isnull=True
    ).first()
    flavor = Flavor.objects.get(site=site, name="de.NBI small")
    plan = launch_check(
        actor=demo["users"]["alice"], project=alpha, flavor=flavor, image=snapshot,
        prefix=prefix, count=len(participants), participants=participants,
    )  # fmt: skip
    return plan, snapshot


def test_a_workshop_boots_from_a_snapshot_and_one_error_does_not_stop_the_rest(live_demo, client):
    devcloud = live_demo["clouds"]["devcloud"]
    plan, snapshot = plan_for(live_demo, participants=["Anna", "Ben", "Cem", "Dörte", "Emil"])
    assert plan.names == ["ws-anna", "ws-ben", "ws-cem", "ws-doerte", "ws-emil"]
    devcloud.set_faults(
        {"boot_error": {"server_name": "^ws-cem$", "message": "No valid host was found."}}
    )
    try:
        job = instance_launch_request(actor=live_demo["users"]["alice"], plan=plan)
        job = wait_for_job(job, timeout=90)
    finally:
        devcloud.set_faults({})
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert (
        english(job.result["summary"]) == "4 active, 1 failed: ws-cem (No valid host was found.)."
    )

    servers = {
        s.name: s for s in Server.objects.filter(name__startswith="ws-", deleted_at__isnull=True)
    }
    assert set(servers) == set(plan.names)
    assert servers["ws-cem"].status == "ERROR"
    anna = servers["ws-anna"]
    assert anna.status == "ACTIVE"
    assert anna.image_openstack_id == snapshot.openstack_id
    assert anna.metadata["participant"] == "Anna"
    assert anna.created_by.username == "alice"

    # Visible in the overview at once, and the detail page says it came from the snapshot.
    client.force_login(live_demo["users"]["alice"])
    assert "ws-doerte" in client.get(reverse("instances:instance-list")).content.decode()
    detail = client.get(reverse("instances:instance-detail", args=[anna.pk])).content.decode()
    assert snapshot.name in detail
    assert ">snapshot<" in detail


def test_a_duplicate_delivery_creates_no_duplicate_servers(live_demo):
    from operations.tasks import job_advance_task

    plan, _ = plan_for(live_demo, participants=["Fay", "Gus"], prefix="dup")
    job = instance_launch_request(actor=live_demo["users"]["alice"], plan=plan)
    job_advance_task.apply_async((job.pk, job.wake))
    job_advance_task.apply_async((job.pk, job.wake), countdown=0.2)
    job = wait_for_job(job, timeout=60)
    assert job.status == Job.Status.SUCCEEDED, job.error
    alpha = live_demo["projects"]["alpha"].openstack_id
    for name in plan.names:
        assert len(cloud.server_find("devcloud", project_id=alpha, name=name)) == 1


def test_a_retried_create_step_adopts_servers_it_already_made(live_demo):
    """A worker that died after creating servers but before saving: nothing is made twice."""
    from instances.jobs import step_launch_create

    plan, _ = plan_for(live_demo, participants=["Hal"], prefix="retry")
    job = Job.objects.create(
        kind="instances.launch", actor=live_demo["users"]["alice"], project=plan.project,
        site=plan.project.site,
        params={"names": plan.names, "participants": plan.participants,
                "flavor_id": plan.flavor.openstack_id, "image_id": plan.image.openstack_id},
    )  # fmt: skip
    step_run_once(step_launch_create, job)
    first = dict(job.state["servers"])
    # What the row held when the worker died: the request, recorded before it was
    # sent, but not the answer.
    job.state = {"servers": {}, "outcomes": {}, "asked": job.state["asked"]}
    step_run_once(step_launch_create, job)
    assert job.state["servers"] == first
    _delete_all(plan)


def _delete_all(plan):
    for name in plan.names:
        for server in cloud.server_find(
            "devcloud", project_id=plan.project.openstack_id, name=name
        ):
            cloud.server_delete("devcloud", server_id=server.id)


def _launch_job(live_demo, prefix):
    plan, _ = plan_for(live_demo, participants=["Ida"], prefix=prefix)
    job = Job.objects.create(
        kind="instances.launch", actor=live_demo["users"]["alice"], project=plan.project,
        site=plan.project.site, marker="a1b2c3",
        params={"names": plan.names, "participants": plan.participants,
                "flavor_id": plan.flavor.openstack_id, "image_id": plan.image.openstack_id},
    )  # fmt: skip
    return plan, job


def _lands_late(job, plan):
    """The cut-off request, carried out by Nova after all: a server with the job's marker."""
    return cloud.server_create(
        "devcloud", project_id=plan.project.openstack_id, name=plan.names[0],
        flavor_id=plan.flavor.openstack_id, image_id=plan.image.openstack_id,
        metadata={JOB_KEY: job_key(job), "portal_index": "0"},
    )  # fmt: skip


def test_a_cut_off_create_is_not_sent_again_while_it_may_still_land(live_demo):
    """A create cut off before its answer: the re-run finds nothing yet, waits instead
    of creating a second server, and adopts the first when it lands."""
    from instances.jobs import step_launch_create

    plan, job = _launch_job(live_demo, "late")
    alpha = plan.project.openstack_id
    job.state = {"servers": {}, "outcomes": {}, "asked": {"0": timezone.now().isoformat()}}
    assert isinstance(step_run_once(step_launch_create, job), Wait)
    assert cloud.server_find("devcloud", project_id=alpha, name=plan.names[0]) == []
    landed = _lands_late(job, plan)
    assert step_run_once(step_launch_create, job) is None
    assert job.state["servers"] == {"0": landed.id}
    assert len(cloud.server_find("devcloud", project_id=alpha, name=plan.names[0])) == 1
    _delete_all(plan)


def test_a_second_server_from_a_cut_off_create_is_deleted_at_the_end(live_demo, settings):
    """Asked again after the wait, and the first request landed too: the job deletes
    the server no seat holds, so no machine outlives teardown unseen."""
    from instances.jobs import step_launch_create, step_launch_wait

    plan, job = _launch_job(live_demo, "twice")
    alpha = plan.project.openstack_id
    long_ago = (
        timezone.now() - timedelta(seconds=settings.JOB_CREATE_LAND_SECONDS + 1)
    ).isoformat()
    job.state = {"servers": {}, "outcomes": {}, "asked": {"0": long_ago}}
    job.started_at = timezone.now()
    assert step_run_once(step_launch_create, job) is None  # asked again: nothing had landed
    extra = _lands_late(job, plan)  # ...and now the first request lands
    settings.JOB_CREATE_LAND_SECONDS = 0
    deadline = time.monotonic() + 60
    while step_run_once(step_launch_wait, job) is not None:
        assert time.monotonic() < deadline, job.state
        time.sleep(0.5)
    assert job.state["extras_deleted"] == [extra.id]
    left = [
        s for s in cloud.server_find("devcloud", project_id=alpha, name=plan.names[0])
        if not s.is_deleted and s.status != "DELETED"
    ]  # fmt: skip
    assert [s.id for s in left] == [job.state["servers"]["0"]]
    _delete_all(plan)


def test_a_retry_keeps_a_machine_that_recovered_after_the_confirmation(live_demo):
    """Confirmed as ERROR, running again when the retry job starts (an operator reset
    it): the seat keeps that machine, nothing is deleted or made for it."""
    from instances.jobs import step_launch_create, step_launch_remove_replaced

    alpha = live_demo["projects"]["alpha"]
    running = Server.objects.filter(
        site=alpha.site, project=alpha, status="ACTIVE", deleted_at__isnull=True
    ).first()
    job = Job.objects.create(
        kind="instances.launch", actor=live_demo["users"]["alice"], project=alpha,
        site=alpha.site, marker="d4e5f6",
        params={"names": [running.name], "participants": [],
                "replaces": [{"id": running.openstack_id, "name": running.name}]},
    )  # fmt: skip
    assert step_run_once(step_launch_remove_replaced, job) is None
    assert cloud.server_get("devcloud", server_id=running.openstack_id).status == "ACTIVE"
    assert job.state["servers"] == {"0": running.openstack_id}
    assert job.state["outcomes"] == {"0": "active"}
    assert step_run_once(step_launch_create, job) is None  # no second machine for the seat
    assert len(cloud.server_find("devcloud", project_id=alpha.openstack_id, name=running.name)) == 1
