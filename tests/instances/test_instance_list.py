from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.factories import make_image, make_server

URL = reverse("instances:instance-list")


def names(response) -> list[str]:
    return [row.record.name for row in response.context["table"].page.object_list]


@pytest.fixture
def servers(people):
    alpha, beta = people["alpha"], people["beta"]
    return {
        "web": make_server(project=alpha, name="alpha-web", created_by=people["bob"]),
        "db": make_server(project=alpha, name="alpha-db", status="SHUTOFF"),
        "broken": make_server(project=alpha, name="alpha-broken", status="ERROR"),
        "beta": make_server(project=beta, name="beta-rstudio"),
    }


def test_it_requires_login(client, servers):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_lists_every_existing_instance_of_the_projects_by_default(client, people, servers):
    """Trouble is visible by default: a VM in ERROR (a failed workshop build still
    uses quota) shows without touching the filter; deleted ones do not."""
    client.force_login(people["bob"])
    response = client.get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert "alpha-web" in body
    assert "alpha-db" in body
    assert "alpha-broken" in body  # ERROR is in the default filter
    assert "beta-rstudio" not in body  # another project
    assert response.context["table"].paginator.count == 3
    form = response.context["filter"].form
    offered = {value for value, _ in form.fields["status"].choices}
    assert {"REBOOT", "RESIZE", "parked", "PAUSED"} <= offered  # parked: Nova's shelved states


def test_it_filters_by_status_search_and_project(client, people, servers):
    client.force_login(people["alice"])
    response = client.get(URL, {"status": ["ERROR"], "filtered": "1"})
    assert names(response) == ["alpha-broken"]
    response = client.get(URL, {"q": servers["db"].openstack_id[:8]})
    assert names(response) == ["alpha-db"]
    response = client.get(URL, {"q": "bob"})
    assert names(response) == ["alpha-web"]


def test_a_superuser_sees_every_project(client, people, servers):
    client.force_login(people["admin"])
    response = client.get(URL)
    assert response.context["table"].paginator.count == 4


def test_page_size_and_bad_page_numbers(client, people):
    for i in range(30):
        make_server(project=people["alpha"], name=f"node-{i:02d}")
    client.force_login(people["alice"])
    response = client.get(URL, {"per_page": "10"})
    assert len(names(response)) == 10
    assert "30 total" in response.content.decode()
    # A page size we do not offer falls back to the default; nonsense pages do not 500.
    assert len(names(client.get(URL, {"per_page": "7"}))) == 25
    assert client.get(URL, {"page": "999"}).status_code == 200
    assert client.get(URL, {"page": "abc", "per_page": "x"}).status_code == 200


def test_sorting_by_name(client, people, servers):
    client.force_login(people["alice"])
    response = client.get(URL, {"sort": "name"})
    assert names(response) == ["alpha-broken", "alpha-db", "alpha-web"]


def test_htmx_gets_only_the_table(client, people, servers):
    client.force_login(people["alice"])
    response = client.get(URL, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert 'id="instance-table"' in body
    assert '<nav class="navbar' not in body


def test_rows_in_transition_refresh_themselves(client, people):
    building = make_server(
        project=people["alpha"], name="new-vm", status="BUILD", task_state="spawning"
    )
    client.force_login(people["alice"])
    body = client.get(URL).content.decode()
    assert reverse("instances:instance-row", args=[building.pk]) in body
    row = client.get(reverse("instances:instance-row", args=[building.pk]), {"poll": "3"})
    assert row.status_code == 200
    assert 'hx-trigger="load delay:8s"' in row.content.decode()  # backs off


def test_image_names_come_from_the_mirror(client, people):
    image = make_image(site=people["site"], name="Ubuntu-22.04-LTS")
    make_server(project=people["alpha"], name="with-image", image_openstack_id=image.openstack_id)
    client.force_login(people["alice"])
    assert "Ubuntu-22.04-LTS" in client.get(URL).content.decode()


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _row(body: str, server) -> str:
    """The row of `server`, its idempotency keys and CSRF tokens (fresh per render) blanked."""
    row = re.search(rf'<tr id="server-row-{server.pk}".*?</tr>', body, re.S).group(0)
    return re.sub(r'name="(idempotency_key|csrfmiddlewaretoken)" value="\w+"', r'name="\1"', row)


def test_each_cell_sits_under_its_header(client, people):
    """The row template prints the cells itself, in the order of the table's
    columns; a refreshed row is the row the list showed."""
    image = make_image(site=people["site"], name="Ubuntu-22.04-LTS")
    server = make_server(
        project=people["alpha"], name="cells-vm", created_by=people["bob"], status="SHUTOFF",
        image_openstack_id=image.openstack_id, addresses=["10.0.0.7", "10.0.0.8"],
    )  # fmt: skip
    booted_from_volume = make_server(project=people["alpha"], image_openstack_id="")
    client.force_login(people["alice"])
    body = client.get(URL).content.decode()
    headers = [_text(h) for h in re.findall(r'<th scope="col">(.*?)</th>', body, re.S)]
    headers = [h.split(" (Not sortable")[0] for h in headers]  # a header's note why
    row = _row(body, server)
    texts = [_text(cell) for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
    assert len(texts) == len(headers) == 11
    cells = dict(zip(headers, texts, strict=True))
    assert cells["Name"] == "cells-vm"
    assert cells["Status"] == "SHUTOFF"
    assert cells["Project"] == "alpha"
    assert cells["Site"] == people["site"].display_name
    assert cells["Flavor"] == "de.NBI small (4 GiB RAM)"
    assert cells["Image"] == "Ubuntu-22.04-LTS"
    assert cells["IP addresses"] == "10.0.0.7, 10.0.0.8"
    assert cells["Created by"] == "bob"
    assert cells["Actions"] == "Create snapshot Start Park"
    assert 'aria-label="Select cells-vm"' in row
    assert 'name="csrfmiddlewaretoken"' in row
    assert "<td>—</td>" in _row(body, booted_from_volume)
    refreshed = client.get(reverse("instances:instance-row", args=[server.pk]))
    assert _row(refreshed.content.decode(), server) == row


def test_it_rejects_post(client, people):
    client.force_login(people["alice"])
    assert client.post(URL).status_code == 405


def test_actions_follow_state_and_role(client, people, servers):
    client.force_login(people["bob"])
    body = client.get(URL).content.decode()
    # bob created alpha-web: he may stop it; alpha-db is not his.
    assert reverse("instances:instance-stop", args=[servers["web"].pk]) in body
    assert reverse("instances:instance-start", args=[servers["db"].pk]) not in body
    client.force_login(people["alice"])
    body = client.get(URL).content.decode()
    assert reverse("instances:instance-start", args=[servers["db"].pk]) in body
    assert reverse("instances:instance-stop", args=[servers["db"].pk]) not in body


def test_a_server_booted_from_a_volume_says_so_in_the_image_column(client, people):
    make_server(project=people["alpha"], name="alpha-volume", image_openstack_id="")
    client.force_login(people["alice"])
    row = re.search(r"<tr id=\"server-row-.*?</tr>", client.get(URL).content.decode(), re.S)
    assert row
    assert "alpha-volume" in row.group(0)
    assert "(boot volume)" in row.group(0)
