"""Whose stop was it? The snapshot job starts an instance again only if its own stop
took; a machine the user stopped stays off. And a cleanup that cannot reach the
site says at once that the instance may be left stopped. The cloud is mocked at
the gateway (portal.cloud)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from portal import cloud
from portal.jobs import Skipped, step_run_once
from portal.models import Job
from portal.texts import english
from snapshots.jobs import SnapshotCreate, step_restart, step_stop_if_running
from tests.factories import make_server


def _cloud_server(row, **changes) -> cloud.CloudServer:
    fields = dict(
        id=row.openstack_id, name=row.name, status=row.status, task_state=None,
        vm_state="active", power_state=1, project_id=row.project_openstack_id, user_id="u",
        flavor_name="de.NBI small", flavor_vcpus=2, flavor_ram_mib=4096, flavor_disk_gb=50,
        image_id="base-image", addresses=(), metadata={}, created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
    )  # fmt: skip
    fields.update(changes)
    return cloud.CloudServer(**fields)


@pytest.fixture
def vm(people):
    return make_server(project=people["alpha"], name="workbench", created_by=people["bob"])


def _job(people, vm, **state) -> Job:
    return Job.objects.create(
        kind="snapshot.create", actor=people["bob"], project=vm.project, site=vm.site,
        target_server_id=vm.openstack_id, marker="t0k3n",
        params={"name": "gold", "restart": True}, state=dict(state),
    )  # fmt: skip


def test_a_machine_the_user_stopped_before_the_stop_step_stays_off(people, vm, monkeypatch):
    """Running when asked, stopped by the user before the job got to it: not this
    job's stop, so the job never starts it again."""
    stopped = _cloud_server(vm, status="SHUTOFF", power_state=4, vm_state="stopped")
    monkeypatch.setattr(cloud, "server_get", lambda site, server_id: stopped)
    stops = []
    monkeypatch.setattr(cloud, "server_stop", lambda site, server_id: stops.append(server_id))
    job = _job(people, vm, prior_status="ACTIVE")
    assert step_run_once(step_stop_if_running, job) is None
    assert stops == []
    assert not job.state.get("stopped_by_portal")
    outcome = step_run_once(step_restart, job)
    assert isinstance(outcome, Skipped)
    assert "stopped by someone else" in outcome.reason


def test_a_stop_the_job_asked_for_counts_once_nova_took_it(people, vm, monkeypatch):
    running = _cloud_server(vm)
    monkeypatch.setattr(cloud, "server_get", lambda site, server_id: running)
    monkeypatch.setattr(cloud, "server_stop", lambda site, server_id: None)
    job = _job(people, vm, prior_status="ACTIVE")
    assert step_run_once(step_stop_if_running, job) is None
    assert job.state["stop_asked"] is True
    assert job.state["stopped_by_portal"] is True


def test_a_stop_refused_by_the_cloud_is_not_counted_as_the_jobs(people, vm, monkeypatch):
    running = _cloud_server(vm)
    monkeypatch.setattr(cloud, "server_get", lambda site, server_id: running)

    def refuse(site, server_id):
        raise cloud.Forbidden("Policy doesn't allow os_compute_api:servers:stop")

    monkeypatch.setattr(cloud, "server_stop", refuse)
    job = _job(people, vm, prior_status="ACTIVE")
    with pytest.raises(cloud.Forbidden):
        step_run_once(step_stop_if_running, job)
    assert not job.state.get("stopped_by_portal")  # the undo leaves it alone


def test_a_stop_cut_off_before_its_answer_is_the_jobs_when_the_machine_stops(
    people, vm, monkeypatch
):
    stopping = _cloud_server(vm, task_state="powering-off")
    monkeypatch.setattr(cloud, "server_get", lambda site, server_id: stopping)
    job = _job(people, vm, prior_status="ACTIVE", stop_asked=True)
    assert step_run_once(step_stop_if_running, job) is None
    assert job.state["stopped_by_portal"] is True


def test_a_cleanup_that_cannot_reach_the_site_says_first_the_instance_may_be_stopped(
    people, vm, monkeypatch
):
    undo = {undo.name: undo for step in SnapshotCreate.steps for undo in step.undo_steps}
    job = _job(people, vm, prior_status="ACTIVE", stopped_by_portal=True)
    job.error = "Uploading the image: the cloud could not save the snapshot"

    def silent(site, server_id):
        raise cloud.Unavailable("devcloud is unreachable: read timed out", site="devcloud")

    monkeypatch.setattr(cloud, "server_get", silent)
    with pytest.raises(cloud.Unavailable):
        step_run_once(undo["undo_settle"].run, job)
    first, rest = english(job.error).split("\n", 1)
    assert first == (
        "workbench may be left STOPPED: Bielefeld is not answering; "
        "the portal starts it again as soon as it answers."
    )
    assert rest == "Uploading the image: the cloud could not save the snapshot"
    with pytest.raises(cloud.Unavailable):
        step_run_once(undo["undo_start"].run, job)
    assert job.error.count("may be left STOPPED") == 1  # said once

    # The site answers again; the instance is found running: the line goes.
    running = _cloud_server(vm)
    monkeypatch.setattr(cloud, "server_get", lambda site, server_id: running)
    assert step_run_once(undo["undo_settle"].run, job) is None
    assert isinstance(step_run_once(undo["undo_start"].run, job), Skipped)
    assert job.error == "Uploading the image: the cloud could not save the snapshot"
