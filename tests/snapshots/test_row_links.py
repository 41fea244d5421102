"""Guard: a snapshot row's links name that row's objects (the links are reversed once
per page and the row's id put in; snapshots.tables.id_urls)."""

from __future__ import annotations

from django.urls import reverse

from tests.factories import make_image, make_server


def test_each_row_links_to_its_own_project_instance_copy_and_verify(client, people):
    client.force_login(people["alice"])
    rows = []
    for _ in range(3):
        server = make_server(project=people["alpha"], created_by=people["alice"])
        snapshot = make_image(site=people["site"], project=people["alpha"], snapshot=True,
                              created_by=people["alice"], status="active",
                              source_server_openstack_id=server.openstack_id)  # fmt: skip
        rows.append((server, snapshot))
    page = client.get(reverse("snapshots:snapshot-list")).content.decode()
    assert f'href="{reverse("snapshots:snapshot-project-list", args=[people["alpha"].pk])}"' in page
    for server, snapshot in rows:
        assert f'href="{reverse("instances:instance-detail", args=[server.pk])}"' in page
        assert f'href="{reverse("images:image-copy", args=[snapshot.pk])}"' in page
        assert f'action="{reverse("snapshots:snapshot-verify", args=[snapshot.pk])}"' in page
