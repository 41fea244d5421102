"""The engine's one-row statements with their SQL built once (portal.prepared):
each does what its ORM form did, on SQLite and on PostgreSQL (DATABASE_URL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from instances.services import server_task_began
from portal import prepared
from portal.jobs.advance import _claim
from portal.jobs.parking import MISSING, WATCHED
from portal.models import Job
from tests.factories import make_image, make_server


def _job(site, **fields) -> Job:
    return Job.objects.create(kind="test.waits", site=site, wake="w1", **fields)


def test_a_row_update_writes_the_named_fields_as_the_orm_converts_them(site):
    job = _job(site, progress="before")
    Job.objects.filter(pk=job.pk).update(error="written meanwhile")
    moment = datetime(2026, 12, 6, 11, 30, 15, 123456, tzinfo=UTC)
    job.state = {"image_id": "i-1", "nested": {"list": [1, "two"]}}
    job.due_at = moment
    job.progress = "not named, not written"

    assert prepared.row_update(job, ["state", "due_at"]) == 1

    row = Job.objects.get(pk=job.pk)
    assert row.state == {"image_id": "i-1", "nested": {"list": [1, "two"]}}
    assert row.due_at == moment  # the microseconds and the zone survive
    assert row.progress == "before"
    assert row.error == "written meanwhile"
    # The ORM finds it by the value it wrote: the stored text is the ORM's.
    assert Job.objects.filter(
        pk=job.pk, due_at__gte=moment, due_at__lt=moment + timedelta(microseconds=1)
    ).exists()


def test_a_whole_row_update_writes_every_field_and_never_inserts_a_gone_row(site):
    job = _job(site)
    job.status, job.steps, job.lease_until = Job.Status.RUNNING, [{"name": "a"}], None
    Job.objects.filter(pk=job.pk).update(progress="overwritten by the whole row")

    assert prepared.row_update(job) == 1
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.steps, row.progress) == (Job.Status.RUNNING, [{"name": "a"}], "")

    Job.objects.filter(pk=job.pk).delete()
    assert prepared.row_update(job) == 0  # save() would have made it again
    assert not Job.objects.filter(pk=job.pk).exists()


def test_a_row_update_of_a_field_the_model_lacks_is_refused(site):
    job = _job(site)
    with pytest.raises(ValueError, match="not all of"):
        prepared.row_update(job, ["state", "no_such_field"])


def test_a_claim_takes_a_free_or_expired_job_with_its_token_only(site):
    job = _job(site)
    assert _claim(job.pk, "another token") is None
    assert _claim(job.pk, "w1") is not None
    assert Job.objects.get(pk=job.pk).lease_until > timezone.now()
    assert _claim(job.pk, "w1") is None  # held now
    assert _claim(job.pk, None) is None

    # A lease that ran out a second ago is free again: the comparison is of times,
    # not of text in different formats.
    Job.objects.filter(pk=job.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert _claim(job.pk, None) is not None

    Job.objects.filter(pk=job.pk).update(lease_until=None, status=Job.Status.SUCCEEDED)
    assert _claim(job.pk, "w1") is None  # a finished job is never claimed


def test_the_state_a_job_parks_on_is_read_as_the_orm_reads_it(people):
    site, alpha = people["site"], people["alpha"]
    server = make_server(project=alpha, status="SHUTOFF", task_state="image_snapshot")
    gone = make_server(project=alpha, deleted_at=timezone.now())
    image = make_image(site=site, project=alpha, snapshot=True, status="saving")
    watched_server, watched_image = WATCHED["server"], WATCHED["image"]

    for watched, row in ((watched_server, server), (watched_server, gone), (watched_image, image)):
        assert watched.state_now(site.pk, row.openstack_id) == watched.state_of(row)
        assert (
            watched.state_now(site.pk, row.openstack_id)
            == (watched.states(site.pk, [row.openstack_id])[row.openstack_id])
        )
    assert watched_server.state_now(site.pk, gone.openstack_id) == "deleted"
    assert watched_server.state_now(site.pk, "no-such-server") == MISSING


def test_a_task_an_action_began_is_written_unless_a_newer_listing_was(people):
    server = make_server(project=people["alpha"], status="ACTIVE", task_state="")
    answered = timezone.now()
    server_task_began(server.site, server, task_state="powering-off", answered_at=answered)
    row = type(server).objects.get(pk=server.pk)
    assert (row.task_state, row.fingerprint, row.synced_at) == ("powering-off", "", answered)

    # A listing asked after the answer (synced later) holds newer news and wins.
    later = answered + timedelta(seconds=1)
    type(server).objects.filter(pk=server.pk).update(task_state="", synced_at=later)
    kept = server_task_began(server.site, row, task_state="powering-on", answered_at=answered)
    assert (kept.task_state, kept.synced_at) == ("", later)


def test_a_row_inserted_unless_present_keeps_the_first(people):
    from portal.models import Authorship

    site, alice, bob = people["site"], people["alice"], people["bob"]
    first = Authorship(site=site, openstack_id="i-1", user=alice)
    assert prepared.row_insert_unless_present(first) == 1
    assert (
        prepared.row_insert_unless_present(Authorship(site=site, openstack_id="i-1", user=bob)) == 0
    )
    row = Authorship.objects.get(site=site, openstack_id="i-1")
    assert row.user_id == alice.pk
    assert row.created_at == first.created_at


def test_the_models_written_through_prepared_statements_have_no_save_signals():
    """The prepared statements send no pre_save or post_save: a receiver added to one
    of these models would silently miss the engine's writes, so this says so first."""
    from django.db.models import signals

    from instances.models import Server
    from portal.models import Authorship

    for model in (Job, Server, Authorship):
        for signal in (signals.pre_save, signals.post_save):
            assert not signal.has_listeners(model), f"{signal} has receivers for {model.__name__}"
