"""A boot test's create request may be cut off (the soft time limit, a lost answer)
after Nova accepted it, and Nova may make the server only after the job's next run
looked for it and found nothing. The job never makes a second test instance while
the first may still land, and deletes at the end every server carrying its marker.

The cut-off is simulated at the gateway boundary: `cloud.server_create` sends
nothing the first time and raises as the soft time limit would; the test lets the
request land in devcloud (the real Nova API over HTTP) when it chooses."""

from __future__ import annotations

import time

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from images.models import BootTest
from portal import cloud
from portal.jobs import JOB_KEY, job_advance, job_key
from portal.models import Job
from portal.texts import english
from snapshots.models import Snapshot
from snapshots.services import snapshot_verify_request


class CutOffCreate:
    """`cloud.server_create` whose first request is cut off before its answer; it
    reaches Nova only at `land()`, as a request Nova finishes late would."""

    def __init__(self, monkeypatch):
        self.real = cloud.server_create
        self.calls: list[dict] = []
        self.held: tuple[str, dict] | None = None
        monkeypatch.setattr(cloud, "server_create", self)

    def __call__(self, site, **kwargs):
        self.calls.append(kwargs)
        if len(self.calls) == 1:
            self.held = (site, kwargs)
            raise SoftTimeLimitExceeded()
        return self.real(site, **kwargs)

    def land(self) -> str:
        site, kwargs = self.held
        return self.real(site, **kwargs).id


@pytest.fixture
def verify_job(demo, monkeypatch):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    snapshot = Snapshot.objects.filter(
        project=demo["projects"]["alpha"], status="active", deleted_at__isnull=True,
        min_disk__lte=50,
    ).first()  # fmt: skip
    return snapshot_verify_request(snapshot=snapshot, actor=demo["users"]["alice"])


def advance(job: Job, *, until=lambda job: job.is_finished, runs: int = 300) -> Job:
    """Run the job in this process (as a worker would) until `until` holds."""
    for _ in range(runs):
        job_advance(job.pk)
        job.refresh_from_db()
        if until(job) or job.is_finished:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job.pk} at {job.progress!r}: {job.steps}")


def marked_servers(job: Job) -> list[cloud.CloudServer]:
    found = cloud.server_find("devcloud", project_id=job.project.openstack_id,
                              name=f"boot-test-{job.pk}")  # fmt: skip
    return [s for s in found if s.metadata.get(JOB_KEY) == job_key(job) and not s.is_deleted]


def boot_test_step(job: Job, name: str) -> dict:
    return next(s for s in job.steps if s["name"] == name)


def test_a_cut_off_create_that_lands_late_is_adopted_not_doubled(verify_job, monkeypatch):
    create = CutOffCreate(monkeypatch)
    job = advance(verify_job, until=lambda job: len(create.calls) == 1)
    # The next run finds nothing yet, and does not ask again while the request may land.
    job = advance(job, until=lambda job: boot_test_step(job, "verify_boot")["runs"] >= 3)
    assert len(create.calls) == 1
    assert not job.is_finished
    assert "server_id" not in job.state["boot_test"]
    landed = create.land()
    job = advance(job, until=lambda job: "server_id" in job.state["boot_test"])
    assert job.state["boot_test"]["server_id"] == landed
    assert [s.id for s in marked_servers(job)] == [landed]  # exactly one test instance
    job = advance(job)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert len(create.calls) == 1
    assert BootTest.objects.get(openstack_id=job.params["image_id"]).outcome == "verified"
    assert marked_servers(job) == []


def test_a_cut_off_create_that_lands_after_the_job_asked_again_is_deleted(
    verify_job, monkeypatch, settings
):
    # A short landing window: the job asks again once it has passed...
    settings.OPENSTACK_TIMEOUT = 0.2
    monkeypatch.setattr("snapshots.verify.LANDING_MARGIN_SECONDS", 0.3)
    create = CutOffCreate(monkeypatch)
    job = advance(verify_job, until=lambda job: len(create.calls) == 2)
    made = job.state["boot_test"]["server_id"]
    # ...and the first request lands anyway, later than any window allowed.
    late = create.land()
    assert {s.id for s in marked_servers(job)} == {made, late}
    job = advance(job)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert marked_servers(job) == []  # the late one too
    assert job.state["boot_test"]["server_id"] == made
    assert len(create.calls) == 2
    assert english(boot_test_step(job, "verify_cleanup")["detail"]).startswith(
        "deleted 2 test instances"
    )


def _made_by_member(create: CutOffCreate) -> str:
    """A server like the cut-off request's (name, marker), made by alpha's member user
    through its own clouds.yaml entry: not the portal's service account."""
    return create.real("devcloud-alpha", **create.held[1]).id


def _exists(server_id: str) -> bool:
    try:
        return not cloud.server_get("devcloud", server_id=server_id).is_deleted
    except cloud.NotFound:
        return False


def test_a_boot_test_neither_adopts_nor_deletes_another_members_server_with_its_name_and_marker(
    verify_job, monkeypatch
):
    create = CutOffCreate(monkeypatch)
    job = advance(verify_job, until=lambda job: len(create.calls) == 1)
    stranger = _made_by_member(create)
    job = advance(job, until=lambda job: boot_test_step(job, "verify_boot")["runs"] >= 3)
    assert "server_id" not in job.state["boot_test"]  # waits for its own request instead
    landed = create.land()
    job = advance(job)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.state["boot_test"]["server_id"] == landed
    assert len(create.calls) == 1
    assert english(boot_test_step(job, "verify_cleanup")["detail"]).startswith(
        "deleted the test instance"
    )
    assert _exists(stranger)
    assert not _exists(landed)
    cloud.server_delete("devcloud", server_id=stranger)


def test_a_boot_test_neither_adopts_nor_deletes_a_marked_server_made_before_it_asked(
    verify_job, monkeypatch, settings
):
    settings.JOB_ADOPT_SKEW_SECONDS = 0
    create = CutOffCreate(monkeypatch)
    job = advance(verify_job, until=lambda job: len(create.calls) == 1)
    # The portal's own account, the job's name and marker, but older than the request.
    earlier = create.real("devcloud", **create.held[1]).id
    time.sleep(2.0)  # Nova shows whole seconds
    job.state["boot_test"]["asked_at"] = job.state["boot_test"]["requested_at"] = (
        timezone.now().isoformat()
    )
    job.save(update_fields=["state"])
    job = advance(job, until=lambda job: boot_test_step(job, "verify_boot")["runs"] >= 3)
    assert "server_id" not in job.state["boot_test"]
    landed = create.land()
    job = advance(job)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.state["boot_test"]["server_id"] == landed
    assert _exists(earlier)
    assert not _exists(landed)
    cloud.server_delete("devcloud", server_id=earlier)
