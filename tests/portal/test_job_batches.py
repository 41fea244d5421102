"""Many jobs woken at once go to the workers several to a message: a message costs
its sender, Redis and the worker's consumer about as much CPU as a short advance.
The job row stays the truth: a batch that runs long hands the rest on, and a lost
batch is recovered job by job by the sweep. The Celery boundary is mocked."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from instances.services import server_wait_state
from operations import tasks
from portal.jobs import jobs_recover_stuck, parked_wake, sending
from portal.models import Job
from tests.factories import make_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def messages(monkeypatch):
    """Each message sent: its task name and its jobs' ids."""
    sent = []

    def send_task(name, args, **options):
        jobs = args[0] if name == sending.ADVANCE_MANY_TASK else [args]
        sent.append((name, [job_id for job_id, _ in jobs]))

    monkeypatch.setattr("config.celery.app.send_task", send_task)
    return sent


@pytest.fixture
def advanced(monkeypatch):
    """The ids of the jobs a batch ran, in order (the runs themselves mocked)."""
    ran = []
    monkeypatch.setattr(
        tasks, "_advance", lambda job_id, wake, preloaded=None, claimed_at=None: ran.append(job_id)
    )
    return ran


def _parked(people, count: int) -> list[Job]:
    """`count` jobs parked on their servers as they were; the servers stopped since."""
    jobs = []
    for _ in range(count):
        server = make_server(project=people["alpha"])
        jobs.append(
            Job.objects.create(
                kind="server.stop", status=Job.Status.RUNNING, actor=people["alice"],
                project=people["alpha"], site=server.site, target_server_id=server.openstack_id,
                waits_for="server", wake="old", due_at=timezone.now() + timedelta(seconds=30),
                parked_on=server_wait_state("ACTIVE", "", None),
            )
        )  # fmt: skip
        server.status = "SHUTOFF"
        server.save()
    return jobs


def test_many_jobs_woken_at_once_go_ten_to_a_message_each_once(people, messages):
    jobs = _parked(people, 25)
    woken = parked_wake(people["alpha"].site, "server")
    assert sorted(woken) == sorted(job.pk for job in jobs)
    assert [name for name, _ in messages] == [sending.ADVANCE_MANY_TASK] * 3
    assert sorted(len(ids) for _, ids in messages) == [8, 8, 9]
    assert sorted(pk for _, ids in messages for pk in ids) == sorted(woken)


def test_one_job_woken_alone_gets_a_message_of_its_own(people, messages):
    (job,) = _parked(people, 1)
    assert parked_wake(people["alpha"].site, "server") == [job.pk]
    assert messages == [(sending.ADVANCE_TASK, [job.pk])]


def _free_jobs(people, count: int) -> list[Job]:
    """`count` jobs due now, each with a token of its own, that no worker holds."""
    return [
        Job.objects.create(
            kind="server.stop", status=Job.Status.RUNNING, actor=people["alice"],
            project=people["alpha"], site=people["alpha"].site,
            target_server_id=f"server-{n}", wake=f"token-{n}", due_at=timezone.now(),
        )
        for n in range(count)
    ]  # fmt: skip


def test_a_batch_advances_each_job_it_holds_with_its_own_token(people, monkeypatch, messages):
    """One UPDATE claims the batch: a job is run only if it was free and its token
    is the message's; a job held by another worker, a finished one, or one woken
    again since (a new token) is left alone, as its own claim would leave it."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    free, held, finished, rewoken = _free_jobs(people, 4)
    Job.objects.filter(pk=held.pk).update(lease_until=timezone.now() + timedelta(seconds=5))
    Job.objects.filter(pk=finished.pk).update(status=Job.Status.SUCCEEDED)
    advanced = []

    def advance(job_id, wake, preloaded=None, claimed_at=None):
        row = Job.objects.get(pk=job_id)
        assert row.lease_until is not None
        assert row.lease_until > timezone.now()
        advanced.append((job_id, wake, claimed_at is not None))

    monkeypatch.setattr(tasks, "_advance", advance)
    batch = [[job.pk, job.wake] for job in (free, held, finished, rewoken)]
    batch[3][1] = "an-older-token"
    with CaptureQueriesContext(connection) as queries:
        tasks.jobs_advance_task(batch)
    assert advanced == [(free.pk, free.wake, True)]
    claims = [q["sql"] for q in queries if q["sql"].startswith('UPDATE "portal_job"')]
    assert len(claims) == 1
    assert messages == []


def test_a_job_listed_twice_in_a_batch_runs_once(people, monkeypatch, messages, advanced):
    (job,) = _free_jobs(people, 1)
    tasks.jobs_advance_task([[job.pk, job.wake], [job.pk, job.wake]])
    assert advanced == [job.pk]


def test_without_returning_a_batch_claims_each_job_with_the_same_outcome(
    people, monkeypatch, messages, advanced
):
    """SQLite before 3.35 has no RETURNING: each job is claimed by its own UPDATE."""
    from django.db import connection

    free, held = _free_jobs(people, 2)
    Job.objects.filter(pk=held.pk).update(lease_until=timezone.now() + timedelta(seconds=5))
    monkeypatch.setattr(connection.features, "can_return_columns_from_insert", False)
    tasks.jobs_advance_task([[free.pk, free.wake], [held.pk, held.wake]])
    assert advanced == [free.pk]
    assert Job.objects.get(pk=free.pk).lease_until is not None


def test_a_batch_that_runs_long_lets_go_of_the_rest_and_hands_it_on(
    people, monkeypatch, messages, advanced
):
    """Jobs the batch held but did not start are freed before they are handed on,
    so the next message claims them at once (not after their lease ran out); a job
    whose claim failed is not handed on."""
    jobs = _free_jobs(people, 5)
    Job.objects.filter(pk=jobs[3].pk).update(lease_until=timezone.now() + timedelta(seconds=5))
    clock = itertools.chain([0.0, 0.1, tasks.BATCH_START_SECONDS + 1], itertools.repeat(0.0))
    monkeypatch.setattr(tasks.time, "monotonic", lambda: next(clock))
    tasks.jobs_advance_task([[job.pk, job.wake] for job in jobs])
    assert advanced == [jobs[0].pk, jobs[1].pk]
    assert messages == [(sending.ADVANCE_MANY_TASK, [jobs[2].pk, jobs[4].pk])]
    assert Job.objects.get(pk=jobs[2].pk).lease_until is None
    assert Job.objects.get(pk=jobs[4].pk).lease_until is None
    assert Job.objects.get(pk=jobs[3].pk).lease_until is not None  # another worker's
    # The handed-on message claims them.
    advanced.clear()
    tasks.jobs_advance_task([[jobs[2].pk, jobs[2].wake], [jobs[4].pk, jobs[4].wake]])
    assert advanced == [jobs[2].pk, jobs[4].pk]


def test_jobs_a_lost_batch_held_are_sent_again_once_their_lease_ran_out(
    people, monkeypatch, messages, settings
):
    """A batch killed after its claim: the jobs it held are handed on by the sweep
    once their lease has run out, as for any killed run."""
    jobs = _free_jobs(people, 3)
    monkeypatch.setattr(tasks, "_advance", lambda *args: (_ for _ in ()).throw(SystemExit))
    with pytest.raises(SystemExit):
        tasks.jobs_advance_task([[job.pk, job.wake] for job in jobs])
    messages.clear()
    assert jobs_recover_stuck() == []  # still held
    overdue = timezone.now() - timedelta(seconds=settings.JOB_RECOVER_AFTER_SECONDS + 1)
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(
        lease_until=timezone.now() - timedelta(seconds=1), due_at=overdue
    )
    assert sorted(jobs_recover_stuck()) == sorted(job.pk for job in jobs)


def test_the_jobs_of_a_lost_batch_are_sent_again_by_the_sweep(people, messages, settings):
    jobs = _parked(people, 3)
    parked_wake(people["alpha"].site, "server")
    messages.clear()  # the batch never reached a worker
    overdue = timezone.now() - timedelta(seconds=settings.JOB_RECOVER_AFTER_SECONDS + 1)
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(due_at=overdue)
    assert sorted(jobs_recover_stuck()) == sorted(job.pk for job in jobs)
    assert sorted(pk for _, ids in messages for pk in ids) == sorted(job.pk for job in jobs)


def _stop_job(people, server) -> Job:
    from portal.jobs import job_create

    return job_create(
        kind="server.stop", actor=people["alice"], project=people["alpha"], site=server.site,
        target_server_id=server.openstack_id,
    )  # fmt: skip


def test_a_batch_reads_its_jobs_and_their_servers_once(people, messages, monkeypatch):
    """Each job of a batch still claims itself and runs as alone (here: asks Nova to
    stop its server, and parks); its row and its server's come from one read each."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal import cloud

    site = people["alpha"].site
    site.watched_at = timezone.now()  # the watcher keeps the mirror current
    site.save()
    stopped = []
    monkeypatch.setattr(
        cloud, "server_stop", lambda site_name, server_id: stopped.append(server_id)
    )
    servers = [make_server(project=people["alpha"]) for _ in range(3)]
    jobs = [_stop_job(people, server) for server in servers]
    messages.clear()
    with CaptureQueriesContext(connection) as queries:
        tasks.jobs_advance_task([[job.pk, job.wake] for job in jobs])
    assert sorted(stopped) == sorted(server.openstack_id for server in servers)
    for job in jobs:
        job.refresh_from_db()
        assert job.waits_for == "server"  # stop asked: waiting for SHUTOFF
        assert job.lease_until is None
    reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT")]
    assert len([sql for sql in reads if 'FROM "portal_job"' in sql]) == 1
    # + the park checks of the batch's jobs, one read at its end
    assert len([sql for sql in reads if 'FROM "instances_server"' in sql]) == 1 + 1


def test_a_batch_never_runs_a_job_on_a_row_older_than_its_claim(people, messages, monkeypatch):
    """A job woken again after the batch read it (a new token) is not run by the
    batch's old message: its claim fails, whatever the row the batch read."""
    job = _stop_job(people, make_server(project=people["alpha"]))
    second = _stop_job(people, make_server(project=people["alpha"]))
    preload = tasks.jobs_preload

    def preload_then_wake(jobs):
        rows = preload(jobs)
        Job.objects.filter(pk=job.pk).update(wake="newer")
        return rows

    monkeypatch.setattr(tasks, "jobs_preload", preload_then_wake)
    from portal import cloud

    monkeypatch.setattr(cloud, "server_stop", lambda *a, **k: pytest.fail("ran on a stale row"))
    monkeypatch.setattr(cloud, "server_get", lambda *a, **k: pytest.fail("ran on a stale row"))
    Job.objects.filter(pk=second.pk).update(status=Job.Status.SUCCEEDED)
    tasks.jobs_advance_task([[job.pk, job.wake], [second.pk, second.wake]])
    job.refresh_from_db()
    assert job.status == Job.Status.PENDING
    assert job.wake == "newer"


def test_a_batch_reads_the_images_its_snapshot_jobs_wait_for_once(people, messages):
    """Snapshot jobs woken when Nova's task on their servers ended (at the upload
    step) read their images from the mirror in one query for the batch, and each
    goes on as alone: the image is active, so past the upload."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal.jobs import job_create
    from tests.factories import make_image

    site = people["alpha"].site
    site.watched_at = timezone.now()  # the watcher keeps the mirror current
    site.save()
    jobs = []
    for n in range(3):
        server = make_server(project=people["alpha"], status="SHUTOFF", task_state="")
        image = make_image(site=site, project=people["alpha"], snapshot=True, status="active")
        job = job_create(
            kind="snapshot.create", actor=people["alice"], project=people["alpha"], site=site,
            target_server_id=server.openstack_id, params={"name": f"snap-{n}"},
        )  # fmt: skip
        upload = next(i for i, step in enumerate(job.steps) if step["name"] == "upload")
        for step in job.steps[:upload]:
            step.update(status="done", started_at=job.created_at.isoformat(),
                        finished_at=job.created_at.isoformat())  # fmt: skip
        job.step_index, job.status = upload, Job.Status.RUNNING
        job.state = {"image_id": image.openstack_id, "prior_status": "SHUTOFF"}
        job.target_image_id = image.openstack_id
        job.save()
        jobs.append(job)
    messages.clear()
    with CaptureQueriesContext(connection) as queries:
        tasks.jobs_advance_task([[job.pk, job.wake] for job in jobs])
    image_reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT")
                   and 'FROM "images_image"' in q["sql"]]  # fmt: skip
    assert len(image_reads) == 1
    for job in jobs:
        job.refresh_from_db()
        assert job.status == Job.Status.SUCCEEDED, job.error  # not asked to restart
        assert [step["status"] for step in job.steps if step["name"] == "upload"] == ["done"]


def test_a_release_writes_back_nothing_a_run_does_not_change(people, messages, monkeypatch):
    """The sweep may mark a free job resent (keeping its token) after a batch read
    its row: the batch's run of it must not write the older value back. Nor does a
    run rewrite what only the job's recording sets (its params)."""
    from portal import cloud
    from portal.jobs import advance

    assert {field.name for field in Job._meta.concrete_fields} >= advance._KEPT_BY_RUNS
    site = people["alpha"].site
    site.watched_at = timezone.now()  # the watcher keeps the mirror current
    site.save()
    monkeypatch.setattr(cloud, "server_stop", lambda site_name, server_id: None)
    job = _stop_job(people, make_server(project=people["alpha"]))
    second = _stop_job(people, make_server(project=people["alpha"]))
    preload = tasks.jobs_preload
    resent = timezone.now()

    def preload_then_sweep(jobs):
        rows = preload(jobs)
        Job.objects.filter(pk=job.pk).update(resent_at=resent, params={"changed": "elsewhere"})
        return rows

    monkeypatch.setattr(tasks, "jobs_preload", preload_then_sweep)
    tasks.jobs_advance_task([[job.pk, job.wake], [second.pk, second.wake]])
    job.refresh_from_db()
    assert job.waits_for == "server"  # it ran: stop asked, waiting for SHUTOFF
    assert job.resent_at == resent
    assert job.params == {"changed": "elsewhere"}


def test_jobs_a_batch_parks_on_a_state_already_gone_are_woken_once_at_its_end(
    people, messages, monkeypatch
):
    """The batch's park checks come at its end, still after each park was saved:
    a job whose server the mirror shows moved on before anyone could see the job
    parked (here: stopped already, written by a sync that found no one parked) is
    woken then, with one message, not left for the fallback poll."""
    from instances.models import Server
    from portal import cloud

    site = people["alpha"].site
    site.watched_at = timezone.now()
    site.save()

    def stop_seen_by_a_sync(site_name, server_id):
        Server.objects.filter(openstack_id=server_id).update(status="SHUTOFF")

    monkeypatch.setattr(cloud, "server_stop", stop_seen_by_a_sync)
    jobs = [_stop_job(people, make_server(project=people["alpha"])) for _ in range(3)]
    messages.clear()
    tasks.jobs_advance_task([[job.pk, job.wake] for job in jobs])
    for job in jobs:
        job.refresh_from_db()
        assert job.waits_for == ""  # woken: not parked any more
        assert job.lease_until is None
    woken = sorted(pk for _, pks in messages for pk in pks)
    assert woken == sorted(job.pk for job in jobs)  # one message each


def test_a_batch_claim_finds_its_rows_by_their_keys_not_by_reading_every_job(people):
    """The job table holds every job the portal ever ran: a batch's claim must look
    up its few rows by primary key, on both databases."""
    from django.db import connection

    from portal import prepared
    from portal.jobs import jobs_claim

    jobs = _free_jobs(people, 3)
    # A table the size of a portal's history, with its statistics: a plan for a few
    # rows in a tiny table says nothing.
    history = [
        Job(kind="server.stop", status=Job.Status.SUCCEEDED, actor=people["alice"],
            project=people["alpha"], site=people["alpha"].site, target_server_id=f"old-{n}")
        for n in range(3000)
    ]  # fmt: skip
    Job.objects.bulk_create(history, batch_size=500)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE portal_job" if connection.vendor == "postgresql" else "ANALYZE")
    jobs_claim([(job.pk, job.wake) for job in jobs])
    sql = prepared.built(("jobs_claim", len(jobs)), None)  # as the claim built it
    params = [
        None, None, *[job.pk for job in jobs], *[v for job in jobs for v in (job.pk, job.wake)],
        *[str(status) for status in Job.FINISHED], None,
    ]  # fmt: skip
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            plan = " ".join(str(row[-1]) for row in cursor.fetchall())
            assert "USING INTEGER PRIMARY KEY" in plan
            assert "SCAN portal_job" not in plan
        else:
            cursor.execute("EXPLAIN " + sql, params)
            plan = " ".join(row[0] for row in cursor.fetchall())
            assert "portal_job_pkey" in plan
            assert "Seq Scan" not in plan
