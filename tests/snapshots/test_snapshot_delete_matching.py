"""Select all matching: the confirmation counts (and samples) instead of listing
every row; the job carries the filter, not ids, and deletes in batches, asking
the rules again at each row; a crash mid-batch resumes without harm."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal import cloud
from portal.jobs import job_advance
from portal.mirror.upsert import mirror_row_write
from portal.models import Job, Membership
from portal.texts import english
from snapshots.models import Snapshot
from tests.factories import make_image

URL = reverse("snapshots:snapshot-delete")


@pytest.fixture
def no_broker(monkeypatch):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)


class FakeGlance:
    """image_delete and the targeted refresh, without a cloud: what the job saw."""

    def __init__(self, monkeypatch):
        self.deleted: list[str] = []
        self.attempts = 0
        self.crash_after: int | None = None
        monkeypatch.setattr("portal.cloud.image_delete", self.delete)
        monkeypatch.setattr("snapshots.services.image_refresh", self.refresh)

    def delete(self, site, *, image_id):
        self.attempts += 1
        if image_id in self.deleted:
            raise cloud.NotFound("no such image")
        self.deleted.append(image_id)

    def refresh(self, site, *, openstack_id):
        if self.crash_after is not None and len(self.deleted) >= self.crash_after:
            self.crash_after = None
            raise KeyboardInterrupt("the worker died")  # not an Exception: nothing catches it
        Snapshot.objects.filter(site=site, openstack_id=openstack_id).update(
            deleted_at=timezone.now()
        )


def snap(people, project, name, *, minutes=0, **fields):
    return make_image(
        site=people["site"], project=project, snapshot=True, name=name,
        created_at=timezone.now() - timedelta(minutes=minutes), **fields,
    )  # fmt: skip


@pytest.fixture
def many(people):
    """45 of alice's in alpha (newest first: keep-00 … keep-44), 5 of bob's, one
    protected, and 3 in beta."""
    alpha, beta = people["alpha"], people["beta"]
    rows = {
        "alices": [snap(people, alpha, f"keep-{n:02d}", minutes=n, created_by=people["alice"])
                   for n in range(45)],
        "bobs": [snap(people, alpha, f"keep-bob-{n}", minutes=100 + n, created_by=people["bob"])
                 for n in range(5)],
        "locked": snap(people, alpha, "keep-locked", minutes=200, protected=True,
                       created_by=people["bob"]),
        "betas": [snap(people, beta, f"keep-beta-{n}", minutes=300 + n) for n in range(3)],
    }  # fmt: skip
    snap(people, alpha, "other-1", minutes=400, created_by=people["alice"])  # not matching
    return rows


def run_job(job, *, limit=100) -> Job:
    for _ in range(limit):
        job.refresh_from_db()
        if job.is_finished:
            return job
        job_advance(job.pk)
    raise AssertionError("the job did not finish")


def test_the_confirmation_counts_and_samples_instead_of_listing(client, people, many):
    client.force_login(people["bob"])
    response = client.get(URL, {"all_matching": "1", "name": "keep"})
    assert response.status_code == 200
    plan = response.context["matching"]
    assert plan.will_delete == 5  # bob's own
    assert dict(plan.skipped) == {"members may delete only snapshots they created": 45,
                                  "protected in the cloud": 1}  # fmt: skip
    page = response.content.decode()
    assert "5 snapshots will be deleted" in page
    assert "45: members may delete only snapshots they created" in page
    assert "1: protected in the cloud" in page
    # A sample in the list's order (newest first), each with its fate; not every row.
    assert [s.name for s in plan.sample] == [f"keep-{n:02d}" for n in range(20)]
    assert "keep-00" in page
    assert "keep-19" in page
    assert "keep-20" not in page
    assert "skipped: members may delete only snapshots they created" in page
    assert "The first 20 in the list" in page
    assert 'name="upto"' in page
    assert "keep-beta" not in page  # beta is not bob's to see
    assert Job.objects.count() == 0  # confirming changes nothing


def test_the_sample_follows_the_lists_sort(client, people, many):
    client.force_login(people["alice"])
    plan = client.get(URL, {"all_matching": "1", "name": "keep", "sort": "name"}).context[
        "matching"
    ]
    assert [s.name for s in plan.sample][:3] == ["keep-00", "keep-01", "keep-02"]
    assert plan.sample[-1].name == "keep-19"
    plan = client.get(URL, {"all_matching": "1", "name": "keep", "sort": "-name"}).context[
        "matching"
    ]
    assert plan.sample[0].name == "keep-locked"


def test_counts_past_the_cap_say_more_than(client, people, many, monkeypatch):
    monkeypatch.setattr("portal.bulk.matching.COUNT_EXACT_UP_TO", 10)
    client.force_login(people["alice"])
    response = client.get(URL, {"all_matching": "1", "name": "keep"})
    page = response.content.decode()
    assert "more than 10 snapshots will be deleted" in page
    assert "Counts stop at 10" in page
    assert "Delete more than 10 snapshots" in page


def test_the_job_takes_the_filter_and_deletes_in_batches_what_the_member_may(
    client, people, many, no_broker, monkeypatch, django_capture_on_commit_callbacks
):
    glance = FakeGlance(monkeypatch)
    monkeypatch.setattr("snapshots.services.SNAPSHOT_DELETE.batch", 2)
    client.force_login(people["bob"])
    confirm = client.get(URL, {"all_matching": "1", "name": "keep"})
    carried = dict(confirm.context["carried"])
    response = client.post(URL, {**carried, "idempotency_key": "k1"})
    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"].endswith(f"?job={job.pk}")
    assert "images" not in job.params  # the filter, not a list of ids
    assert ["name", "keep"] in job.params["matching"]["query"]
    assert job.params["matching"]["projects"] == [people["alpha"].pk]
    job = run_job(job)
    assert job.status == Job.Status.SUCCEEDED, job.error
    bobs = {s.openstack_id for s in many["bobs"]}
    assert set(glance.deleted) == bobs
    assert len(glance.deleted) == 5
    assert job.steps[0]["runs"] >= 3  # 51 rows, 2 per run: many runs, none unbounded
    summary = english(job.result["summary"])
    assert summary.startswith("Deleted 5, skipped 46: ")
    assert "members may delete only snapshots they created (45: " in summary
    assert "protected in the cloud (1: keep-locked)" in summary
    # A double click (the same form again) starts nothing new.
    again = client.post(URL, {**carried, "idempotency_key": "k1"})
    assert again.status_code == 302
    assert Job.objects.count() == 1


def test_rows_synced_after_the_confirmation_and_other_projects_stay(
    client, people, many, no_broker, monkeypatch
):
    glance = FakeGlance(monkeypatch)
    admin = people["admin"]
    client.force_login(admin)
    alpha_page = {"all_matching": "1", "name": "keep", "project": people["alpha"].pk}
    carried = dict(client.get(URL, alpha_page).context["carried"])
    late = snap(people, people["alpha"], "keep-late", created_by=people["alice"])  # after confirm
    client.post(URL, carried)
    job = run_job(Job.objects.get())
    assert (
        english(job.result["summary"])
        == "Deleted 50, skipped 1: protected in the cloud (1: keep-locked)."
    )
    assert late.openstack_id not in glance.deleted
    assert not {s.openstack_id for s in many["betas"]} & set(glance.deleted)
    assert Snapshot.objects.filter(name="other-1", deleted_at__isnull=True).exists()
    late.refresh_from_db()
    assert late.deleted_at is None


def test_permission_is_asked_again_at_each_batch(client, people, many, no_broker, monkeypatch):
    """alice loses her admin role after confirming: the job stops deleting
    what is no longer hers to delete, and says why."""
    glance = FakeGlance(monkeypatch)
    client.force_login(people["alice"])
    carried = dict(client.get(URL, {"all_matching": "1", "name": "keep-bob"}).context["carried"])
    client.post(URL, carried)
    Membership.objects.filter(user=people["alice"]).update(role="member")
    job = run_job(Job.objects.get())
    assert glance.deleted == []
    assert english(job.result["summary"]).startswith(
        "Deleted 0, skipped 5: members may delete only snapshots they created (5: "
    )


def test_a_crash_mid_batch_resumes_without_doing_anything_twice(
    client, people, many, no_broker, monkeypatch
):
    glance = FakeGlance(monkeypatch)
    monkeypatch.setattr("snapshots.services.SNAPSHOT_DELETE.batch", 7)
    client.force_login(people["alice"])
    carried = dict(client.get(URL, {"all_matching": "1", "name": "keep-"}).context["carried"])
    client.post(URL, carried)
    job = Job.objects.get()
    glance.crash_after = 10  # in the second batch, after Glance deleted it, before the mirror knew
    with pytest.raises(KeyboardInterrupt):  # noqa: PT012  (the crash comes on whichever run reaches it)
        for _ in range(5):
            job_advance(job.pk)
    Job.objects.filter(pk=job.pk).update(lease_until=None)  # the lease ran out
    job = run_job(job)
    assert job.status == Job.Status.SUCCEEDED
    # The row in hand was deleted once by Glance, found gone on the re-run, counted once.
    assert len(glance.deleted) == len(set(glance.deleted)) == 50
    assert glance.attempts == 51  # the one in hand at the crash, asked twice
    assert english(job.result["summary"]).startswith("Deleted 50, skipped 1")
    assert not Snapshot.objects.filter(name__startswith="keep-", project=people["alpha"],
                                       protected=False, deleted_at__isnull=True).exists()  # fmt: skip


def test_a_second_job_over_the_same_rows_skips_them_as_being_deleted(
    client, people, many, no_broker, monkeypatch
):
    FakeGlance(monkeypatch)
    client.force_login(people["alice"])
    carried = dict(client.get(URL, {"all_matching": "1", "name": "keep-0"}).context["carried"])
    client.post(URL, carried)
    first = Job.objects.get()
    # The list marks them as being deleted; a new confirmation says so too.
    page = client.get(reverse("snapshots:snapshot-list"), {"name": "keep-0"}).content.decode()
    assert "deleting" in page
    plan = client.get(URL, {"all_matching": "1", "name": "keep-00"}).context["matching"]
    assert dict(plan.skipped) == {"already being deleted": 1}
    assert plan.will_delete == 0
    assert client.post(URL, {"all_matching": "1", "name": "keep-00"}).status_code == 409
    job = run_job(first)
    assert english(job.result["summary"]) == "Deleted 10."


def test_all_matching_with_nothing_matching_is_a_400(client, people, many):
    client.force_login(people["alice"])
    response = client.get(URL, {"all_matching": "1", "name": "nothing-like-this"})
    assert response.status_code == 400
    assert "Select at least one snapshot" in response.content.decode()
    assert client.get(URL, {"all_matching": "1", "upto": "x"}).status_code == 200  # GET ignores it
    assert client.post(URL, {"all_matching": "1", "name": "keep", "upto": "x"}).status_code == 400


def renamed_in_the_cloud(snapshot: Snapshot, name: str) -> None:
    """The mirror learns now that `snapshot` was renamed, as a sync writes it."""
    changes = {"name": name, "name_key": name.casefold()}
    mirror_row_write(snapshot, changes, observed_at=timezone.now())


def confirmed_hhmm(job: Job) -> str:
    confirmed_at = datetime.fromisoformat(job.params["matching"]["confirmed_at"])
    return f"{timezone.localtime(confirmed_at):%H:%M}"


def test_a_snapshot_that_starts_matching_after_the_confirmation_is_left_alone(
    client, people, many, no_broker, monkeypatch
):
    glance = FakeGlance(monkeypatch)
    client.force_login(people["alice"])
    confirm = client.get(URL, {"all_matching": "1", "name": "keep-bob"})
    assert confirm.context["matching"].will_delete == 5
    client.post(URL, dict(confirm.context["carried"]))
    other = Snapshot.objects.get(name="other-1")
    renamed_in_the_cloud(other, "keep-bob-late")  # now it matches too
    job = run_job(Job.objects.get())
    assert set(glance.deleted) == {s.openstack_id for s in many["bobs"]}
    assert Snapshot.objects.get(pk=other.pk).deleted_at is None
    assert english(job.result["summary"]) == (
        "Deleted 5, skipped 1: "
        f"changed since you confirmed at {confirmed_hhmm(job)} (1: keep-bob-late)."
    )


def test_a_snapshot_changed_since_the_confirmation_is_skipped_with_the_reason(
    client, people, many, no_broker, monkeypatch
):
    glance = FakeGlance(monkeypatch)
    client.force_login(people["bob"])
    confirm = client.get(URL, {"all_matching": "1", "name": "keep-bob"})
    client.post(URL, dict(confirm.context["carried"]))
    first = many["bobs"][0]
    renamed_in_the_cloud(first, "keep-bob-0-final")  # still matches, but not as confirmed
    job = run_job(Job.objects.get())
    assert first.openstack_id not in glance.deleted
    assert len(glance.deleted) == 4
    assert [english(s) for s in job.result["skipped"]] == [
        f"changed since you confirmed at {confirmed_hhmm(job)} (1: keep-bob-0-final)"
    ]
    assert job.status == Job.Status.SUCCEEDED


def test_when_every_matching_row_changed_before_the_click_nothing_starts(
    client, people, many, no_broker
):
    client.force_login(people["bob"])
    confirm = client.get(URL, {"all_matching": "1", "name": "keep-bob-1"})
    assert confirm.context["matching"].will_delete == 1
    renamed_in_the_cloud(many["bobs"][1], "keep-bob-1-final")
    response = client.post(URL, dict(confirm.context["carried"]))
    assert response.status_code == 409
    assert "1: changed since you confirmed at " in response.content.decode()
    assert not Job.objects.exists()
