"""Participants' personal data: the emails stay with whoever runs the workshop,
never reach the cloud, and are deleted a while after the teardown."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone

from instances.jobs import step_launch_create
from operations.tasks import workshop_emails_purge_task
from portal import cloud
from portal.jobs import step_run_once
from portal.models import Job
from tests.instances.test_launch_access import catalog  # noqa: F401  (fixture)
from workshops.models import Workshop

ANNA = "anna@example.org"


def launch_workshop(client, people, catalog, name="kurs"):  # noqa: F811
    client.force_login(people["alice"])
    data = {"project": people["alpha"].pk, "flavor": catalog["small"].pk,
            "image": catalog["ubuntu"].pk, "count": "1", "name": name,
            "participants": f"Anna Example <{ANNA}>\nBen"}  # fmt: skip
    assert client.post(reverse("instances:instance-new"), data).status_code == 302
    client.logout()
    return Workshop.objects.get(name=name)


@pytest.fixture
def workshop(client, people, catalog, monkeypatch):  # noqa: F811
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    return launch_workshop(client, people, catalog)


def page(client, workshop, name="workshop-detail"):
    return client.get(reverse(f"workshops:{name}", args=[workshop.pk]))


def test_emails_and_the_csv_are_for_whoever_runs_the_workshop(client, people, workshop):
    client.force_login(people["bob"])  # a member of the project who did not launch it
    detail = page(client, workshop).content.decode()
    assert "Anna Example" in detail
    assert "kurs-anna-example" in detail
    assert ANNA not in detail
    assert "participants.csv" not in detail
    assert page(client, workshop, "workshop-csv").status_code == 403
    handout = page(client, workshop, "workshop-handout")
    assert handout.status_code == 200
    assert ANNA not in handout.content.decode()

    for organiser in ("alice", "admin"):  # its launcher (a project admin), a superuser
        client.force_login(people[organiser])
        assert ANNA in page(client, workshop).content.decode()
        assert ANNA in page(client, workshop, "workshop-csv").content.decode()


def test_only_the_participants_name_goes_into_the_machines_metadata(workshop, monkeypatch):
    sent = []

    def server_create(site, **kwargs):
        sent.append(kwargs["metadata"])
        raise cloud.BadRequest("Quota exceeded")  # the metadata is all this test needs

    monkeypatch.setattr(cloud, "server_create", server_create)
    step_run_once(step_launch_create, workshop.launch_job)
    assert [metadata["participant"] for metadata in sent] == ["Anna Example", "Ben"]
    assert not any("example.org" in str(value) for value in sent[0].values())


def torn_down(workshop, people, *, days_ago):
    finished = timezone.now() - timedelta(days=days_ago)
    workshop.teardown_job = Job.objects.create(
        kind="instances.delete", actor=people["alice"], status=Job.Status.SUCCEEDED,
        finished_at=finished,
    )  # fmt: skip
    workshop.save()


def emails(workshop) -> list[str]:
    return list(workshop.seats.values_list("email", flat=True))


def test_emails_go_some_days_after_the_teardown(client, people, catalog, settings, monkeypatch):  # noqa: F811
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    settings.PORTAL_WORKSHOP_EMAIL_DAYS = 30
    old, recent, running, deleting = (
        launch_workshop(client, people, catalog, name) for name in ("old", "new", "run", "del")
    )
    torn_down(old, people, days_ago=31)
    torn_down(recent, people, days_ago=29)
    torn_down(deleting, people, days_ago=40)  # asked for long ago, still deleting
    Job.objects.filter(pk=deleting.teardown_job_id).update(
        status=Job.Status.RUNNING, finished_at=None
    )
    # Anna's seat of the old workshop was launched again: the retry has her line too.
    launch = old.launch_job
    retry = Job.objects.create(
        kind=launch.kind, actor=people["alice"], status=Job.Status.SUCCEEDED,
        params={"retry_of": launch.pk, "names": ["old-anna-example"],
                "participants": [f"Anna Example <{ANNA}>"]},
    )  # fmt: skip
    old.seats.filter(participant="Anna Example").update(job=retry, job_index=0)

    workshop_emails_purge_task()  # what the ticker sends every hour
    assert emails(old) == ["", ""]
    assert [s.participant for s in old.seats.all()] == ["Anna Example", "Ben"]
    for job in (launch, retry):
        job.refresh_from_db()
        assert ANNA not in str(job.params)
        assert "Anna Example" in job.params["participants"]
    for kept in (recent, running, deleting):
        assert emails(kept) == [ANNA, ""]
        kept.launch_job.refresh_from_db()
        assert kept.launch_job.params["participants"][0] == f"Anna Example <{ANNA}>"


def test_the_purge_is_on_the_periodic_schedule():
    tasks = [entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()]
    assert "portal.tasks.workshop_emails_purge_task" in tasks
