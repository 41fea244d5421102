"""Shared fixtures: demo users and projects, devcloud sites, Redis, a real worker.

The devcloud sites, Redis and the worker are session-wide processes started
the same way `make run` starts them (scripts/stack.py, devcloud.launcher).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from portal import cloud
from portal.models import Membership, Project, Site
from scripts.stack import ROOT, RedisProcess, child_env, start_worker, stop_process

DEVCLOUD_SPEED = 40.0
ARTIFACTS = ROOT / "test-artifacts"
BROWSER_TESTS = Path(__file__).resolve().parent / "browser"
# Fixtures that start a real Celery worker, or the Redis it listens on: a test using
# one is a `worker` test whether or not its file says so (`make test-fast` skips them).
WORKER_FIXTURES = {"celery_worker", "live_demo", "broker", "redis_server", "own_redis"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if WORKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.worker)
        if BROWSER_TESTS in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # Real hashing costs ~0.3 s a user; the tests create several per test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def default_language():
    # A request activates its language in the thread (LocaleMiddleware) and nothing
    # deactivates it: a German page in one test would make the next one's job titles
    # and messages German. Each test starts in the default language.
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture(autouse=True)
def empty_cache():
    # Pages cache a few aggregates for seconds (images.selectors): per test, none.
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(scope="session")
def devcloud_pair(tmp_path_factory):
    """Two devcloud sites (primary and secondary) and a clouds.yaml naming both."""
    from devcloud.launcher import DevcloudProcess

    base = tmp_path_factory.mktemp("devcloud")
    primary = DevcloudProcess(base / "one", profile="primary", speed=DEVCLOUD_SPEED).start()
    secondary = DevcloudProcess(base / "two", profile="secondary", speed=DEVCLOUD_SPEED).start()
    clouds_yaml = base / "clouds.yaml"
    entries = primary.clouds_yaml(name="devcloud", entries_only=True)
    entries += secondary.clouds_yaml(name="devcloud2", entries_only=True)
    clouds_yaml.write_text("clouds:\n" + entries)
    yield {"devcloud": primary, "devcloud2": secondary, "clouds_yaml": clouds_yaml}
    primary.stop()
    secondary.stop()


@pytest.fixture
def clouds(devcloud_pair, settings):
    """Point the gateway at the devcloud sites for this test."""
    settings.OS_CLIENT_CONFIG_FILE = str(devcloud_pair["clouds_yaml"])
    settings.PORTAL_SITES = "devcloud=Bielefeld,devcloud2=Heidelberg"
    cloud.connections_reset()
    yield devcloud_pair
    cloud.connections_reset()


@pytest.fixture
def site(db):
    return Site.objects.create(name="devcloud", display_name="Bielefeld")


@pytest.fixture
def people(db, site):
    """alpha: alice admin, bob member; beta: carol member; admin superuser; eve in nothing."""
    User = get_user_model()
    users = {
        name: User.objects.create_user(name, f"{name}@example.org", name)
        for name in ("alice", "bob", "carol", "eve")
    }
    users["admin"] = User.objects.create_superuser("admin", "admin@example.org", "admin")
    alpha = Project.objects.create(site=site, openstack_id="p-alpha", name="alpha")
    beta = Project.objects.create(site=site, openstack_id="p-beta", name="beta")
    Membership.objects.create(user=users["alice"], project=alpha, role="admin")
    Membership.objects.create(user=users["bob"], project=alpha, role="member")
    Membership.objects.create(user=users["carol"], project=beta, role="member")
    return {**users, "alpha": alpha, "beta": beta, "site": site}


@pytest.fixture
def demo(clouds, db):
    """What `make run` seeds: demo users, projects linked to devcloud, a full sync."""
    return _seeded(clouds)


def _seeded(clouds) -> dict:
    from operations.demo import demo_seed

    demo_seed()
    User = get_user_model()
    return {
        "users": {u.username: u for u in User.objects.all()},
        "projects": {p.name: p for p in Project.objects.select_related("site")},
        "sites": {s.name: s for s in Site.objects.all()},
        "clouds": clouds,
    }


def sdk_connection(devcloud_pair, name="devcloud"):
    """An openstacksdk connection as the admin, for changes made "out of band"."""
    import openstack.config
    import openstack.connection

    config = openstack.config.OpenStackConfig(
        config_files=[str(devcloud_pair["clouds_yaml"])], load_envvars=False
    )
    return openstack.connection.Connection(config=config.get_one(cloud=name))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    redis = RedisProcess(tmp_path_factory.mktemp("redis")).start()
    yield redis
    redis.stop()


@pytest.fixture
def own_redis(tmp_path_factory):
    """A Redis of this test's own: the session's worker listens on the shared one and
    would take these jobs (with its own clouds.yaml and settings)."""
    redis = RedisProcess(tmp_path_factory.mktemp("redis")).start()
    yield redis
    redis.stop()


@contextlib.contextmanager
def sending_to(broker_url: str):
    """The engine's messages go to another Redis for a while, through a Celery app of
    their own: the portal's app, its pools and the shared broker stay as they are."""
    from unittest import mock

    from celery import Celery

    from portal.jobs import ADVANCE_TASK
    from portal.jobs.sending import ADVANCE_MANY_TASK

    # Not the current app: the engine sends through `current_app`, which must stay ours.
    other = Celery("sending-to", broker=broker_url, set_as_current=False)

    def send(job_id, wake, countdown, queue=""):
        routed = {"queue": queue} if queue else {}
        other.send_task(ADVANCE_TASK, args=(job_id, wake), countdown=countdown, **routed)

    def send_many(jobs):
        other.send_task(ADVANCE_MANY_TASK, args=([list(job) for job in jobs],))

    try:
        with (
            mock.patch("portal.jobs.sending.send", send),
            mock.patch("portal.jobs.sending.send_many", send_many),
        ):
            yield
    finally:
        other.close()


@pytest.fixture(scope="session")
def celery_worker(devcloud_pair, redis_server, django_db_setup, tmp_path_factory):
    """A real Celery worker process on the test database, Redis and devcloud."""
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    env = child_env(
        DATABASE_URL=test_database_url(),
        REDIS_URL=redis_server.url,
        OS_CLIENT_CONFIG_FILE=devcloud_pair["clouds_yaml"],
        PORTAL_SITES="devcloud=Bielefeld,devcloud2=Heidelberg",
        JOB_POLL_MIN_SECONDS="0.2",
        JOB_POLL_MAX_SECONDS="1",
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(log_path.parent / "mail"),
        # Short, so tests of a cloud that stops making progress end in seconds.
        JOB_NO_PROGRESS_SECONDS="6",
        JOB_UPLOAD_MIN_SECONDS="6",
        JOB_UPLOAD_SECONDS_PER_GB="0",
    )
    worker = start_worker(env, concurrency=2, log_path=log_path, include=("tests.job_kinds",))
    _wait_for_worker(redis_server.url, worker, log_path)
    yield {
        "process": worker, "log": log_path, "mail_dir": log_path.parent / "mail",
        "env": env, "redis_url": redis_server.url,
    }  # fmt: skip
    stop_process(worker)


def test_database_url() -> str:
    """The URL of the test database (SQLite file or PostgreSQL), for processes the
    tests start: a worker must see the rows the test writes."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    return (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


def _wait_for_worker(redis_url: str, worker: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited: {log_path.read_text()[-3000:]}")
        if log_path.exists() and "ready." in log_path.read_text():
            return
        time.sleep(0.2)
    raise TimeoutError(f"worker not ready: {log_path.read_text()[-3000:]}")


@pytest.fixture
def broker(redis_server, settings):
    """Send tasks from the test process to the real Redis the worker listens on."""
    from config.celery import app

    settings.CELERY_BROKER_URL = redis_server.url
    app.conf.broker_url = redis_server.url
    app.conf.task_always_eager = False
    return app


@pytest.fixture
def artifacts_dir():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def live_demo(clouds, transactional_db, celery_worker, broker):
    """The demo seed on a database a real worker shares, with tasks going to real Redis."""
    return {**_seeded(clouds), "worker": celery_worker}


def wait_for_job(job, timeout=60.0):
    """Poll the job row (the truth) until it ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_finished:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job.pk} still {job.status} at {job.progress!r}: {job.steps}")


def write_unreachable_clouds_yaml(path, *, name: str, port: int) -> str:
    """A clouds.yaml whose entry `name` points at a port nobody listens on."""
    path.write_text(
        f"clouds:\n  {name}:\n    auth:\n      auth_url: http://127.0.0.1:{port}/identity\n"
        "      username: a\n      password: b\n      project_name: c\n"
        "      user_domain_name: Default\n      project_domain_name: Default\n"
        "    identity_api_version: 3\n"
    )
    return str(path)


@pytest.fixture(scope="session")
def devidp_server(tmp_path_factory):
    """devidp, the loopback OpenID Connect provider (its own process, real HTTP)."""
    from devidp.launcher import DevIdpProcess
    from tests.oidc_flow import fresh_config

    idp = DevIdpProcess(tmp_path_factory.mktemp("devidp"), fresh_config()).start()
    yield idp
    idp.stop()


@pytest.fixture
def oidc(devidp_server, settings):
    """The portal signing in through devidp, whose users and claims start afresh."""
    from portal.oidc import discovery_forget
    from tests.oidc_flow import CLIENT_ID, CLIENT_SECRET, fresh_config

    devidp_server.write_config(fresh_config())
    settings.PORTAL_OIDC_ENABLED = True
    settings.PORTAL_OIDC_PROVIDER_NAME = "devidp"
    settings.PORTAL_OIDC_ISSUER = devidp_server.issuer
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    discovery_forget()
    yield devidp_server
    discovery_forget()
