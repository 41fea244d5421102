"""Bulk delete: confirmation lists what is deleted and skipped; one job; one combined result."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from portal import cloud
from portal.jobs import job_advance
from portal.models import Job
from portal.texts import english
from snapshots.models import Snapshot
from tests.factories import make_image

URL = reverse("snapshots:snapshot-delete")


@pytest.fixture
def snaps(people):
    site, alpha = people["site"], people["alpha"]
    return {
        "bobs": make_image(site=site, project=alpha, snapshot=True, name="bobs", created_by=people["bob"]),
        "alices": make_image(site=site, project=alpha, snapshot=True, name="alices", created_by=people["alice"]),
        "locked": make_image(site=site, project=alpha, snapshot=True, name="locked", protected=True, created_by=people["bob"]),
        "betas": make_image(site=site, project=people["beta"], snapshot=True, name="betas"),
    }  # fmt: skip


@pytest.fixture
def no_broker(monkeypatch):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)


def test_confirmation_lists_deleted_and_skipped_with_reasons(client, people, snaps):
    client.force_login(people["bob"])
    ids = [snaps[k].pk for k in ("bobs", "alices", "locked", "betas")]
    response = client.get(URL, {"selected": ids})
    assert response.status_code == 200
    plan = response.context["plan"]
    assert [s.name for s in plan.deletable] == ["bobs"]
    assert {s.name: reason for s, reason in plan.skipped} == {
        "alices": "members may delete only snapshots they created",
        "locked": "protected in the cloud",
    }
    # beta's snapshot is not even visible to bob: it is not offered at all.
    assert "betas" not in response.content.decode()
    assert Job.objects.count() == 0  # confirming changes nothing


def test_delete_creates_one_job_with_skips_recorded(
    client, people, snaps, no_broker, django_capture_on_commit_callbacks
):
    client.force_login(people["bob"])
    ids = [snaps[k].pk for k in ("bobs", "alices", "locked")]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, {"selected": ids})
    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"].endswith(f"?job={job.pk}")
    assert [i["name"] for i in job.params["images"]] == ["bobs"]
    assert {s["name"] for s in job.params["skipped"]} == {"alices", "locked"}
    # While the job runs, its snapshots show as deleting and cannot be chosen again.
    page = client.get(reverse("snapshots:snapshot-list"))
    assert "deleting" in page.content.decode()
    again = client.get(URL, {"selected": [snaps["bobs"].pk]})
    assert dict((s.name, r) for s, r in again.context["plan"].skipped) == {
        "bobs": "already being deleted"
    }


def test_admin_deletes_everything_in_the_project(client, people, snaps):
    client.force_login(people["alice"])
    ids = [snaps[k].pk for k in ("bobs", "alices")]
    plan = client.get(URL, {"selected": ids}).context["plan"]
    assert {s.name for s in plan.deletable} == {"bobs", "alices"}


def test_select_all_matching_uses_the_filter(client, people, snaps):
    client.force_login(people["alice"])
    plan = client.get(URL, {"all_matching": "1", "name": "*ice"}).context["matching"]
    assert plan.will_delete == 1
    assert [s.name for s in plan.sample] == ["alices"]


def test_nothing_selected_is_a_400_with_a_message(client, people, snaps):
    client.force_login(people["alice"])
    response = client.post(URL, {})
    assert response.status_code == 400
    assert "Select at least one snapshot" in response.content.decode()
    assert client.get(URL, {"selected": ["abc"]}).status_code == 400


def test_only_skipped_ones_is_a_409_and_no_job(client, people, snaps):
    client.force_login(people["bob"])
    response = client.post(URL, {"selected": [snaps["locked"].pk]})
    assert response.status_code == 409
    assert "Nothing deleted" in response.content.decode()
    assert Job.objects.count() == 0


def test_delete_requires_login(client, snaps):
    assert client.post(URL, {"selected": [snaps["bobs"].pk]}).status_code == 302


class RefusingGlance:
    """Glance refuses to delete the images named in `refused`; deletes the rest."""

    def __init__(self, monkeypatch, refused: set[str]):
        self.refused, self.deleted = refused, []
        monkeypatch.setattr("portal.cloud.image_delete", self.delete)
        monkeypatch.setattr("snapshots.services.image_refresh", self.refresh)

    def delete(self, site, *, image_id):
        if Snapshot.objects.get(openstack_id=image_id).name in self.refused:
            raise cloud.Conflict("Image is in use by a volume")
        self.deleted.append(image_id)

    def refresh(self, site, *, openstack_id):
        if openstack_id in self.deleted:
            Snapshot.objects.filter(openstack_id=openstack_id).update(deleted_at=timezone.now())


def run_job(job) -> Job:
    for _ in range(20):
        job.refresh_from_db()
        if job.is_finished:
            return job
        job_advance(job.pk)
    raise AssertionError("the job did not finish")


CHOICES = {
    "ticked": lambda snaps: {"selected": [snaps["bobs"].pk, snaps["alices"].pk]},
    "all matching": lambda snaps: {"all_matching": "1", "name": "al"},
}


@pytest.mark.parametrize("chosen", sorted(CHOICES))
def test_a_delete_where_every_delete_fails_ends_failed(
    client, people, snaps, no_broker, monkeypatch, chosen
):
    """Like instances.delete: a job that deleted nothing because the cloud refused
    every one failed, and says why."""
    Snapshot.objects.filter(pk=snaps["bobs"].pk).update(name="al-bobs", name_key="al-bobs")
    glance = RefusingGlance(monkeypatch, refused={"al-bobs", "alices"})
    client.force_login(people["alice"])
    assert client.post(URL, CHOICES[chosen](snaps)).status_code == 302
    job = run_job(Job.objects.get())
    assert glance.deleted == []
    assert job.status == Job.Status.FAILED
    assert "failed 2: " in english(job.error)
    assert "(Image is in use by a volume)" in english(job.error)
    assert job.result["deleted_count"] == 0
    assert job.result["failed_count"] == 2


def test_a_parked_machines_saved_disk_is_not_deleted(client, people):
    """Nova unshelves from the "<name>-shelved" image: deleting it loses the machine."""
    from tests.factories import make_server

    site, alpha = people["site"], people["alpha"]
    parked = make_server(project=alpha, name="vm", status="SHELVED_OFFLOADED")
    running = make_server(project=alpha, name="vm2", status="ACTIVE")
    disk = make_image(
        site=site, project=alpha, snapshot=True, name="vm-shelved", created_by=people["bob"],
        source_server_openstack_id=parked.openstack_id,
    )  # fmt: skip
    old = make_image(
        site=site, project=alpha, snapshot=True, name="vm2-shelved", created_by=people["bob"],
        source_server_openstack_id=running.openstack_id,
    )  # fmt: skip
    client.force_login(people["bob"])
    plan = client.get(URL, {"selected": [disk.pk, old.pk]}).context["plan"]
    assert [s.name for s in plan.deletable] == ["vm2-shelved"]
    assert {s.name: reason for s, reason in plan.skipped} == {
        "vm-shelved": "the saved disk of a parked machine: resume or delete the machine"
    }
