"""What a worker writes (a job's progress, error, step details, summary) is stored as
what to say, not the words: the same job row reads in German to a German reader and
in English to an English one, on the job page, the job list, the instance's event
log and in the mail; values from the cloud stay as the cloud wrote them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_noop

from instances.jobs import went_to_error
from instances.models import Server
from portal.jobs import Done, Kind, Step, StepFailed, Wait, job_advance
from portal.models import Job, Preference
from portal.texts import clock, render, say, size, span, word
from snapshots.jobs import snapshot_notify
from tests.factories import make_server

GERMAN = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}
FAULT = "No valid host was found. There are not enough hosts available."


@dataclass
class TextsParams:
    fail: bool = True


@dataclass
class TextsState:
    looks: list[str] = field(default_factory=list)


def _create_seats(ctx):
    """Waits once, as a launch does between batches, then ends."""
    if not ctx.state.looks:
        ctx.state.looks.append("first")
        progress = say(gettext_noop("created %(done)s of %(total)s"), done=1200, total=2000)
        return Wait(progress=progress, more=True)
    return Done(say(gettext_noop("%(size)s sent"), size=size(3 * 1024**3 // 2)))


def _wait_for_active(ctx):
    if ctx.params.fail:
        raise StepFailed(went_to_error(FAULT))  # Nova's fault, as Nova wrote it


def _undo(ctx):
    return Done(say(gettext_noop("on %(flavor)s"), flavor="de.NBI small"))


class WorkerTexts(Kind):
    name = "test.worker_texts"
    Params = TextsParams
    State = TextsState
    steps = (
        Step("create", gettext_noop("Creating the instances"), _create_seats),
        Step(
            "wait",
            gettext_noop("Waiting for ACTIVE"),
            _wait_for_active,
            undo=Step("undo", gettext_noop("Start requested"), _undo),
        ),
    )


@pytest.fixture
def quiet(monkeypatch):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)


def _run(job: Job) -> Job:
    for _ in range(10):
        job_advance(job.pk)
        job.refresh_from_db()
        if job.is_finished:
            break
    return job


@pytest.fixture
def failed_job(people, quiet) -> Job:
    server = make_server(project=people["alpha"], name="alpha-web-01")
    job = WorkerTexts.create(
        actor=people["bob"], project=people["alpha"], site=people["site"],
        target_server_id=server.openstack_id,
    )  # fmt: skip
    job = _run(job)
    assert job.status == Job.Status.FAILED
    return job


def _page(client, url: str, *, german: bool) -> str:
    return client.get(url, headers=GERMAN if german else {}).content.decode()


def test_a_workers_error_reads_in_the_readers_language_with_the_clouds_words(
    client, people, failed_job
):
    client.force_login(people["bob"])
    url = reverse("job-detail", args=[failed_job.pk])
    german = _page(client, url, german=True)
    assert f"Warten auf ACTIVE: die Instanz ist in ERROR übergegangen: {FAULT}" in german
    assert "Die Instanzen werden erstellt" in german  # a step's label
    assert "1,5 GiB gesendet" in german  # a step's detail: the size in German
    assert "auf de.NBI small" in german  # the undo step's detail
    assert "went to ERROR" not in german
    english = _page(client, url, german=False)
    assert f"Waiting for ACTIVE: the instance went to ERROR: {FAULT}" in english
    assert "1.5 GiB sent" in english
    assert "on de.NBI small" in english


def test_the_job_list_and_the_instance_event_log_say_it_in_german_too(client, people, failed_job):
    client.force_login(people["bob"])
    server = Server.objects.get(openstack_id=failed_job.target_server_id)
    detail = reverse("instances:instance-detail", args=[server.pk])
    for url in (reverse("job-list"), detail):
        german = _page(client, url, german=True)
        assert "Warten auf ACTIVE: die Instanz ist in ERROR übergegangen" in german, url
        english = _page(client, url, german=False)
        assert "Waiting for ACTIVE: the instance went to ERROR" in english, url


def test_a_running_jobs_progress_gives_numbers_the_readers_way(client, people, quiet):
    job = WorkerTexts.create(actor=people["bob"], project=people["alpha"], site=people["site"])
    job_advance(job.pk)  # one batch: it waits
    job.refresh_from_db()
    assert not job.is_finished
    client.force_login(people["bob"])
    for url in (reverse("job-detail", args=[job.pk]), reverse("job-list")):
        assert "1.200 von 2.000 erstellt" in _page(client, url, german=True), url
        assert "created 1,200 of 2,000" in _page(client, url, german=False), url


def test_a_job_written_by_the_old_code_still_shows_its_text(client, people):
    job = Job.objects.create(
        kind="snapshot.create", actor=people["bob"], project=people["alpha"],
        site=people["site"], status=Job.Status.FAILED, params={"name": "gold"},
        error="Stop requested: the cloud refused (quota exceeded)",
        result={"summary": "3 active, 1 failed: ws-4 (no host)."},
        steps=[{"name": "stop", "label": "Stop requested", "status": "failed",
                "detail": "created 3 of 5", "phase": "forward",
                "started_at": None, "finished_at": None}],
    )  # fmt: skip
    client.force_login(people["bob"])
    url = reverse("job-detail", args=[job.pk])
    for german in (True, False):
        body = _page(client, url, german=german)
        assert "Stop requested: the cloud refused (quota exceeded)" in body
        assert "3 active, 1 failed: ws-4 (no host)." in body
        assert "created 3 of 5" in body
    assert "Stopp angefordert —" in _page(client, url, german=True)  # a plain msgid: translated


def test_the_failure_mail_is_in_the_users_language(client, people, failed_job):
    failed_job.kind, failed_job.params = "snapshot.create", {"name": "course-ready"}
    client.force_login(people["bob"])
    client.get(reverse("instances:instance-list"), headers=GERMAN)
    assert Preference.objects.filter(user=people["bob"], value="de").exists()
    snapshot_notify(failed_job)
    (german,) = mail.outbox
    assert f"Warten auf ACTIVE: die Instanz ist in ERROR übergegangen: {FAULT}" in german.body
    assert "Die Instanz ist in ERROR" not in german.subject
    assert "went to ERROR" not in german.body
    Preference.objects.filter(user=people["bob"]).update(value="en")
    snapshot_notify(failed_job)
    assert f"Waiting for ACTIVE: the instance went to ERROR: {FAULT}" in mail.outbox[1].body


def test_params_are_formatted_when_read_not_when_written(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    stored = say(
        gettext_noop("%(site)s has not answered since %(since)s; waiting for it"),
        site="Bielefeld",
        since=clock(datetime(2026, 12, 5, 13, 7, tzinfo=UTC)),
    )
    with translation.override("de"):
        assert render(stored) == "Bielefeld antwortet seit 14:07 nicht; es wird gewartet"
        late = say(
            gettext_noop("Nova was still %(task)s after %(budget)s"),
            task=word("uploading"),
            budget=span(150),
        )
        assert render(late) == "Nova war nach 2,5 min noch nicht fertig (wird hochgeladen)"
    with translation.override("en"):
        assert render(late) == "Nova was still uploading after 2.5 min"


def test_a_stored_text_that_is_not_ours_is_shown_as_stored():
    with translation.override("de"):
        assert render('{"msgid": "broken %(x)s"') == '{"msgid": "broken %(x)s"'
        assert render("Kernel panic - not syncing: VFS") == "Kernel panic - not syncing: VFS"
        assert render("") == ""


@pytest.mark.worker
def test_a_real_launch_that_fails_reads_in_german_with_novas_fault_inside(live_demo, client):
    """Through devcloud, Redis and a real worker: Nova puts the only seat into ERROR;
    the job page in German says so in German, with Nova's fault as Nova wrote it."""
    from images.models import Image
    from instances.launch import instance_launch_request
    from instances.launch_rules import launch_check
    from instances.models import Flavor
    from tests.conftest import wait_for_job

    devcloud = live_demo["clouds"]["devcloud"]
    alice, site = live_demo["users"]["alice"], live_demo["sites"]["devcloud"]
    devcloud.set_faults({"boot_error": {"server_name": "^texts-anna$"}})
    try:
        plan = launch_check(
            actor=alice, project=live_demo["projects"]["alpha"],
            flavor=Flavor.objects.get(site=site, name="de.NBI tiny"),
            image=Image.objects.get(site=site, name="Ubuntu-22.04-LTS"),
            prefix="texts", count=1, participants=["Anna"],
        )  # fmt: skip
        job = wait_for_job(instance_launch_request(actor=alice, plan=plan), 60)
    finally:
        devcloud.set_faults({})
    assert job.status == Job.Status.FAILED
    client.force_login(alice)
    url = reverse("job-detail", args=[job.pk])
    german = _page(client, url, german=True)
    assert f"Zusammenfassung: 0 aktiv, 1 fehlgeschlagen: texts-anna ({FAULT})." in german
    english = _page(client, url, german=False)
    assert f"Summing up: 0 active, 1 failed: texts-anna ({FAULT})." in english
