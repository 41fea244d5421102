"""Out-of-band changes an operator makes on the session's devcloud, undone after."""

from __future__ import annotations

import contextlib

from instances.models import Server
from instances.services import server_refresh
from operations.sync import site_sync
from portal import cloud
from portal.models import Project
from tests.conftest import sdk_connection
from tests.integration.test_gateway import wait_until


@contextlib.contextmanager
def second_network(live_demo, *, project: str, name: str):
    """A network of the project's own beside the shared one; synced. Yields its id."""
    conn = sdk_connection(live_demo["clouds"])
    owner = Project.objects.select_related("site").get(name=project)
    made = conn.network.post(
        "/networks", json={"network": {"name": name, "project_id": owner.openstack_id}}
    )
    made.raise_for_status()
    network_id = made.json()["network"]["id"]
    site_sync(owner.site, full=False)
    try:
        yield network_id
    finally:
        for server in Server.objects.filter(site=owner.site, project=owner, name="two-nets"):
            conn.compute.delete_server(server.openstack_id, ignore_missing=True)
            wait_until(lambda sid=server.openstack_id: _gone(owner.site.name, sid))
        conn.network.delete(f"/networks/{network_id}")
        site_sync(owner.site, full=False)


def _gone(site_name: str, server_id: str) -> bool:
    try:
        cloud.server_get(site_name, server_id=server_id)
    except cloud.NotFound:
        return True
    return False


@contextlib.contextmanager
def lock(live_demo, server_name: str, *, reason: str):
    """The operators lock a machine (Nova's lock, with a reason); refreshed."""
    server = Server.objects.select_related("site").get(name=server_name)
    conn = sdk_connection(live_demo["clouds"])
    action = f"/servers/{server.openstack_id}/action"
    body = {"lock": {"locked_reason": reason}}
    conn.compute.post(action, json=body, microversion="2.73").raise_for_status()
    server_refresh(server.site, openstack_id=server.openstack_id)
    try:
        yield server
    finally:
        conn.compute.post(action, json={"unlock": None}).raise_for_status()
        server_refresh(server.site, openstack_id=server.openstack_id)
