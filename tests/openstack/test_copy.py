"""A copy from the loopback OpenStack's Glance to devcloud, through the portal's job
on its own "transfer" queue: the real Glance serves the bytes and its hashes, and
devcloud's hash of what it received must be the same."""

from __future__ import annotations

import hashlib

import pytest

from images.copy import COPIED_FROM_KEY, image_copy_request
from images.models import Image
from images.services import image_refresh
from portal import cloud
from portal.jobs import JOB_KEY, job_key
from portal.models import Job, Membership, Project, Site
from scripts.stack import child_env, start_worker, stop_process
from tests import conftest as shared
from tests.conftest import _wait_for_worker, wait_for_job
from tests.openstack.portal_stack import SITE

MIB = 1024 * 1024


@pytest.fixture
def two_sites(os_portal, devcloud_pair, redis_server, settings, tmp_path):
    """The loopback site plus devcloud (alpha there, alice its admin), one clouds.yaml
    naming both, and a worker of its own on the transfer queue."""
    clouds_yaml = tmp_path / "clouds.yaml"
    text = os_portal["cloud"].clouds_yaml.read_text()
    clouds_yaml.write_text(
        text.rstrip("\n")
        + "\n"
        + devcloud_pair["devcloud"].clouds_yaml(name="devcloud", entries_only=True)
    )
    settings.OS_CLIENT_CONFIG_FILE = str(clouds_yaml)
    settings.PORTAL_SITES = f"{SITE}=Loopback,devcloud=Bielefeld"
    cloud.connections_reset()
    site = Site.objects.create(name="devcloud", display_name="Bielefeld")
    alpha_id = next(p.id for p in cloud.project_list("devcloud") if p.name == "alpha")
    alpha = Project.objects.create(site=site, openstack_id=alpha_id, name="alpha")
    Membership.objects.create(user=os_portal["users"]["alice"], project=alpha, role="admin")
    env = child_env(
        DATABASE_URL=shared.test_database_url(),
        REDIS_URL=redis_server.url,
        OS_CLIENT_CONFIG_FILE=clouds_yaml,
        PORTAL_SITES=settings.PORTAL_SITES,
        PORTAL_VAR_DIR=tmp_path,
        JOB_POLL_MIN_SECONDS="0.5",
        JOB_POLL_MAX_SECONDS="2",
    )
    log_path = tmp_path / "transfer.log"
    worker = start_worker(env, concurrency=1, log_path=log_path, queues=("transfer",))
    _wait_for_worker(redis_server.url, worker, log_path)
    yield {"target": alpha}
    stop_process(worker)
    cloud.connections_reset()


def test_an_image_at_the_loopback_openstack_is_copied_to_devcloud(os_portal, two_sites, names):
    alpha = os_portal["projects"]["alpha"]
    made = cloud.image_create(
        SITE, project_id=alpha.openstack_id, name=f"{names}-to-devcloud", disk_format="raw",
        container_format="bare", min_disk=1, min_ram=64,
        properties={"image_type": "snapshot", "os_distro": "cirros",
                    "instance_uuid": "11111111-2222-3333-4444-555555555555"},
    )  # fmt: skip
    data = bytes(range(256)) * (5 * MIB // 256)
    owner = os_portal["cloud"].sdk("openstack-alpha-user")
    put = owner.image.put(
        f"/images/{made.id}/file", data=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert put.status_code == 204, put.text
    source_row = image_refresh(os_portal["site"], openstack_id=made.id, made_for=alpha)
    assert source_row is not None
    assert source_row.status == "active"
    job = image_copy_request(
        image=source_row, actor=os_portal["users"]["alice"], target=two_sites["target"]
    )
    job = wait_for_job(job, 120)
    copy_id = job.result.get("image_id", "")
    try:
        assert job.status == Job.Status.SUCCEEDED, job.error
        copy = cloud.image_get("devcloud", image_id=copy_id)
        source = cloud.image_get(SITE, image_id=made.id)
        assert source.hash_value == hashlib.sha512(data).hexdigest()  # Glance's own hash
        assert copy.hash_value == source.hash_value
        assert copy.size == len(data)
        assert copy.properties["os_distro"] == "cirros"
        assert "instance_uuid" not in copy.properties
        assert copy.properties[JOB_KEY] == job_key(job)
        assert copy.properties[COPIED_FROM_KEY] == f"{SITE}:{made.id}"
        row = Image.objects.get(site__name="devcloud", openstack_id=copy_id)
        assert row.copied_from_site == os_portal["site"]
    finally:
        if copy_id:
            cloud.image_delete("devcloud", image_id=copy_id)
