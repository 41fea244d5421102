"""Retrying failed seats through the real stack (the pages, a real worker, Redis,
devcloud): a machine that was still building when the launch gave up, and runs
now, is never deleted; the ERROR one is replaced."""

from __future__ import annotations

import pytest
from django.urls import reverse

from images.models import Image
from instances.launch import instance_launch_request
from instances.launch_rules import launch_check
from instances.models import Flavor, Server
from instances.services import server_refresh
from portal import cloud
from portal.models import Job
from portal.texts import english
from tests.conftest import wait_for_job
from tests.instances.test_launch_retry import form_of
from tests.integration.test_gateway import wait_until

pytestmark = pytest.mark.worker


def test_a_retry_replaces_the_error_seat_and_never_the_one_that_booted_late(live_demo, client):
    alice = live_demo["users"]["alice"]
    site = live_demo["sites"]["devcloud"]
    devcloud = live_demo["clouds"]["devcloud"]
    # The launch gives up while both machines still build (here Nova refuses the job's
    # watch listing once); then Ben's goes to ERROR and Anna's boots: she starts working.
    watch = r"^/compute/v2.1/servers/detail\?.*changes-since"
    devcloud.set_faults({
        "boot_error": {"server_name": "^late-ben$"},
        "http": [{"method": "GET", "path": watch, "status": 403, "count": 1}],
    })  # fmt: skip
    try:
        plan = launch_check(
            actor=alice, project=live_demo["projects"]["alpha"],
            flavor=Flavor.objects.get(site=site, name="de.NBI tiny"),
            image=Image.objects.get(site=site, name="Ubuntu-22.04-LTS"),
            prefix="late", count=2, participants=["Anna", "Ben"],
        )  # fmt: skip
        job = wait_for_job(instance_launch_request(actor=alice, plan=plan), 60)
    finally:
        devcloud.set_faults({})
    assert job.status == Job.Status.FAILED
    assert job.result["failed_seats"] == [0, 1]
    anna, ben = job.state["servers"]["0"], job.state["servers"]["1"]
    wait_until(lambda: server_refresh(site, openstack_id=anna).status == "ACTIVE", 30)
    wait_until(lambda: server_refresh(site, openstack_id=ben).status == "ERROR", 30)

    client.force_login(alice)
    url = reverse("instances:launch-retry", args=[job.pk])
    body = client.get(url).content.decode()
    assert "late-anna (Anna): running, not replaced" in body
    form = form_of(body)
    assert form["seat"] == ["late-ben"]
    assert client.post(url, form).status_code == 302
    retry = wait_for_job(Job.objects.get(params__retry_of=job.pk), 90)

    assert retry.status == Job.Status.SUCCEEDED, retry.error
    assert english(retry.result["summary"]) == "1 active."
    assert cloud.server_get(site.name, server_id=anna).status == "ACTIVE"  # never touched
    assert Server.objects.get(openstack_id=ben).is_deleted
    new_ben = retry.state["servers"]["0"]
    assert new_ben != ben
    assert cloud.server_get(site.name, server_id=new_ben).status == "ACTIVE"

    # That failure is retried once: the same form from another tab goes to the retry.
    again = client.post(url, {**form, "idempotency_key": "another-tab"})
    assert again.url == reverse("job-detail", args=[retry.pk])
    assert Job.objects.filter(params__retry_of=job.pk).count() == 1
