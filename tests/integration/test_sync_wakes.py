"""A site sync that writes a change before the status watcher sees it wakes the
jobs parked on it: else the watcher finds the mirror already current, wakes nobody,
and the job sleeps until its fallback poll (issue: lost wake-ups)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from instances.models import Server
from operations.sync import site_sync
from portal import cloud
from portal.models import Job
from tests.conftest import sdk_connection
from tests.integration.test_gateway import wait_until
from tests.integration.test_snapshot_job import boot


def test_a_sync_that_lands_first_wakes_the_parked_job(demo, monkeypatch):
    sent = []
    monkeypatch.setattr(
        "config.celery.app.send_task", lambda name, args=(), **kw: sent.append(args[0])
    )
    site = demo["sites"]["devcloud"]
    server = boot(demo, "sync-wakes")  # its own: the devcloud is shared by the session
    other = Server.objects.get(site=site, name="alpha-worker-01")
    parked, untouched = (
        Job.objects.create(
            kind="server.stop",
            status=Job.Status.RUNNING,
            project=s.project,
            site=site,
            target_server_id=s.openstack_id,
            waits_for="server",
            wake="old",
            due_at=timezone.now() + timedelta(seconds=30),
        )
        for s in (server, other)
    )
    try:
        sdk_connection(demo["clouds"]).compute.stop_server(server.openstack_id)
        wait_until(
            lambda: cloud.server_get(site.name, server_id=server.openstack_id).status == "SHUTOFF"
        )
        site_sync(site, full=False)
    finally:  # the project's quota is shared by the session's tests
        cloud.server_delete(site.name, server_id=server.openstack_id)
    parked.refresh_from_db()
    untouched.refresh_from_db()
    assert parked.waits_for == ""
    assert parked.wake != "old"
    assert sent == [parked.pk]
    assert untouched.waits_for == "server"
    assert untouched.wake == "old"
