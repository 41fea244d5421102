"""Park and resume on the stock Nova 34 (the loopback OpenStack): the real shelve,
offload and unshelve through the portal's stack keep the machine's name and IP."""

from __future__ import annotations

from instances.models import Server
from instances.park import server_park_request, server_resume_request
from portal import cloud
from portal.models import Job
from tests.conftest import wait_for_job
from tests.integration.test_gateway import wait_until
from tests.openstack.portal_stack import SITE
from tests.openstack.test_portal_flows import JOB_TIMEOUT, boot


def test_park_and_resume_on_the_real_nova_keep_name_and_ip(os_portal):
    alice = os_portal["users"]["alice"]
    server = boot(os_portal, "park")
    name, ip = server.name, list(server.addresses)
    assert ip

    job = wait_for_job(server_park_request(server=server, actor=alice), JOB_TIMEOUT)
    assert job.status == Job.Status.SUCCEEDED, job.error
    server.refresh_from_db()
    assert server.status == "SHELVED_OFFLOADED"
    assert list(server.addresses) == ip
    image = cloud.image_get(SITE, image_id=job.result["image_id"])
    assert image.name == f"{name}-shelved"
    assert image.status == "active"
    assert image.properties["instance_uuid"] == server.openstack_id

    job = wait_for_job(server_resume_request(server=server, actor=alice), JOB_TIMEOUT)
    assert job.status == Job.Status.SUCCEEDED, job.error
    server = Server.objects.get(pk=server.pk)
    assert server.status == "ACTIVE"
    assert server.name == name
    assert list(server.addresses) == ip
    # Nova deletes the shelved image once the machine runs again.
    wait_until(lambda: not cloud.image_find_by_property(
        SITE, key="instance_uuid", value=server.openstack_id, owner=server.project_openstack_id
    ), 60)  # fmt: skip
