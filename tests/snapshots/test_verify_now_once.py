""" "Verify now" checks that no job works on the snapshot, then records its job. Two
requests at once (a double click that beat the form's key, two tabs, two users of
the project) could both pass the check and boot two test instances; the database
now lets only one unfinished boot test per snapshot through, and the other request
gets a clear refusal (409)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from portal.errors import ActionRefused
from portal.jobs import job_create
from portal.models import Job
from snapshots import services
from snapshots.models import Snapshot
from snapshots.services import snapshot_verify_request
from tests.conftest import _seeded


def _snapshot(project) -> Snapshot:
    return Snapshot.objects.filter(
        project=project, status="active", deleted_at__isnull=True, min_disk__lte=50
    ).first()


def _verify_job(snapshot: Snapshot, actor) -> Job:
    """What snapshot_verify_request records, past its checks."""
    return job_create(
        kind="snapshot.verify", actor=actor, project=snapshot.project, site=snapshot.site,
        target_image_id=snapshot.openstack_id,
        params={"image_id": snapshot.openstack_id, "name": snapshot.name, "verify": True},
    )  # fmt: skip


def test_the_database_records_one_unfinished_boot_test_per_snapshot(demo, monkeypatch):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    alice, alpha = demo["users"]["alice"], demo["projects"]["alpha"]
    snapshot = _snapshot(alpha)
    first = _verify_job(snapshot, alice)
    # A second request whose check ran before the first job existed:
    with pytest.raises(ActionRefused) as refused:
        _verify_job(snapshot, demo["users"]["bob"])
    assert refused.value.status == 409
    assert refused.value.message == (
        "Another portal job started on this snapshot a moment ago; "
        "wait until it ends, then try again."
    )
    # One after the other, the service's own check says so first.
    with pytest.raises(ActionRefused, match="A portal job is working on"):
        snapshot_verify_request(snapshot=snapshot, actor=alice)
    assert Job.objects.filter(kind="snapshot.verify").count() == 1
    # Once the first has ended, the snapshot may be tested again.
    Job.objects.filter(pk=first.pk).update(status=Job.Status.SUCCEEDED)
    assert _verify_job(snapshot, alice).pk != first.pk
    # Launches from one image are not limited: workshops boot from one snapshot at once.
    for _ in range(2):
        job_create(kind="instances.launch", actor=alice, project=alpha,
                   target_image_id=snapshot.openstack_id, params={"names": []})  # fmt: skip


@pytest.fixture
def seeded(clouds, transactional_db, monkeypatch):
    """The demo on a database other threads see (each with its own connection)."""
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    return _seeded(clouds)


def test_two_verify_requests_at_the_same_moment_record_one_job(seeded, monkeypatch):
    alice = seeded["users"]["alice"]
    snapshot = _snapshot(seeded["projects"]["alpha"])
    # Both requests pass the "is a job working on it?" check before either records
    # its job: the race, made certain.
    both_checked = threading.Barrier(2, timeout=10)
    real_busy_pks = services.busy_pks

    def busy_pks_then_wait(rows, *, target):
        busy = real_busy_pks(rows, target=target)
        both_checked.wait()
        return busy

    monkeypatch.setattr(services, "busy_pks", busy_pks_then_wait)
    outcomes: list[object] = []

    def request() -> None:
        try:
            outcomes.append(snapshot_verify_request(snapshot=snapshot, actor=alice))
        except ActionRefused as refused:
            outcomes.append(refused)
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(outcomes) == 2, outcomes
    jobs = [o for o in outcomes if isinstance(o, Job)]
    refusals = [o for o in outcomes if isinstance(o, ActionRefused)]
    assert len(jobs) == 1, outcomes
    assert len(refusals) == 1, outcomes
    assert refusals[0].status == 409
    assert "wait until it ends" in refusals[0].message
    assert (
        Job.objects.filter(kind="snapshot.verify", target_image_id=snapshot.openstack_id).count()
        == 1
    )
