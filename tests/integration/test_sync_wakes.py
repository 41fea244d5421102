"""A site sync that writes a change before the status watcher sees it wakes the
jobs parked on it: else the watcher finds the mirror already current, wakes nobody,
and the job sleeps until its fallback poll (issue: lost wake-ups), also when the job parks after the sync began."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from instances.models import Server
from operations import sync
from operations.sync import site_sync
from operations.watch import site_watch
from portal import cloud
from portal.jobs import job_advance, job_create
from portal.models import Job, Site
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
            parked_on="ACTIVE idle",  # as the job saw it when it parked
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


def test_a_job_that_parks_while_a_sync_runs_is_woken_by_it_once(demo, monkeypatch):
    """The cloud stops the server after the job parked and after the sync began: the
    sync writes SHUTOFF before the watcher's round, so the round finds nothing new.
    The sync wakes the job, and the round does not wake it again."""
    sent = []
    monkeypatch.setattr(
        "config.celery.app.send_task", lambda name, args=(), **kw: sent.append(args[0])
    )
    site = demo["sites"]["devcloud"]
    server = boot(demo, "sync-wakes-later")
    Site.objects.filter(pk=site.pk).update(watched_at=timezone.now())  # jobs read the mirror
    site.refresh_from_db()
    job = job_create(
        kind="server.stop", actor=demo["users"]["alice"], project=server.project, site=site,
        target_server_id=server.openstack_id,
    )  # fmt: skip
    flavors_sync = sync.flavors_sync

    def job_parks_then_the_cloud_stops_it(site):
        job_advance(job.pk, job.wake)  # asks the stop, parks on "powering-off"
        wait_until(
            lambda: cloud.server_get(site.name, server_id=server.openstack_id).status == "SHUTOFF"
        )
        return flavors_sync(site)

    monkeypatch.setattr(sync, "flavors_sync", job_parks_then_the_cloud_stops_it)
    try:
        site_sync(site, full=False)
        assert Server.objects.get(pk=server.pk).status == "SHUTOFF"
        assert sent == [job.pk]
        site_watch(site.pk)  # the watcher's round, after the sync
        assert sent == [job.pk]
    finally:  # the project's quota is shared by the session's tests
        cloud.server_delete(site.name, server_id=server.openstack_id)
