"""A sync's listing is older news than a refresh made while it ran: the sync never
moves a row back. (The cloud is mocked at the gateway.)"""

from __future__ import annotations

from datetime import UTC, datetime

from instances.models import Server
from instances.services import server_refresh, servers_sync
from portal import cloud
from tests.factories import make_server


def _listed(row, status) -> cloud.CloudServer:
    return cloud.CloudServer(
        id=row.openstack_id, name=row.name, status=status, task_state=None, vm_state="x",
        power_state=1, project_id=row.project_openstack_id, user_id="u",
        flavor_name=row.flavor_name, flavor_vcpus=2, flavor_ram_mib=4096, flavor_disk_gb=50,
        image_id="base-image", addresses=(), metadata={}, created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
    )  # fmt: skip


def test_a_refresh_made_while_a_sync_lists_is_not_overwritten_by_the_listing(
    people, monkeypatch
):
    row = make_server(project=people["alpha"], name="worker-1", status="SHUTOFF")
    stale = _listed(row, "SHUTOFF")  # what the listing's page says, read before the start
    fresh = _listed(row, "ACTIVE")
    monkeypatch.setattr(cloud, "server_get", lambda site, server_id: fresh)

    def pages(site, changes_since=None):
        # While the sync lists, a job starts the server and refreshes its row.
        server_refresh(row.site, openstack_id=row.openstack_id)
        assert Server.objects.get(pk=row.pk).status == "ACTIVE"
        yield [stale]

    monkeypatch.setattr(cloud, "server_pages", pages)
    servers_sync(row.site, changes_since=None)
    assert Server.objects.get(pk=row.pk).status == "ACTIVE"
