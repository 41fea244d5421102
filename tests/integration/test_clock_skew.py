"""The portal's clock and the cloud's differ: a worker 20 s ahead of the cloud (here:
a devcloud whose clock is 20 s behind the machine's) must still see every change.
Nova's changes-since and Glance's updated_at=gt: compare with the cloud's clock, so
the portal asks in the cloud's time: from the newest `updated_at` the cloud listed,
or, before it listed any, by the offset read off the Date header of its answers."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from instances.models import Server
from operations.sync import site_sync
from operations.watch import site_watch
from portal import cloud
from portal.jobs import job_create
from portal.models import Site
from portal.templatetags.portal_tags import step_duration
from tests.conftest import sdk_connection
from tests.integration.test_gateway import wait_until

SKEW = -20.0  # the cloud's clock is 20 s behind the portal's


@pytest.fixture
def skewed_cloud(tmp_path, settings, db, monkeypatch):
    from devcloud.launcher import DevcloudProcess
    from operations.demo import demo_seed

    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    devcloud = DevcloudProcess(
        tmp_path / "dc", profile="primary", speed=40.0, clock_offset=SKEW
    ).start()
    clouds_yaml = tmp_path / "clouds.yaml"
    clouds_yaml.write_text("clouds:\n" + devcloud.clouds_yaml(name="devcloud", entries_only=True))
    settings.OS_CLIENT_CONFIG_FILE = str(clouds_yaml)
    settings.PORTAL_SITES = "devcloud=Bielefeld"
    cloud.connections_reset()
    demo_seed()  # a full sync: the portal learns the cloud's clock
    yield {"devcloud": devcloud, "clouds_yaml": clouds_yaml}
    cloud.connections_reset()
    devcloud.stop()


def _stop_out_of_band(skewed_cloud, server: Server) -> None:
    conn = sdk_connection(skewed_cloud, name="devcloud")
    conn.compute.stop_server(server.openstack_id)
    wait_until(
        lambda: cloud.server_get("devcloud", server_id=server.openstack_id).status == "SHUTOFF"
    )


def test_the_portal_learns_how_far_the_clouds_clock_is_off(skewed_cloud):
    site = Site.objects.get(name="devcloud")
    assert site.clock_offset_seconds == pytest.approx(SKEW, abs=1.5)


def test_the_status_watcher_sees_changes_on_a_cloud_whose_clock_is_behind(skewed_cloud):
    site = Site.objects.get(name="devcloud")
    server = Server.objects.get(site=site, name="alpha-web-01")
    # A job waits on the site, so the watcher looks (the job itself never runs here).
    job_create(kind="server.stop", project=server.project, target_server_id=server.openstack_id)
    _stop_out_of_band(skewed_cloud, server)
    seen = site_watch(site.pk)
    assert seen is not None
    assert server.openstack_id in seen["servers"]
    server.refresh_from_db()
    assert server.status == "SHUTOFF"


def test_an_incremental_sync_sees_changes_on_a_cloud_whose_clock_is_behind(
    skewed_cloud, monkeypatch
):
    # The sync's own overlap (60 s) would hide a 20 s skew: shrink it to the watcher's.
    monkeypatch.setattr("operations.sync.OVERLAP", timedelta(seconds=2))
    site = Site.objects.get(name="devcloud")
    server = Server.objects.get(site=site, name="alpha-analysis-02")
    conn = sdk_connection(skewed_cloud, name="devcloud")
    conn.compute.start_server(server.openstack_id)
    wait_until(
        lambda: cloud.server_get("devcloud", server_id=server.openstack_id).status == "ACTIVE"
    )
    site_sync(site, full=False)
    server.refresh_from_db()
    assert server.status == "ACTIVE"


def test_a_step_stamped_by_a_clock_ahead_never_shows_a_negative_duration():
    ahead = (timezone.now() + timedelta(seconds=18.5)).isoformat()
    assert step_duration({"started_at": ahead, "finished_at": None}) == "0.0 s"
    done = {"started_at": ahead, "finished_at": datetime.fromisoformat(ahead).isoformat()}
    assert step_duration(done) == "0.0 s"
