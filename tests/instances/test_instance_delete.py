"""Deleting instances in bulk: ticked ones are listed; "select all matching"
(any number) is confirmed with counts and a sample, and its job carries the
overview's filter and deletes in batches, asking the rules again per row."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from instances.models import Server
from portal import cloud
from portal.jobs import job_advance
from portal.models import Job
from tests.factories import make_server

URL = reverse("instances:instance-delete")


@pytest.fixture
def no_broker(monkeypatch):
    monkeypatch.setattr("portal.celery.app.send_task", lambda *a, **k: None)


class FakeNova:
    def __init__(self, monkeypatch):
        self.deleted: list[str] = []
        monkeypatch.setattr("portal.cloud.server_delete", self.delete)
        monkeypatch.setattr("instances.jobs.server_refresh", self.refresh)
        monkeypatch.setattr("instances.jobs.project_quota_refresh", lambda project: project)

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
    assert "5 instances will be deleted" in page and "ws-29" not in page
    assert "ws-beta" not in page


def test_more_than_the_old_limit_is_no_longer_refused(client, people, fleet, monkeypatch):
    monkeypatch.setattr("portal.bulk.COUNT_EXACT_UP_TO", 10)
    client.force_login(people["alice"])
    response = client.get(URL, {"all_matching": "1", "q": "ws-"})
    assert response.status_code == 200
    assert "more than 10 instances will be deleted" in response.content.decode()


def test_the_job_deletes_the_filtered_ones_in_batches(
    client, people, fleet, no_broker, monkeypatch
):
    nova = FakeNova(monkeypatch)
    monkeypatch.setattr("instances.jobs.BATCH", 4)
    client.force_login(people["bob"])
    confirm = client.get(
        URL, {"all_matching": "1", "q": "ws-", "status": "ACTIVE", "filtered": "1"}
    )
    carried = dict(confirm.context["carried"])
    late = make_server(project=people["alpha"], name="ws-late", created_by=people["bob"])
    response = client.post(URL, {**carried, "idempotency_key": "k"})
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/jobs/{job.pk}/")
    assert "servers" not in job.params and ["status", "ACTIVE"] in job.params["matching"]["query"]
    job = run_job(job)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert sorted(nova.deleted) == sorted(s.openstack_id for s in fleet["bobs"])
    assert job.steps[0]["runs"] >= 34 // 4
    assert job.result["summary"].startswith(
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
        run_job(job).result["summary"]
        == "Deleted 1, skipped 1: ws-00 (members may delete only instances they created)."
    )
    assert nova.deleted == [fleet["bobs"][0].openstack_id]
