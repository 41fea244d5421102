"""The portal in German: the browser's Accept-Language, the switch in the header,
German dates and sizes; without either, English."""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.urls import reverse

from portal.models import Job
from tests.factories import make_image, make_server

GERMAN = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}


def test_the_instance_overview_answers_in_the_browsers_language(client, people):
    make_server(project=people["alpha"], name="alpha-web-01", flavor_ram_mib=1536)
    client.force_login(people["bob"])
    body = client.get(reverse("instances:instance-list"), headers=GERMAN).content.decode()
    assert '<html lang="de">' in body
    assert "Neue Instanz" in body
    assert "Ausgewählte löschen" in body
    assert "Erstellt von" in body  # a column of the table
    assert "New instance" not in body


def test_without_accept_language_the_portal_speaks_english(client, people):
    client.force_login(people["bob"])
    body = client.get(reverse("instances:instance-list")).content.decode()
    assert '<html lang="en">' in body
    assert "New instance" in body
    # The switch offers the other language, named in it.
    assert 'value="de" lang="de">Deutsch</button>' in body


def test_the_instance_page_gives_dates_and_sizes_the_german_way(client, people):
    created = datetime(2026, 11, 28, 8, 15, tzinfo=UTC)
    server = make_server(
        project=people["alpha"], name="alpha-web-01", flavor_ram_mib=1536, created_at=created
    )
    client.force_login(people["bob"])
    url = reverse("instances:instance-detail", args=[server.pk])
    german = client.get(url, headers=GERMAN).content.decode()
    assert "1,5 GiB RAM" in german
    assert "28.11.2026 09:15" in german  # Europe/Berlin
    assert "Allgemeine Angaben" in german
    english = client.get(url).content.decode()
    assert "1.5 GiB RAM" in english
    assert "2026-11-28 09:15" in english


def test_the_snapshot_table_answers_in_german(client, people):
    make_image(
        site=people["site"], project=people["alpha"], snapshot=True, name="alpha-gold",
        size=3 * 1024**3 // 2, created_at=datetime(2026, 11, 28, 8, 15, tzinfo=UTC),
    )  # fmt: skip
    client.force_login(people["bob"])
    body = client.get(reverse("snapshots:snapshot-list"), headers=GERMAN).content.decode()
    assert "Schnellsuche" in body
    assert "Erstellt am" in body
    assert ">Größe<" in body or "Größe</a>" in body  # the size column's header
    assert "Jetzt prüfen" in body
    assert "28.11.2026 09:15" in body
    assert "1,5\xa0GB" in body  # Django's filesizeformat, in the German locale


def test_a_job_page_answers_in_german(client, people):
    job = Job.objects.create(
        kind="snapshot.create", actor=people["bob"], project=people["alpha"], site=people["site"],
        params={"name": "gold"}, status="failed",
        steps=[{"name": "stop", "label": "Stopping", "status": "done", "detail": "",
                "started_at": "2026-11-27T10:00:00+00:00", "finished_at": "2026-11-27T10:00:01.500000+00:00"}],
    )  # fmt: skip
    client.force_login(people["bob"])
    body = client.get(reverse("job-detail", args=[job.pk]), headers=GERMAN).content.decode()
    assert f"Auftrag #{job.pk}" in body
    assert "Angefordert von" in body
    assert "fehlgeschlagen" in body
    assert "— erledigt" in body  # the step's status


def test_the_language_switch_remembers_the_choice(client, people):
    client.force_login(people["bob"])
    home = reverse("instances:instance-list")
    # Back to the page the switch was clicked on (the browser's Referer).
    response = client.post(
        reverse("set_language"), {"language": "de"}, headers={"Referer": f"http://testserver{home}"}
    )
    assert response.status_code == 302
    assert response["Location"] == f"http://testserver{home}"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "de"
    # The cookie wins over the browser's language from now on.
    body = client.get(home, headers={"Accept-Language": "en"}).content.decode()
    assert "Neue Instanz" in body
    assert 'value="en" lang="en">English</button>' in body
    client.post(reverse("set_language"), {"language": "en"})
    assert "New instance" in client.get(home).content.decode()


def test_the_switch_works_on_the_login_page(client, db):
    body = client.get(reverse("login"), headers=GERMAN).content.decode()
    assert "Anmelden" in body
    assert reverse("set_language") in body


def test_the_park_jobs_title_is_german_on_a_german_page():
    from django.utils import translation

    from snapshots.park import ParkParams, ServerPark

    with translation.override("de"):
        assert ServerPark.title(ParkParams()) == "Instanz parken"
        assert ServerPark.title(ParkParams(verify=True)).startswith("Instanz parken (und")


def test_a_delete_confirmation_says_wird_for_one_snapshot_and_werden_for_more(client, people):
    """German conjugates the verb: one sentence for any count read "1 Snapshot werden
    gelöscht", and the consequence said "they" of a single snapshot."""
    snaps = [
        make_image(site=people["site"], project=people["alpha"], snapshot=True, name=f"keep-{i}")
        for i in range(3)
    ]
    client.force_login(people["alice"])  # alpha's admin may delete any of them
    url = reverse("snapshots:snapshot-delete")
    one = client.get(url, {"selected": [snaps[0].pk]}, headers=GERMAN).content.decode()
    assert "1 Snapshot wird gelöscht." in one
    assert "Das Löschen in der Cloud lässt sich nicht rückgängig machen." in one
    three = client.get(url, {"selected": [s.pk for s in snaps]}, headers=GERMAN).content.decode()
    assert "3 Snapshots werden gelöscht." in three
    english = client.get(url, {"selected": [snaps[0].pk]}).content.decode()
    assert "1 snapshot will be deleted. Deleting from the cloud cannot be undone." in english


def _job_titles(client, headers=None) -> str:
    body = client.get(reverse("job-list"), headers=headers or {}).content.decode()
    return " ".join(body.split())  # the titles as one line each, whatever the template's layout


def test_job_titles_say_one_instance_and_three_instances(client, people):
    """Titles were "Launch 1 instance(s)" and "Delete 1 snapshot(s)" (German
    "1 Instanz(en) starten", "3 × Snapshot löschen")."""
    made = dict(actor=people["alice"], project=people["alpha"], site=people["site"])
    Job.objects.create(kind="instances.launch", params={"names": ["ws-1"]}, **made)
    Job.objects.create(kind="instances.launch", params={"names": ["a", "b", "c"]}, **made)
    Job.objects.create(kind="snapshot.delete", params={"images": ["i-1"]}, **made)
    Job.objects.create(kind="instances.delete", params={"servers": ["s-1", "s-2", "s-3"]}, **made)
    client.force_login(people["alice"])
    english = _job_titles(client)
    for title in ("Launch 1 instance<", "Launch 3 instances<", "Delete 1 snapshot<",
                  "Delete 3 instances<"):  # fmt: skip
        assert title in english.replace(" <", "<"), title
    german = _job_titles(client, GERMAN).replace(" <", "<")
    for title in ("1 Instanz starten<", "3 Instanzen starten<", "1 Snapshot löschen<",
                  "3 Instanzen löschen<"):  # fmt: skip
        assert title in german, title


def test_a_started_snapshot_batch_says_instance_for_one_and_instances_for_more(
    client, people, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    alpha = people["alpha"]
    servers = [make_server(project=alpha, name=f"ws-{n}") for n in range(3)]
    client.force_login(people["alice"])
    url = reverse("snapshots:snapshot-create-many")

    def started(chosen, key, headers=None) -> str:
        data = {"selected": [s.pk for s in chosen], "idempotency_key": key}
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url, data, headers=headers or {}, follow=True)
        return " ".join(response.content.decode().split())

    one = started(servers[:1], "k1", GERMAN)
    assert "Snapshot von 1 Instanz: Auftrag #" in one
    assert "Ihre Zeile zeigt den Fortschritt" in one
    two = started(servers[1:], "k2")
    assert "Snapshotting 2 instances: jobs #" in two
