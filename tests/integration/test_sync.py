"""The mirror against devcloud: out-of-band changes show after a sync; pages never call the cloud."""

from __future__ import annotations

import pytest
from django.urls import reverse

from images.models import Image
from instances.models import Flavor, Server
from operations.sync import site_sync
from portal import cloud
from scripts.stack import free_port
from tests.conftest import sdk_connection, write_unreachable_clouds_yaml
from tests.integration.test_gateway import wait_until


def test_the_demo_seed_mirrors_both_sites(demo):
    site = demo["sites"]["devcloud"]
    alpha = demo["projects"]["alpha"]
    servers = Server.objects.filter(site=site, project=alpha)
    assert servers.count() >= 6
    assert {"ACTIVE", "SHUTOFF", "ERROR"} <= set(servers.values_list("status", flat=True))
    assert Flavor.objects.filter(site=site, ram_mib=524_288).exists()
    assert Image.objects.filter(site=site, is_snapshot=True, project=alpha).count() >= 10
    gamma = demo["projects"]["gamma"]
    assert gamma.site.name == "devcloud2"
    assert Server.objects.filter(project=gamma).exists()
    assert site.last_sync_at is not None
    assert site.is_reachable


@pytest.mark.parametrize("full", [True, False])
def test_out_of_band_create_stop_and_delete_show_after_a_sync(demo, full):
    site = demo["sites"]["devcloud"]
    conn = sdk_connection(demo["clouds"])
    alpha = demo["projects"]["alpha"]
    scoped = conn.connect_as(project_id=alpha.openstack_id)
    image = Image.objects.get(site=site, name="Ubuntu-22.04-LTS")
    flavor = Flavor.objects.get(site=site, name="de.NBI tiny")
    made = scoped.compute.create_server(
        name=f"oob-{full}",
        flavor_id=flavor.openstack_id,
        image_id=image.openstack_id,
        networks="auto",
    )
    site_sync(site, full=full)
    row = Server.objects.get(site=site, openstack_id=made.id)
    assert row.project == alpha
    # Whatever the listing said: devcloud boots it within seconds, so on a busy
    # machine the sync may already find it ACTIVE.
    assert row.status in {"BUILD", "ACTIVE"}

    wait_until(lambda: conn.compute.get_server(made.id).status == "ACTIVE")
    conn.compute.stop_server(made.id)
    wait_until(lambda: conn.compute.get_server(made.id).status == "SHUTOFF")
    site.refresh_from_db()
    site_sync(site, full=full)
    row.refresh_from_db()
    assert row.status == "SHUTOFF"
    assert row.power_state == 4

    conn.compute.delete_server(made.id)
    wait_until(lambda: conn.compute.find_server(made.id) is None)
    site.refresh_from_db()
    site_sync(site, full=full)
    row.refresh_from_db()
    assert row.deleted_at is not None  # marked, not dropped: the detail page can say so


def test_an_image_deleted_out_of_band_vanishes_on_a_full_sync(demo):
    site = demo["sites"]["devcloud"]
    conn = sdk_connection(demo["clouds"])
    victim = Image.objects.filter(site=site, is_snapshot=True, protected=False).first()
    conn.image.delete_image(victim.openstack_id)
    site.refresh_from_db()
    site_sync(site, full=True)
    victim.refresh_from_db()
    assert victim.deleted_at is not None


def test_an_unchanged_site_syncs_without_writes(demo):
    site = demo["sites"]["devcloud"]
    result = site_sync(site, full=True)
    assert (result["servers"].created, result["servers"].updated) == (0, 0)
    assert (result["images"].created, result["images"].updated) == (0, 0)


def test_an_unreachable_site_is_noted_and_pages_still_render(demo, client, tmp_path, settings):
    site = demo["sites"]["devcloud"]
    settings.OS_CLIENT_CONFIG_FILE = write_unreachable_clouds_yaml(
        tmp_path / "clouds.yaml", name="devcloud", port=free_port()
    )
    cloud.connections_reset()
    with pytest.raises(cloud.Unavailable):
        site_sync(site, full=False)
    site.refresh_from_db()
    assert site.unreachable_since is not None
    assert "unreachable" in site.last_error
    # The site's last error (on the admin's site page) does not name Keystone's address.
    assert "127.0.0.1" not in site.last_error
    assert "http" not in site.last_error

    client.force_login(demo["users"]["alice"])
    page = client.get(reverse("instances:instance-list"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Bielefeld</strong> unreachable since" in body
    assert "alpha-web-01" in body  # still rendered from the mirror
    # Actions on that site are refused with a message, nothing is submitted.
    server = Server.objects.get(site=site, name="alpha-web-01")
    response = client.post(reverse("instances:instance-stop", args=[server.pk]))
    assert response.status_code == 409
    assert "unreachable" in response.content.decode()


def access_log_lines(devcloud) -> int:
    with open(devcloud.access_log_path) as log:
        return sum(1 for _ in log)


def test_page_views_make_zero_calls_to_the_cloud(demo, client):
    alice = demo["users"]["alice"]
    server = Server.objects.filter(project=demo["projects"]["alpha"], status="ACTIVE").first()
    snapshot = Image.objects.filter(is_snapshot=True, project=demo["projects"]["alpha"]).first()
    client.force_login(alice)
    primary, secondary = demo["clouds"]["devcloud"], demo["clouds"]["devcloud2"]
    before = access_log_lines(primary), access_log_lines(secondary)
    for url in [
        reverse("instances:instance-list"),
        reverse("instances:instance-list") + "?status=ERROR&filtered=1&per_page=10&sort=-name",
        reverse("instances:instance-detail", args=[server.pk]),
        reverse("instances:instance-row", args=[server.pk]),
        reverse("images:image-list"),
        reverse("snapshots:snapshot-list"),
        reverse("snapshots:snapshot-create", args=[server.pk]),
        reverse("snapshots:snapshot-delete") + f"?selected={snapshot.pk}",
        reverse("job-list"),
    ]:
        assert client.get(url).status_code in (200, 400, 409), url
    assert (access_log_lines(primary), access_log_lines(secondary)) == before


def test_a_sync_in_small_pages_and_batches_mirrors_everything_once(clouds, site, monkeypatch):
    """Listings arrive page by page and are written a batch at a time: the
    mirror must end up the same as the cloud, and a second full sync write nothing."""
    import images.services
    import instances.services
    from portal.cloud import compute, image

    monkeypatch.setattr(compute, "PAGE_SIZE", 3)
    monkeypatch.setattr(image, "PAGE_SIZE", 4)
    monkeypatch.setattr(images.services, "WRITE_BATCH", 5)
    monkeypatch.setattr(instances.services, "WRITE_BATCH", 2)
    servers = {s.id for s in cloud.server_list("devcloud")}
    images_ = {i.id for i in cloud.image_list("devcloud")}

    cold = site_sync(site, full=True)
    assert cold["servers"].created == len(servers)
    assert cold["images"].created == len(images_)
    assert set(Server.objects.filter(site=site).values_list("openstack_id", flat=True)) == servers
    assert set(Image.objects.filter(site=site).values_list("openstack_id", flat=True)) == images_

    site.refresh_from_db()
    warm = site_sync(site, full=True)
    for kind in ("servers", "images"):
        assert (warm[kind].created, warm[kind].updated, warm[kind].deleted) == (0, 0, 0)


@pytest.mark.parametrize("enabled_before", [True, False])
def test_a_sync_lists_with_the_cycle_collector_paused_and_leaves_it_as_it_was(
    clouds, site, monkeypatch, enabled_before
):
    """A full sync holds a few million young objects at once; the cyclic collector
    walked them over and over (a third of a cold sync's CPU). It pauses while the
    listings are read and written, and is left as the sync found it, error or not."""
    import gc

    from portal.cloud import compute, image

    seen = []

    def spying(pages):
        def listing(*args, **kwargs):
            seen.append(gc.isenabled())
            return pages(*args, **kwargs)

        return listing

    monkeypatch.setattr(cloud, "image_pages", spying(image.image_pages))
    monkeypatch.setattr(cloud, "server_pages", spying(compute.server_pages))
    was = gc.isenabled()
    (gc.enable if enabled_before else gc.disable)()
    try:
        site_sync(site, full=True)
        assert seen == [False, False]
        assert gc.isenabled() is enabled_before

        def unavailable(*args, **kwargs):
            raise cloud.Unavailable("the cloud went away", site="devcloud")

        monkeypatch.setattr(cloud, "image_pages", unavailable)
        site.refresh_from_db()
        with pytest.raises(cloud.Unavailable):
            site_sync(site, full=True)
        assert gc.isenabled() is enabled_before
    finally:
        (gc.enable if was else gc.disable)()
