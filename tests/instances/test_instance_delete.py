"""Deleting instances in bulk: ticked ones are listed; "select all matching"
(any number) is confirmed with counts and a sample, and its job carries the
overview's filter and deletes in batches, asking the rules again per row."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from instances.models import Server
from portal import cloud
from portal.jobs import job_advance
from portal.mirror.upsert import mirror_row_write
from portal.models import Job
from portal.templatetags.portal_tags import job_title
from portal.texts import english
from tests.factories import make_server

URL = reverse("instances:instance-delete")


@pytest.fixture
def no_broker(monkeypatch):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)


class FakeNova:
    def __init__(self, monkeypatch):
        self.deleted: list[str] = []
        monkeypatch.setattr("portal.cloud.server_delete", self.delete)
        monkeypatch.setattr("instances.services.server_refresh", self.refresh)
        monkeypatch.setattr("instances.services.project_quota_refresh", lambda project: project)

    def delete(self, site, *, server_id):
        if server_id in self.deleted:
            raise cloud.NotFound("no such server")
        self.deleted.append(server_id)

    def refresh(self, site, *, openstack_id):
        Server.objects.filter(site=site, openstack_id=openstack_id).update(
            deleted_at=timezone.now(), status="DELETED"
        )


@pytest.fixture
def fleet(people):
    alpha, beta = people["alpha"], people["beta"]
    now = timezone.now()

    def vm(project, name, n, **fields):
        return make_server(
            project=project, name=name, created_at=now - timedelta(minutes=n), **fields
        )

    return {
        "alices": [vm(alpha, f"ws-{n:02d}", n, created_by=people["alice"]) for n in range(30)],
        "bobs": [vm(alpha, f"ws-bob-{n}", 100 + n, created_by=people["bob"]) for n in range(4)],
        "stopped": vm(alpha, "ws-stopped", 200, status="SHUTOFF", created_by=people["bob"]),
        "betas": [vm(beta, f"ws-beta-{n}", 300 + n) for n in range(3)],
        "other": vm(alpha, "db-1", 400, created_by=people["bob"]),
    }


def run_job(job, *, limit=100) -> Job:
    for _ in range(limit):
        job.refresh_from_db()
        if job.is_finished:
            return job
        job_advance(job.pk)
    raise AssertionError("the job did not finish")


def test_all_matching_is_confirmed_with_counts_and_a_sample(client, people, fleet):
    client.force_login(people["bob"])
    response = client.get(URL, {"all_matching": "1", "q": "ws-"})
    assert response.status_code == 200
    plan = response.context["matching"]
    assert plan.will_delete == 5  # bob's four and his stopped one
    assert dict(plan.skipped) == {"members may delete only instances they created": 30}
    assert [s.name for s in plan.sample][:3] == ["ws-00", "ws-01", "ws-02"]
    assert len(plan.sample) == 20
    page = response.content.decode()
    assert "5 instances will be deleted" in page
    assert "ws-29" not in page
    assert "ws-beta" not in page


def test_more_than_the_old_limit_is_no_longer_refused(client, people, fleet, monkeypatch):
    monkeypatch.setattr("portal.bulk.matching.COUNT_EXACT_UP_TO", 10)
    client.force_login(people["alice"])
    response = client.get(URL, {"all_matching": "1", "q": "ws-"})
    assert response.status_code == 200
    assert "more than 10 instances will be deleted" in response.content.decode()


def test_the_job_deletes_the_filtered_ones_in_batches(
    client, people, fleet, no_broker, monkeypatch
):
    nova = FakeNova(monkeypatch)
    monkeypatch.setattr("instances.services.SERVER_DELETE.batch", 4)
    client.force_login(people["bob"])
    confirm = client.get(
        URL, {"all_matching": "1", "q": "ws-", "status": "ACTIVE", "filtered": "1"}
    )
    carried = dict(confirm.context["carried"])
    late = make_server(project=people["alpha"], name="ws-late", created_by=people["bob"])
    response = client.post(URL, {**carried, "idempotency_key": "k"})
    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"].endswith(f"/jobs/{job.pk}/")
    assert "servers" not in job.params
    assert ["status", "ACTIVE"] in job.params["matching"]["query"]
    job = run_job(job)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert sorted(nova.deleted) == sorted(s.openstack_id for s in fleet["bobs"])
    assert job.steps[0]["runs"] >= 34 // 4
    assert english(job.result["summary"]).startswith(
        "Deleted 4, skipped 30: members may delete only instances they created (30: "
    )
    late.refresh_from_db()
    assert late.deleted_at is None  # synced after the confirmation: untouched
    assert Server.objects.get(name="ws-stopped").deleted_at is None  # not in the filter


def test_ticked_instances_keep_their_list(client, people, fleet, no_broker, monkeypatch):
    nova = FakeNova(monkeypatch)
    client.force_login(people["bob"])
    ids = [fleet["bobs"][0].pk, fleet["alices"][0].pk]
    plan = client.get(URL, {"selected": ids}).context["plan"]
    assert [s.name for s in plan.deletable] == ["ws-bob-0"]
    assert [(s.name, r) for s, r in plan.skipped] == [
        ("ws-00", "members may delete only instances they created")
    ]
    client.post(URL, {"selected": ids})
    job = Job.objects.get()
    assert [s["name"] for s in job.params["servers"]] == ["ws-bob-0"]
    # While it runs, the same one is "already being deleted" for anyone else.
    client.force_login(people["alice"])
    again = client.get(URL, {"selected": [fleet["bobs"][0].pk]}).context["plan"]
    assert [(s.name, r) for s, r in again.skipped] == [("ws-bob-0", "already being deleted")]
    assert (
        english(run_job(job).result["summary"])
        == "Deleted 1, skipped 1: ws-00 (members may delete only instances they created)."
    )
    assert nova.deleted == [fleet["bobs"][0].openstack_id]


def seen_by_the_sync(server: Server, **changes) -> None:
    """The mirror learns a change of `server` now, the way a sync or a job's
    refresh writes it."""
    mirror_row_write(server, changes, observed_at=timezone.now())


def confirmed_hhmm(job: Job) -> str:
    return f"{timezone.localtime(datetime.fromisoformat(job.params['matching']['confirmed_at'])):%H:%M}"


@pytest.mark.parametrize("when", ["before the click", "after the click"])
def test_a_machine_that_starts_matching_after_the_confirmation_is_left_alone(
    client, people, no_broker, monkeypatch, when
):
    """The issue: the confirmation counted 1 ERROR machine; a second one went ERROR
    after it was shown (before the click, or while the job waited): only the one
    confirmed is deleted."""
    nova = FakeNova(monkeypatch)
    bob = people["bob"]
    broken = make_server(project=people["alpha"], name="lab-1", status="ERROR", created_by=bob)
    healthy = make_server(project=people["alpha"], name="lab-2", created_by=bob)
    client.force_login(bob)
    confirm = client.get(URL, {"all_matching": "1", "status": "ERROR", "filtered": "1"})
    assert confirm.context["matching"].will_delete == 1
    assert "lab-2" not in confirm.content.decode()
    carried = dict(confirm.context["carried"])
    if when == "before the click":
        seen_by_the_sync(healthy, status="ERROR", fault_message="No valid host was found.")
    assert client.post(URL, {**carried, "idempotency_key": "k"}).status_code == 302
    if when == "after the click":
        seen_by_the_sync(healthy, status="ERROR", fault_message="No valid host was found.")
    job = run_job(Job.objects.get())
    assert nova.deleted == [broken.openstack_id]
    healthy.refresh_from_db()
    assert healthy.deleted_at is None
    assert healthy.status == "ERROR"
    assert job.status == Job.Status.SUCCEEDED
    assert english(job.result["summary"]) == (
        f"Deleted 1, skipped 1: changed since you confirmed at {confirmed_hhmm(job)} (1: lab-2)."
    )


def test_a_machine_changed_since_the_confirmation_is_skipped_with_the_reason(
    client, people, no_broker, monkeypatch
):
    """Both matched when confirmed; one was stopped since (it still matches): the
    user confirmed it running, so it is skipped, and the summary says why."""
    nova = FakeNova(monkeypatch)
    bob = people["bob"]
    kept = make_server(project=people["alpha"], name="lab-1", created_by=bob)
    gone = make_server(project=people["alpha"], name="lab-2", created_by=bob)
    client.force_login(bob)
    confirm = client.get(URL, {"all_matching": "1", "q": "lab-"})
    assert confirm.context["matching"].will_delete == 2
    assert 'name="confirmed"' in confirm.content.decode()
    client.post(URL, dict(confirm.context["carried"]))
    seen_by_the_sync(kept, status="SHUTOFF", power_state=4, vm_state="stopped")
    job = run_job(Job.objects.get())
    assert nova.deleted == [gone.openstack_id]
    kept.refresh_from_db()
    assert kept.deleted_at is None
    assert [english(s) for s in job.result["skipped"]] == [
        f"changed since you confirmed at {confirmed_hhmm(job)} (1: lab-1)"
    ]
    assert job.result["deleted"] == ["lab-2"]
    assert job.result["failed"] == []
    assert f"2 when confirmed at {confirmed_hhmm(job)})" in job_title(job)


def test_a_confirmation_moment_that_is_not_one_is_a_400(client, people, fleet):
    client.force_login(people["bob"])
    carried = dict(client.get(URL, {"all_matching": "1", "q": "ws-"}).context["carried"])
    assert client.post(URL, {**carried, "confirmed": "yesterday"}).status_code == 400
    assert not Job.objects.exists()


class RefusingNova(FakeNova):
    """Nova refuses to delete every server (a 409 it keeps giving)."""

    def delete(self, site, *, server_id):
        raise cloud.Conflict("Cannot 'delete' instance while it is in task_state migrating")


DELETE_CHOICES = {
    "ticked": lambda fleet: {"selected": [s.pk for s in fleet["bobs"][:2]]},
    "all matching": lambda fleet: {"all_matching": "1", "q": "ws-bob-"},
}


@pytest.mark.parametrize("chosen", sorted(DELETE_CHOICES))
def test_a_delete_where_every_delete_fails_ends_failed(
    client, people, fleet, no_broker, monkeypatch, chosen
):
    """Like snapshot.delete: a job that deleted nothing because the cloud refused
    every one failed, and says why."""
    RefusingNova(monkeypatch)
    client.force_login(people["bob"])
    assert client.post(URL, DELETE_CHOICES[chosen](fleet)).status_code == 302
    job = run_job(Job.objects.get())
    assert job.status == Job.Status.FAILED
    tried = job.result["failed_count"]
    assert tried == (2 if chosen == "ticked" else 4)
    assert job.result["deleted_count"] == 0
    assert f"failed {tried}: " in english(job.error)
    assert "task_state migrating)" in english(job.error)
