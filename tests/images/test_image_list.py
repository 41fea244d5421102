from __future__ import annotations

import pytest
from django.urls import reverse

from portal.models import Site
from tests.factories import make_image

URL = reverse("images:image-list")


@pytest.fixture
def catalog(people):
    one = people["site"]
    two = Site.objects.create(name="devcloud2", display_name="Heidelberg")
    rows = {}
    for site in (one, two):
        rows[("ubuntu", site.name)] = make_image(
            site=site, name="Ubuntu-22.04-LTS", tags=[], checksum="u1"
        )
        rows[("debian", site.name)] = make_image(
            site=site, name="Debian-12", checksum="d1" if site == one else "d2",
            min_disk=20 if site == one else 25,
        )  # fmt: skip
    rows["rstudio"] = make_image(site=one, name="RStudio-Ubuntu-22.04", tags=["rstudio"])
    make_image(site=one, project=people["alpha"], snapshot=True, name="mine",
               base_image_openstack_id=rows[("ubuntu", "devcloud")].openstack_id)  # fmt: skip
    make_image(site=one, project=people["beta"], snapshot=True, name="theirs",
               base_image_openstack_id=rows[("ubuntu", "devcloud")].openstack_id)  # fmt: skip
    return rows


def matrix(response):
    return {row.name: [cell.state for _, cell in row.cells] for row in response.context["rows"]}


def test_it_shows_the_catalog_with_a_site_matrix(client, people, catalog):
    client.force_login(people["bob"])
    response = client.get(URL)
    assert response.status_code == 200
    cells = matrix(response)
    assert set(cells) == {"Debian-12", "RStudio-Ubuntu-22.04", "Ubuntu-22.04-LTS"}
    assert cells["RStudio-Ubuntu-22.04"] == ["present", "missing"]
    assert cells["Ubuntu-22.04-LTS"] == ["present", "present"]
    # Two variants of Debian-12, one each: whichever is the reference, the other differs.
    debian = next(r for r in response.context["rows"] if r.name == "Debian-12")
    assert sorted(c.state for _, c in debian.cells) == ["differs", "present"]
    assert "checksum" in next(c for _, c in debian.cells if c.state == "differs").differences
    body = response.content.decode()
    assert "rstudio" in body
    assert "missing" in body
    assert "mine" not in body  # snapshots are not listed here


def test_snapshot_counts_are_of_my_projects_only(client, people, catalog):
    client.force_login(people["bob"])
    ubuntu = next(r for r in client.get(URL).context["rows"] if r.name == "Ubuntu-22.04-LTS")
    assert ubuntu.snapshot_count == 1
    client.force_login(people["admin"])
    ubuntu = next(r for r in client.get(URL).context["rows"] if r.name == "Ubuntu-22.04-LTS")
    assert ubuntu.snapshot_count == 2


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"name": "ubuntu"}, {"Ubuntu-22.04-LTS", "RStudio-Ubuntu-22.04"}),
        ({"tag": "rstudio"}, {"RStudio-Ubuntu-22.04"}),
        ({"tag": "nonsense"}, set()),
        ({"site": "999"}, set()),
    ],
)
def test_filters(client, people, catalog, params, expected):
    client.force_login(people["bob"])
    response = client.get(URL, params)
    assert response.status_code == 200
    assert {r.name for r in response.context["rows"]} == expected


def test_site_filter_keeps_the_other_sites_cells(client, people, catalog):
    client.force_login(people["bob"])
    two = Site.objects.get(name="devcloud2")
    response = client.get(URL, {"site": two.pk})
    assert matrix(response)["Ubuntu-22.04-LTS"] == ["present", "present"]
    assert "RStudio-Ubuntu-22.04" not in matrix(response)


def test_it_requires_login_and_rejects_post(client, people, catalog):
    assert client.get(URL).status_code == 302
    client.force_login(people["bob"])
    assert client.post(URL).status_code == 405


def test_it_prints_each_cell_as_the_row_template_did(client, people, catalog):
    # Guard for images.tables.CatalogRows (the rows left the template for speed): the
    # links, labels and escaping a reader and a screen reader get, per cell state.
    copied = make_image(site=people["site"], name="<Fedora>", tags=["a&b"], min_ram=2048,
                        copied_from_image_id="elsewhere")  # fmt: skip
    client.force_login(people["bob"])
    body = client.get(URL).content.decode()
    copy_url = reverse("images:image-copy", args=[copied.pk])
    assert "<td>&lt;Fedora&gt;</td>" in body
    assert '<span class="badge text-bg-primary">a&amp;b</span> ' in body
    assert "<td>20 GB / 2 GiB</td>" in body
    assert (
        f'<a class="badge text-bg-info text-decoration-none" href="{copy_url}" '
        'title="copied by the portal: where it exists">copy</a> '
        '<span class="badge text-bg-success" title="present">present</span>'
    ) in body
    two = Site.objects.get(name="devcloud2")
    assert (
        f'<span class="badge text-bg-danger">missing</span> <a class="small" '
        f'href="{copy_url}?site={two.pk}" aria-label="copy here: &lt;Fedora&gt; to Heidelberg">'
        "copy here</a>"
    ) in body
    assert (
        '<span class="badge text-bg-warning" title="differs in checksum, min disk">'
        "differs: checksum, min disk</span>"
    ) in body
