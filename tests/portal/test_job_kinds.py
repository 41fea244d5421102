"""Job kinds as classes: typed params and state checked on load, each step's undo
paired with it (only what ran is undone, latest first), and the engine alone
writing the job's result and error."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from django.utils import timezone

from instances.models import Server
from portal.jobs import (
    BadJobData,
    Done,
    Kind,
    Skipped,
    Step,
    StepFailed,
    job_advance,
    job_create,
    job_kind_get,
)
from portal.models import Job
from portal.texts import english
from snapshots.models import Snapshot
from tests.factories import make_image, make_server


@dataclass
class CountParams:
    label: str
    fail_at: str = ""


@dataclass
class CountState:
    ran: list[str] = field(default_factory=list)
    stuck: str = ""


def _step(name: str, *, skip: bool = False):
    def run(ctx):
        ctx.state.ran.append(name)
        if ctx.params.fail_at == name:
            ctx.state.stuck = f"{name} is stuck"
            raise StepFailed(f"{name} said no")
        if skip:
            return Skipped("nothing to do")
        return Done(f"{name} done", result={name: "ok"})

    return run


def _undo(name: str) -> Step:
    return Step(f"undo_{name}", f"Undoing {name}", _step(f"undo_{name}"))


class Counting(Kind):
    name = "test.counting"
    Params = CountParams
    State = CountState
    steps = (
        Step("a", "A", _step("a"), undo=_undo("a")),
        Step("b", "B", _step("b", skip=True), undo=_undo("b")),
        Step("c", "C", _step("c"), undo=(_undo("c"), _undo("c2"))),
        Step("d", "D", _step("d"), undo=_undo("d")),
        Step("e", "E", _step("e"), undo=_undo("e")),
    )

    @classmethod
    def title(cls, params: CountParams) -> str:
        return f"Count {params.label}"

    @classmethod
    def error_headline(cls, state: CountState) -> str:
        return state.stuck


@pytest.fixture
def quiet(monkeypatch):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)


def _finish(job: Job) -> Job:
    for _ in range(20):
        job_advance(job.pk)
        job.refresh_from_db()
        if job.status in Job.FINISHED:
            break
    return job


def test_create_records_the_typed_params_and_the_kind_names_the_job(db, quiet):
    job = Counting.create(params=Counting.Params(label="sheep"))
    assert job.kind == "test.counting"
    assert job.params == {"label": "sheep", "fail_at": ""}
    assert job_kind_get(job.kind).describe(job) == "Count sheep"


def test_params_that_do_not_fit_the_kind_are_refused_when_the_job_is_recorded(db, quiet):
    with pytest.raises(BadJobData, match="unknown colour; missing label"):
        job_create(kind="test.counting", params={"colour": "red"})
    assert not Job.objects.exists()


def test_a_stored_state_that_does_not_fit_ends_the_job_with_a_clear_error(db, quiet):
    job = Counting.create(params=Counting.Params(label="sheep"))
    Job.objects.filter(pk=job.pk).update(state={"ran": [], "legacy_flag": True})
    job = _finish(job)
    assert job.status == Job.Status.FAILED
    assert english(job.error) == (
        "This job cannot go on: its stored state do not fit the kind test.counting "
        "(unknown legacy_flag)."
    )
    assert [s["status"] for s in job.steps] == ["not run"] * 5


def test_only_the_steps_that_ran_are_undone_the_latest_first(db, quiet):
    """d fails: its own undo runs (it may have done part of its work), then c's two
    undo steps, then a's; b was skipped (nothing to undo) and e never ran."""
    job = _finish(Counting.create(params=Counting.Params(label="sheep", fail_at="d")))
    assert job.status == Job.Status.FAILED
    undo = [s["name"] for s in job.steps if s["phase"] == "undo"]
    assert undo == ["undo_d", "undo_c", "undo_c2", "undo_a"]
    assert job.state["ran"] == ["a", "b", "c", "d", "undo_d", "undo_c", "undo_c2", "undo_a"]


def test_the_engine_writes_what_steps_return_and_the_kinds_headline_first(db, quiet):
    job = _finish(Counting.create(params=Counting.Params(label="sheep", fail_at="c")))
    assert english(job.error) == "c is stuck\nC: c said no"
    assert job.result == {"a": "ok", "undo_c": "ok", "undo_c2": "ok", "undo_a": "ok"}


def test_a_job_that_succeeds_keeps_each_steps_result(db, quiet):
    job = _finish(Counting.create(params=Counting.Params(label="sheep")))
    assert job.status == Job.Status.SUCCEEDED
    assert job.result == {"a": "ok", "c": "ok", "d": "ok", "e": "ok"}
    assert [s["detail"] for s in job.steps] == [
        "a done", "nothing to do", "c done", "d done", "e done"
    ]  # fmt: skip


# --- Delete jobs stored before their kinds were classes ---------------------------


def _stored_steps(*labels: str, done: int = 0) -> list[dict]:
    """Step records as the engine stored them before (and still does)."""
    records = []
    for n, (name, label) in enumerate(zip(("delete", "summary"), labels, strict=True)):
        started = timezone.now().isoformat() if n <= done else None
        records.append(
            {
                "name": name, "label": label, "phase": "forward",
                "status": "running" if n == done else "pending",
                "started_at": started, "finished_at": None, "detail": "", "runs": 1,
            }
        )  # fmt: skip
    return records


def _fake_cloud(monkeypatch) -> list[str]:
    deleted: list[str] = []

    def delete(site, **ids):
        deleted.extend(ids.values())

    def gone(model):
        def refresh(site, *, openstack_id):
            model.objects.filter(site=site, openstack_id=openstack_id).update(
                deleted_at=timezone.now()
            )

        return refresh

    monkeypatch.setattr("portal.cloud.server_delete", delete)
    monkeypatch.setattr("portal.cloud.image_delete", delete)
    monkeypatch.setattr("instances.services.server_refresh", gone(Server))
    monkeypatch.setattr("instances.services.project_quota_refresh", lambda project: project)
    monkeypatch.setattr("snapshots.services.image_refresh", gone(Snapshot))
    return deleted


def test_a_ticked_delete_stored_half_done_goes_on_to_the_end(db, quiet, people, monkeypatch):
    """An instances.delete row as the untyped kind wrote it (deploy time: one of
    its three servers deleted) loads as the typed kind and finishes."""
    from instances.jobs import InstancesDelete

    deleted = _fake_cloud(monkeypatch)
    alpha, alice = people["alpha"], people["alice"]
    servers = [make_server(project=alpha, name=f"vm-{n}", created_by=alice) for n in range(3)]
    listed = [{"id": s.openstack_id, "name": s.name, "site_id": s.site_id} for s in servers]
    job = Job.objects.create(
        kind="instances.delete", actor=alice, project=alpha, site=people["site"],
        status=Job.Status.RUNNING, started_at=timezone.now(),
        params={"servers": listed, "skipped": [{"name": "db-1", "reason": "locked"}]},
        state={"outcomes": {servers[0].openstack_id: "deleted"}, "wake": "retired"},
        steps=_stored_steps("Deleting the instances", "Summing up"),
    )  # fmt: skip

    context = InstancesDelete.context(job)
    assert context.params.servers == listed
    assert context.state.outcomes == {servers[0].openstack_id: "deleted"}
    job = _finish(job)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert deleted == [servers[1].openstack_id, servers[2].openstack_id]
    assert english(job.result["summary"]) == "Deleted 3, skipped 1: db-1 (locked)."
    assert set(job.state) == {"outcomes"}  # the same keys, the retired one dropped
    assert [(s["name"], s["status"]) for s in job.steps] == [
        ("delete", "done"), ("summary", "done")
    ]  # fmt: skip


def test_an_all_matching_delete_stored_half_done_goes_on_from_its_cursor(
    db, quiet, people, monkeypatch
):
    """A snapshot.delete row carrying a filter, as the untyped kind wrote it: its
    cursor and counts carry on, and the summary counts the rows deleted before."""
    from snapshots.jobs import SnapshotDelete

    deleted = _fake_cloud(monkeypatch)
    alpha, alice = people["alpha"], people["alice"]
    old = [
        make_image(site=people["site"], project=alpha, snapshot=True, name=f"old-{n}",
                   created_by=alice)
        for n in range(3)
    ]  # fmt: skip
    Snapshot.objects.filter(pk=old[0].pk).update(deleted_at=timezone.now())  # deleted before
    matching = {
        "query": [["q", "old-"]], "projects": [alpha.pk], "upto": old[-1].pk,
        "confirmed_at": timezone.now().isoformat(),
    }  # fmt: skip
    job = Job.objects.create(
        kind="snapshot.delete", actor=alice, project=alpha,
        status=Job.Status.RUNNING, started_at=timezone.now(),
        params={"matching": matching, "expected": "3", "filters": "name: old-"},
        state={"cursor": old[0].pk, "deleted": 1, "deleted_names": {"": ["old-0"]}},
        steps=_stored_steps("Deleting the snapshots", "Summing up"),
    )  # fmt: skip

    assert SnapshotDelete.context(job).state.cursor == old[0].pk
    assert SnapshotDelete.describe(job).startswith("Delete all matching snapshots (name: old-; 3")
    job = _finish(job)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert deleted == [old[1].openstack_id, old[2].openstack_id]
    assert english(job.result["summary"]) == "Deleted 3."
    assert job.result["deleted"] == ["old-0", "old-1", "old-2"]
    assert job.state["cursor"] == old[2].pk
