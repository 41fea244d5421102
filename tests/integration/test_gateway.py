"""The gateway through the real openstacksdk over HTTP to devcloud."""

from __future__ import annotations

import time

import pytest

from portal import cloud
from tests.conftest import sdk_connection, write_unreachable_clouds_yaml


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def project_id(clouds, name):
    conn = sdk_connection(clouds)
    return next(p.id for p in conn.identity.projects() if p.name == name)


def test_server_list_returns_plain_values_for_every_project(clouds):
    servers = cloud.server_list("devcloud")
    assert servers
    assert all(isinstance(s, cloud.CloudServer) for s in servers)
    names = {s.name for s in servers}
    assert any(n.startswith("alpha-") for n in names)
    assert any(n.startswith("beta-") for n in names)
    big = next(s for s in servers if s.flavor_name == "de.NBI highmem 2xlarge")
    assert big.flavor_ram_mib == 524_288


def test_server_list_follows_pagination_to_the_end(clouds, monkeypatch):
    from portal.cloud import compute

    expected = {s.id for s in cloud.server_list("devcloud")}
    monkeypatch.setattr(compute, "PAGE_SIZE", 2)  # many small pages
    assert {s.id for s in cloud.server_list("devcloud")} == expected


def test_image_list_pages_and_filters_custom_properties_server_side(clouds, monkeypatch):
    from portal.cloud import image

    everything = cloud.image_list("devcloud")
    snapshots = cloud.image_list("devcloud", properties={"image_type": "snapshot"})
    assert snapshots
    assert all(i.is_snapshot for i in snapshots)
    assert len(snapshots) < len(everything)
    monkeypatch.setattr(image, "PAGE_SIZE", 3)
    assert {i.id for i in cloud.image_list("devcloud")} == {i.id for i in everything}


def test_flavors_include_private_ones_and_ram_in_mib(clouds):
    flavors = {f.name: f for f in cloud.flavor_list("devcloud")}
    assert flavors["de.NBI highmem xlarge"].ram_mib == 262_144
    assert flavors["de.NBI gpu"].is_public is False


def test_errors_are_translated(clouds):
    with pytest.raises(cloud.NotFound):
        cloud.server_get("devcloud", server_id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(cloud.NotFound):
        cloud.image_get("devcloud", image_id="00000000-0000-0000-0000-000000000000")
    stopped = next(s for s in cloud.server_list("devcloud") if s.status == "SHUTOFF")
    with pytest.raises(cloud.Conflict) as info:
        cloud.server_stop("devcloud", server_id=stopped.id)
    assert info.value.status == 409


def test_an_unreachable_site_is_unavailable(clouds, tmp_path, settings):
    from scripts.stack import free_port

    settings.OS_CLIENT_CONFIG_FILE = write_unreachable_clouds_yaml(
        tmp_path / "clouds.yaml", name="nowhere", port=free_port()
    )
    cloud.connections_reset()
    with pytest.raises(cloud.Unavailable) as info:
        cloud.server_list("nowhere")
    # Shown to users as it is: the site's name, not Keystone's address.
    assert "nowhere is unreachable" in info.value.message
    assert "127.0.0.1" not in info.value.message
    assert "http" not in info.value.message
    with pytest.raises(cloud.Unavailable):
        cloud.server_list("not-in-clouds-yaml")


def test_stop_start_and_snapshot_in_the_servers_project(clouds):
    conn = sdk_connection(clouds)
    alpha = project_id(clouds, "alpha")
    image = next(i for i in cloud.image_list("devcloud") if i.name == "Ubuntu-22.04-LTS")
    flavor = next(f for f in cloud.flavor_list("devcloud") if f.name == "de.NBI tiny")
    server = cloud.server_create(
        "devcloud", project_id=alpha, name="gw-test", flavor_id=flavor.id, image_id=image.id,
        metadata={"portal_user": "alice"},
    )  # fmt: skip
    assert server.project_id == alpha
    assert server.metadata["portal_user"] == "alice"
    wait_until(lambda: cloud.server_get("devcloud", server_id=server.id).status == "ACTIVE")

    cloud.server_stop("devcloud", server_id=server.id)
    wait_until(lambda: cloud.server_get("devcloud", server_id=server.id).status == "SHUTOFF")

    image_id = cloud.server_create_image(
        "devcloud", project_id=alpha, server_id=server.id, name="gw-snap",
        metadata={"portal_job": "job-gw"},
    )  # fmt: skip
    made = cloud.image_find_by_property("devcloud", key="portal_job", value="job-gw")
    assert [i.id for i in made] == [image_id]
    snap = wait_until(
        lambda: (i := cloud.image_get("devcloud", image_id=image_id)).status == "active" and i
    )
    assert snap.owner == alpha  # owned by the project, not the service account's
    assert snap.is_snapshot
    assert snap.properties["instance_uuid"] == server.id

    cloud.image_delete("devcloud", image_id=image_id)
    with pytest.raises(cloud.NotFound):
        cloud.image_delete("devcloud", image_id=image_id)
    conn.compute.delete_server(server.id)


def test_limits_of_a_project(clouds):
    limits = cloud.limits_get("devcloud", project_id=project_id(clouds, "alpha"))
    assert limits.max_instances > limits.used_instances >= 1
    assert limits.max_ram_mib > 0


def test_server_pages_come_page_by_page_across_several_pages(clouds, monkeypatch):
    from portal.cloud import compute

    expected = sorted(s.id for s in cloud.server_list("devcloud"))
    monkeypatch.setattr(compute, "PAGE_SIZE", 3)
    pages = list(cloud.server_pages("devcloud"))
    # Nova links a next page whenever one is full, so the last one may be empty.
    assert len(pages) > 2
    assert all(len(page) <= 3 for page in pages)
    assert sorted(s.id for page in pages for s in page) == expected  # each server once


def test_image_pages_come_page_by_page_and_updated_since_lists_only_the_changed(
    clouds, monkeypatch
):
    from datetime import UTC, datetime

    from portal.cloud import image

    everything = cloud.image_list("devcloud")
    monkeypatch.setattr(image, "PAGE_SIZE", 4)
    pages = list(cloud.image_pages("devcloud"))
    assert len(pages) > 2
    assert all(len(page) <= 4 for page in pages)
    assert sorted(i.id for p in pages for i in p) == sorted(i.id for i in everything)

    # Glance compares whole seconds: start on a fresh one so the change is strictly after.
    time.sleep(1.05 - datetime.now(UTC).microsecond / 1e6)
    moment = datetime.now(UTC)
    time.sleep(1.05)
    victim = next(i for i in everything if i.status == "active" and not i.protected)
    sdk_connection(clouds).image.add_tag(victim.id, "touched")
    changed = [i for page in cloud.image_pages("devcloud", updated_since=moment) for i in page]
    assert victim.id in {i.id for i in changed}
    assert len(changed) < len(everything)
    assert next(i for i in changed if i.id == victim.id).tags == (*victim.tags, "touched")
    sdk_connection(clouds).image.remove_tag(victim.id, "touched")


def test_changes_since_lists_a_server_deleted_since_across_pages(clouds, monkeypatch):
    """Nova's changes-since also returns servers deleted since (status DELETED):
    that is how an incremental sync notices deletions."""
    from datetime import UTC, datetime, timedelta

    from portal.cloud import compute

    conn = sdk_connection(clouds)
    image_id = next(i.id for i in cloud.image_list("devcloud") if i.name == "Ubuntu-22.04-LTS")
    flavor_id = next(f.id for f in cloud.flavor_list("devcloud") if f.name == "de.NBI tiny")
    moment = datetime.now(UTC) - timedelta(seconds=1)
    made = cloud.server_create(
        "devcloud", project_id=project_id(clouds, "alpha"), name="gw-gone", flavor_id=flavor_id,
        image_id=image_id, metadata={},
    )  # fmt: skip
    conn.compute.delete_server(made.id)
    wait_until(lambda: conn.compute.find_server(made.id) is None)

    monkeypatch.setattr(compute, "PAGE_SIZE", 1)  # whatever else changed: one per page
    changed = [s for page in cloud.server_pages("devcloud", changes_since=moment) for s in page]
    gone = next(s for s in changed if s.id == made.id)
    assert gone.status == "DELETED"
    assert gone.is_deleted
    assert made.id not in {s.id for s in cloud.server_list("devcloud")}  # a full listing: absent


def test_an_unreachable_site_fails_a_paged_listing_with_the_portals_error(
    clouds, tmp_path, settings
):
    """The pages are fetched in a background thread; its errors reach the caller translated."""
    from scripts.stack import free_port

    settings.OS_CLIENT_CONFIG_FILE = write_unreachable_clouds_yaml(
        tmp_path / "clouds.yaml", name="nowhere", port=free_port()
    )
    cloud.connections_reset()
    with pytest.raises(cloud.Unavailable):
        list(cloud.image_pages("nowhere"))
    with pytest.raises(cloud.Unavailable):
        next(iter(cloud.server_pages("nowhere")))


def test_the_environments_proxy_settings_still_apply_to_every_call(clouds, monkeypatch):
    """The environment is read once per process and host: a proxy it names is used
    (here a closed port: the call cannot get through), and no_proxy still exempts."""
    from portal.cloud.connection import connections_reset

    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    connections_reset()
    assert cloud.server_list("devcloud")
    assert cloud.server_list("devcloud")  # the second call from what was read once
    monkeypatch.delenv("NO_PROXY")
    connections_reset()
    with pytest.raises(cloud.Unavailable):
        cloud.server_list("devcloud")
    with pytest.raises(cloud.Unavailable):
        cloud.server_list("devcloud")
    connections_reset()


def test_a_calls_endpoint_is_looked_up_in_the_catalog_once_per_token(clouds, monkeypatch):
    """The service catalog comes with the token: hot calls (a job's stop, its
    snapshot request) do not search it again on every call, and a new token (here
    invalidated, as when it expires) is searched again."""
    from portal.cloud.connection import connection_for

    server = cloud.server_list("devcloud")[0]
    auth = connection_for("devcloud").session.auth
    lookups = []
    search = auth.get_endpoint

    def counted(*args, **kwargs):
        lookups.append(kwargs.get("service_type"))
        return search(*args, **kwargs)

    monkeypatch.setattr(auth, "get_endpoint", counted)
    for _ in range(3):
        assert cloud.server_get("devcloud", server_id=server.id).id == server.id
    assert lookups == []  # the listing above looked it up for this token
    auth.invalidate()
    assert cloud.server_get("devcloud", server_id=server.id).id == server.id
    assert cloud.server_get("devcloud", server_id=server.id).id == server.id
    assert lookups == ["compute"]
