"""A site that accepts connections and never answers: its calls end as "not
answering" within OPENSTACK_TIMEOUT, it costs no other site its watch, and its
jobs wait for one probe instead of each paying the timeout again and again."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from operations.watch import site_watch_safely, sites_to_watch
from portal import cloud
from portal.jobs import job_create
from portal.models import Job, Site
from portal.texts import english
from scripts.stack import child_env, start_worker, stop_process
from tests import conftest
from tests.conftest import _wait_for_worker, sending_to
from tests.hung import HungServer

pytestmark = pytest.mark.worker


def test_a_hung_site_backs_off_its_watch_and_leaves_the_others_theirs(
    transactional_db, tmp_path, settings, monkeypatch
):
    settings.PORTAL_WATCH_TIMEOUT = 1  # a round's calls wait this long, not OPENSTACK_TIMEOUT
    now = timezone.now()
    hung = Site.objects.create(name="hung", display_name="Nowhere", last_sync_at=now)
    calm = Site.objects.create(name="calm", display_name="Elsewhere", last_sync_at=now)
    Job.objects.create(kind="ping", site=hung)
    Job.objects.create(kind="ping", site=calm)
    with HungServer() as server:
        settings.OS_CLIENT_CONFIG_FILE = server.clouds_yaml(tmp_path / "clouds.yaml", name="hung")
        cloud.connections_reset()
        began = time.monotonic()
        site_watch_safely(hung.pk)  # logs, never raises: the round goes on
        assert time.monotonic() - began < 10
        assert server.accepted >= 1
    hung.refresh_from_db()
    assert hung.silent_since is not None  # its jobs wait for a probe now
    assert sites_to_watch() == [calm.pk]  # left to the probe, not asked every second
    cloud.connections_reset()


def test_jobs_on_a_hung_site_wait_for_a_probe_instead_of_spinning(
    transactional_db, own_redis, tmp_path
):
    """A real worker (which ticks: sweep, watcher) and four jobs on a site that hangs.
    Before, each job paid the timeout on every run and re-ran after a short backoff."""
    import tests.job_kinds  # noqa: F401  (registers the test kinds here too)

    with HungServer() as server:
        env = child_env(
            DATABASE_URL=conftest.test_database_url(),
            REDIS_URL=own_redis.url,
            OS_CLIENT_CONFIG_FILE=server.clouds_yaml(tmp_path / "clouds.yaml", name="hung"),
            PORTAL_SITES="hung=Nowhere",
            PORTAL_SYNC_INTERVAL="3600",
            OPENSTACK_TIMEOUT="2",
            JOB_SILENT_PROBE_SECONDS="5",
            JOB_RECOVER_SWEEP_SECONDS="1",
        )
        site = Site.objects.create(name="hung", display_name="Nowhere")
        log_path = tmp_path / "worker.log"
        worker = start_worker(env, concurrency=2, log_path=log_path, ticks=True,
                              include=("tests.job_kinds",))  # fmt: skip
        try:
            _wait_for_worker(own_redis.url, worker, log_path)
            with sending_to(own_redis.url):
                jobs = [job_create(kind="test.list_servers", site=site) for _ in range(4)]
            time.sleep(20)
            runs = 0
            for job in jobs:
                job.refresh_from_db()
                assert not job.is_finished, job.error
                runs += job.steps[0].get("runs", 0)
            site.refresh_from_db()
            assert site.silent_since is not None
            # One call per probe (every 5 s), not four jobs each calling every few seconds.
            assert runs <= 8, runs
            assert any("has not answered since" in english(job.progress) for job in jobs)
        finally:
            stop_process(worker)


def test_the_probe_of_a_silent_site_costs_its_short_timeout_and_hears_an_answer(
    clouds, tmp_path, settings
):
    assert cloud.site_probe("devcloud", timeout=3) is True
    with HungServer() as server:
        settings.OS_CLIENT_CONFIG_FILE = server.clouds_yaml(tmp_path / "clouds.yaml", name="hung")
        began = time.monotonic()
        assert cloud.site_probe("hung", timeout=1) is False
        assert time.monotonic() - began < 3
    assert cloud.site_probe("not-in-clouds-yaml", timeout=1) is False


def test_a_503_from_keystone_is_an_answer_not_silence(clouds):
    """keystoneauth reports a 503 to its discovery as a failure without a status;
    the site answered all the same, so its jobs must not wait for a probe."""
    clouds["devcloud"].set_faults({"http": [{"path": "^/identity", "status": 503, "rate": 1.0}]})
    try:
        cloud.connections_reset()
        with pytest.raises(cloud.Unavailable) as refused:
            cloud.server_list("devcloud")
        assert refused.value.silent is False
    finally:
        clouds["devcloud"].set_faults({})
        cloud.connections_reset()
