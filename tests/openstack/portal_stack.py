"""The portal's whole stack on the loopback OpenStack: the test database, Redis, and
a real Celery worker (ticking: it sends the status watcher, the sweep and the syncs) whose
clock runs 20 s ahead of the cloud's (libfaketime), as a worker's may in production.

tests/openstack/conftest.py makes its fixtures available to every test there.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from operations.sync import site_sync
from portal import cloud
from portal.models import Membership, Project, Site
from scripts.stack import child_env, start_worker, stop_process
from tests.conftest import _wait_for_worker, test_database_url

SITE = "openstack"
WORKER_CLOCK_AHEAD = "+20s"
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")

__all__ = ["SITE", "names", "os_portal", "os_worker"]


def faketime_env() -> dict:
    """The worker's clock WORKER_CLOCK_AHEAD of the machine's (and so of the cloud's)."""
    if not LIBFAKETIME.exists():
        pytest.fail("libfaketime is missing: apt-get install faketime (.ci/run does)")
    return {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": WORKER_CLOCK_AHEAD}


@pytest.fixture(scope="session")
def os_worker(loopback_openstack, redis_server, django_db_setup, tmp_path_factory):
    base = tmp_path_factory.mktemp("os-worker")
    log_path = base / "worker.log"
    env = child_env(
        DATABASE_URL=test_database_url(),
        REDIS_URL=redis_server.url,
        OS_CLIENT_CONFIG_FILE=loopback_openstack.clouds_yaml,
        PORTAL_SITES=f"{SITE}=Loopback",
        PORTAL_VAR_DIR=base,
        JOB_POLL_MIN_SECONDS="0.5",
        JOB_POLL_MAX_SECONDS="2",
        # A wake-up the watcher loses (e.g. asking Nova "since" in the worker's clock)
        # would leave a job waiting this long: far past every test's timeout.
        JOB_WATCHED_POLL_SECONDS="600",
        JOB_NO_PROGRESS_SECONDS="60",
        JOB_UPLOAD_MIN_SECONDS="90",
        JOB_UPLOAD_SECONDS_PER_GB="0",
        JOB_BOOT_TEST_SECONDS="60",
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(base / "mail"),
        **faketime_env(),
    )
    worker = start_worker(env, concurrency=2, log_path=log_path, ticks=True)
    _wait_for_worker(redis_server.url, worker, log_path)
    yield {"process": worker, "log": log_path, "mail_dir": base / "mail"}
    stop_process(worker)


@pytest.fixture
def names():
    """A prefix for what one test makes in the cloud, so it cleans up only its own."""
    return f"pt{uuid.uuid4().hex[:6]}"


@pytest.fixture
def os_portal(loopback_openstack, os_worker, transactional_db, broker, settings, names):
    """The portal seeded for the loopback cloud: site `openstack`, projects alpha and
    beta as the cloud has them, alice (admin of alpha), bob (member of alpha), carol
    (member of beta); a full sync. Servers and images named `<names>…` are deleted
    from the cloud afterwards."""
    settings.OS_CLIENT_CONFIG_FILE = str(loopback_openstack.clouds_yaml)
    settings.PORTAL_SITES = f"{SITE}=Loopback"
    cloud.connections_reset()
    site = Site.objects.create(name=SITE, display_name="Loopback")
    projects = {
        name: Project.objects.create(
            site=site, openstack_id=loopback_openstack.projects[name], name=name
        )
        for name in ("alpha", "beta")
    }
    User = get_user_model()
    users = {
        n: User.objects.create_user(n, f"{n}@example.org", n) for n in ("alice", "bob", "carol")
    }
    Membership.objects.create(user=users["alice"], project=projects["alpha"], role="admin")
    Membership.objects.create(user=users["bob"], project=projects["alpha"], role="member")
    Membership.objects.create(user=users["carol"], project=projects["beta"], role="member")
    site_sync(site, full=True)
    yield {
        "site": Site.objects.get(pk=site.pk), "projects": projects, "users": users,
        "cloud": loopback_openstack, "worker": os_worker, "prefix": names,
    }  # fmt: skip
    _delete_made(loopback_openstack, names)
    cloud.connections_reset()


def _delete_made(loopback_openstack, prefix: str) -> None:
    admin = loopback_openstack.sdk("openstack-admin")
    servers = [s for s in admin.compute.servers(all_projects=True) if s.name.startswith(prefix)]
    for server in servers:
        admin.compute.delete_server(server.id, ignore_missing=True)
    deadline = time.monotonic() + 60
    while servers and time.monotonic() < deadline:
        servers = [s for s in servers if admin.compute.find_server(s.id, all_projects=True)]
        time.sleep(0.5)
    for image in admin.image.images():
        if image.name and image.name.startswith(prefix):
            admin.image.delete_image(image.id, ignore_missing=True)
