from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.models import Preference
from tests.factories import make_image, make_server

URL = reverse("snapshots:snapshot-list")


def names(response) -> list[str]:
    return [row.record.name for row in response.context["table"].page.object_list]


@pytest.fixture
def snaps(people):
    site, alpha, beta = people["site"], people["alpha"], people["beta"]
    now = timezone.now()
    source = make_server(project=alpha, name="source-vm")
    rows = {}
    for i, (name, project, by) in enumerate(
        [
            ("alpha-gold", alpha, people["bob"]),
            ("alpha-nightly", alpha, people["alice"]),
            ("alpha-old", alpha, None),
            ("beta-course", beta, people["carol"]),
        ]
    ):
        rows[name] = make_image(
            site=site, project=project, snapshot=True, name=name, created_by=by,
            created_at=now - timedelta(hours=i), source_server_openstack_id=source.openstack_id,
        )  # fmt: skip
    rows["base"] = make_image(site=site, name="Ubuntu-22.04-LTS")
    return rows


def test_it_lists_only_snapshots_of_my_projects(client, people, snaps):
    client.force_login(people["bob"])
    response = client.get(URL)
    assert response.status_code == 200
    assert names(response) == ["alpha-gold", "alpha-nightly", "alpha-old"]
    body = response.content.decode()
    assert "source-vm" in body  # source instance, linked
    assert snaps["alpha-gold"].openstack_id in body  # full id in the copy button


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # Names match from their start (an index answers it at 100,000 snapshots);
        # "*" in front searches anywhere in the name.
        ({"name": "Alpha-G"}, ["alpha-gold"]),
        ({"name": "gold"}, []),
        ({"name": "*gold"}, ["alpha-gold"]),
        ({"project_name": "alp"}, ["alpha-gold", "alpha-nightly", "alpha-old"]),
        ({"q": "alpha-n"}, ["alpha-nightly"]),
        ({"q": "*nightly"}, ["alpha-nightly"]),
        ({"status": "active", "name": "*a-old"}, ["alpha-old"]),
        ({"status": "killed"}, []),
        ({"sort": "name"}, ["alpha-gold", "alpha-nightly", "alpha-old"]),
        ({"sort": "-name"}, ["alpha-old", "alpha-nightly", "alpha-gold"]),
    ],
)
def test_filters_and_sorting(client, people, snaps, params, expected):
    client.force_login(people["alice"])
    assert names(client.get(URL, params)) == expected


def test_filter_by_openstack_id_prefix_and_quick_search(client, people, snaps):
    client.force_login(people["alice"])
    wanted = snaps["alpha-nightly"].openstack_id
    assert names(client.get(URL, {"openstack_id": wanted})) == ["alpha-nightly"]
    assert names(client.get(URL, {"q": wanted[:13]})) == ["alpha-nightly"]


def test_a_bad_filter_value_is_not_a_500(client, people, snaps):
    client.force_login(people["alice"])
    response = client.get(URL, {"status": "nonsense", "site": "abc"})
    assert response.status_code == 200
    assert names(response) == []


def test_page_size_in_the_url_changes_only_that_view(client, people):
    """A GET never writes: a shared link with ?per_page= does not change anyone's setting."""
    for i in range(30):
        make_image(site=people["site"], project=people["alpha"], snapshot=True, name=f"s{i:02d}")
    client.force_login(people["alice"])
    response = client.get(URL, {"per_page": "10"})
    assert len(names(response)) == 10
    assert "30 total" in response.content.decode()
    assert not Preference.objects.filter(key="snapshots.per_page").exists()
    assert len(names(client.get(URL))) == 25


def test_page_size_is_remembered_by_an_explicit_post(client, people):
    for i in range(30):
        make_image(site=people["site"], project=people["alpha"], snapshot=True, name=f"s{i:02d}")
    client.force_login(people["alice"])
    save = reverse("page-size-set")
    response = client.post(save, {"key": "snapshots", "per_page": "10", "next": URL + "?q=s"})
    assert response.status_code == 302
    assert response["Location"] == URL + "?q=s"
    assert Preference.objects.get(user=people["alice"], key="snapshots.per_page").value == 10
    # Next visit without per_page: remembered. Another user: default.
    assert len(names(client.get(URL))) == 10
    assert len(names(client.get(URL, {"page": "3"}))) == 10
    # Sizes we do not offer, lists we do not remember, GETs: refused, nothing saved.
    assert client.post(save, {"key": "snapshots", "per_page": "7"}).status_code == 400
    assert client.post(save, {"key": "secrets", "per_page": "10"}).status_code == 400
    assert client.post(save, {"key": "snapshots", "per_page": "1e3"}).status_code == 400
    assert client.get(save, {"key": "snapshots", "per_page": "50"}).status_code == 405
    assert Preference.objects.get(key="snapshots.per_page").value == 10
    client.force_login(people["bob"])
    assert len(names(client.get(URL))) == 25


def test_per_project_view_and_facility_view(client, people, snaps):
    client.force_login(people["carol"])
    project_url = reverse("snapshots:snapshot-project-list", args=[people["beta"].pk])
    assert names(client.get(project_url)) == ["beta-course"]
    assert (
        client.get(
            reverse("snapshots:snapshot-project-list", args=[people["alpha"].pk])
        ).status_code
        == 404
    )
    client.force_login(people["admin"])
    assert len(names(client.get(URL))) == 4


def test_empty_state_explains_snapshots(client, people):
    client.force_login(people["carol"])
    body = client.get(URL).content.decode()
    assert "No snapshots yet" in body
    assert reverse("instances:instance-list") in body


def test_select_all_matching_offered_across_pages(client, people):
    for i in range(12):
        make_image(site=people["site"], project=people["alpha"], snapshot=True, name=f"s{i:02d}")
    client.force_login(people["alice"])
    body = client.get(URL, {"per_page": "10"}).content.decode()
    assert "Select all 12 matching" in body


def test_project_names_link_to_the_per_project_view(client, people, snaps):
    client.force_login(people["alice"])
    body = client.get(URL).content.decode()
    assert reverse("snapshots:snapshot-project-list", args=[people["alpha"].pk]) in body


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_each_cell_sits_under_its_header(client, people, snaps):
    """The row template prints the cells itself, in the order of the table's columns."""
    client.force_login(people["alice"])
    body = client.get(URL, {"name": "alpha-gold"}).content.decode()
    headers = [_text(h) for h in re.findall(r'<th scope="col">(.*?)</th>', body, re.S)]
    headers = [h.split(" (Not sortable")[0] for h in headers]  # a header's note why
    row = re.search(r"<tbody>.*?(<tr>.*?</tr>)", body, re.S).group(1)
    texts = [_text(cell) for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
    assert len(texts) == len(headers) == 11
    cells = dict(zip(headers, texts, strict=True))
    gold = snaps["alpha-gold"]
    assert cells["Name"] == "alpha-gold"
    assert cells["Project"] == "alpha"
    assert cells["Status"] == "active not verified"
    assert cells["Source instance"] == "source-vm"
    assert cells["Site"] == people["site"].display_name
    assert cells["Size"] == "1.0 GB"
    assert cells["Created by"] == "bob"
    assert cells["OpenStack ID"] == f"{gold.openstack_id[:8]} copy"
    assert cells["Actions"] == "Delete Launch Copy to another site Verify now"
    assert 'aria-label="Select alpha-gold"' in row
    assert 'name="csrfmiddlewaretoken"' in row
