"""The copy page: where an image exists, the target choices, and the matrix's links."""

from __future__ import annotations

import pytest
from django.urls import reverse

from images.copy import ImageCopy
from portal.models import Job, Membership, Project, Site
from tests.factories import make_image


@pytest.fixture
def two_sites(people, monkeypatch):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    two = Site.objects.create(name="devcloud2", display_name="Heidelberg")
    gamma = Project.objects.create(site=two, openstack_id="p-gamma", name="gamma")
    Membership.objects.create(user=people["alice"], project=gamma, role="member")
    snapshot = make_image(site=people["site"], project=people["alpha"], snapshot=True, name="gold")
    return {"two": two, "gamma": gamma, "snapshot": snapshot}


def test_it_offers_my_projects_at_other_sites_and_records_a_copy_job(client, people, two_sites):
    client.force_login(people["alice"])
    url = reverse("images:image-copy", kwargs={"image_id": two_sites["snapshot"].pk})
    page = client.get(url)
    assert page.status_code == 200
    assert [p.name for p in page.context["targets"]] == ["gamma"]  # not alpha: same site
    response = client.post(url, {"target": two_sites["gamma"].pk, "boot_test": "1"})
    job = Job.objects.get(kind="image.copy")
    assert response.status_code == 302
    assert response["Location"] == reverse("job-detail", kwargs={"job_id": job.pk})
    assert (job.site, job.project, job.actor) == (
        two_sites["two"],
        two_sites["gamma"],
        people["alice"],
    )
    assert job.params == {
        "source_site": "devcloud", "source_image_id": two_sites["snapshot"].openstack_id,
        "name": "gold", "boot_test": True,
        "source_site_display": two_sites["snapshot"].site.display_name,
    }  # fmt: skip
    # The job list and the job page name the source site as users know it.
    assert ImageCopy.describe(job) == f"Copy gold from {two_sites['snapshot'].site.display_name}"


def test_an_outsider_gets_404_and_an_inactive_image_no_job(client, people, two_sites):
    client.force_login(people["eve"])  # in no project
    url = reverse("images:image-copy", kwargs={"image_id": two_sites["snapshot"].pk})
    assert client.get(url).status_code == 404
    assert client.post(url, {"target": two_sites["gamma"].pk}).status_code == 404
    two_sites["snapshot"].status = "queued"
    two_sites["snapshot"].save()
    client.force_login(people["alice"])
    refused = client.post(url, {"target": two_sites["gamma"].pk})
    assert refused.status_code == 409
    assert b"only an active image can be copied" in refused.content
    assert not Job.objects.filter(kind="image.copy").exists()


def test_the_matrix_links_a_missing_cell_to_the_copy_page_and_marks_copies(
    client, people, two_sites
):
    one = people["site"]
    ubuntu = make_image(site=one, name="Ubuntu-22.04-LTS")
    rstudio = make_image(site=one, name="RStudio")
    make_image(
        site=two_sites["two"], project=two_sites["gamma"], name="Ubuntu-22.04-LTS",
        visibility="private", copied_from_site=one, copied_from_image_id=ubuntu.openstack_id,
    )  # fmt: skip
    client.force_login(people["alice"])
    body = client.get(reverse("images:image-list")).content.decode()
    copy_here = reverse("images:image-copy", kwargs={"image_id": rstudio.pk})
    assert f'href="{copy_here}?site={two_sites["two"].pk}"' in body
    assert 'title="copied by the portal: where it exists">copy</a>' in body


def test_a_snapshot_of_a_volume_booted_instance_is_refused(client, people, two_sites):
    snapshot = two_sites["snapshot"]
    snapshot.properties = {"image_type": "snapshot", "block_device_mapping": "[]"}
    snapshot.save()
    client.force_login(people["alice"])
    url = reverse("images:image-copy", kwargs={"image_id": snapshot.pk})
    refused = client.post(url, {"target": two_sites["gamma"].pk})
    assert refused.status_code == 400
    assert b"no data of its own" in refused.content
    assert not Job.objects.filter(kind="image.copy").exists()


def test_the_page_lists_the_original_and_every_copy_also_of_copies(client, people, two_sites):
    one, two = people["site"], two_sites["two"]
    original = two_sites["snapshot"]
    there = make_image(
        site=two, project=two_sites["gamma"], snapshot=True, name="gold",
        copied_from_site=one, copied_from_image_id=original.openstack_id,
    )  # fmt: skip
    back = make_image(
        site=one, project=people["alpha"], snapshot=True, name="gold",
        copied_from_site=two, copied_from_image_id=there.openstack_id,
    )  # fmt: skip
    make_image(site=one, project=people["alpha"], snapshot=True, name="unrelated")
    client.force_login(people["alice"])
    page = client.get(reverse("images:image-copy", kwargs={"image_id": back.pk}))
    assert [row.pk for row in page.context["copies"]] == [original.pk, back.pk, there.pk]
    assert b"original</td>" in page.content
    assert b"copy (this one)</td>" in page.content
