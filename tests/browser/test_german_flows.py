"""The three main flows once in German, as a German browser gets them (Chromium's
locale de-DE: Accept-Language asks for German): a snapshot with restart, an instance
booted from it, a workshop; axe-core finds nothing on the German pages either."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_user_flows import audit

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.browser_locale("de-DE")]


def anmelden(page, live_server, username):
    page.goto(f"{live_server.url}/login/")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    page.get_by_label("Benutzername").fill(username)
    page.get_by_label("Passwort").fill(username)
    page.get_by_role("button", name="Anmelden").click()
    expect(page.get_by_role("heading", name="Instanzen")).to_be_visible()


def test_snapshot_with_restart_then_boot_from_it_in_german(
    live_demo, live_server, page, artifacts_dir
):
    from instances.models import Server

    anmelden(page, live_server, "alice")
    page.get_by_role("link", name="alpha-web-01").click()
    expect(page.get_by_role("heading", name="Allgemeine Angaben")).to_be_visible()
    audit(page, "Instanzseite")

    page.get_by_role("link", name="Snapshot erstellen").click()
    dialog = page.get_by_role("dialog")
    expect(
        dialog.get_by_role("heading", name="Snapshot von alpha-web-01 erstellen")
    ).to_be_visible()
    dialog.get_by_label("Name des Snapshots").fill("de-gold")
    expect(dialog.get_by_text("„de-gold“ ist verfügbar.")).to_be_visible()
    dialog.get_by_label("Die Instanz wieder starten, wenn der Snapshot fertig ist").check()
    audit(page, "Snapshot-Dialog")
    dialog.get_by_role("button", name="Snapshot erstellen").click()

    snapshots = page.locator("li", has_text="de-gold")
    expect(snapshots.get_by_text("aktiv")).to_be_visible(timeout=60_000)
    job = page.get_by_role("cell", name=re.compile("Snapshot „de-gold“ erstellen")).first
    expect(job).to_be_visible(timeout=30_000)
    expect(page.locator("#instance-live .badge").first).to_have_text("ACTIVE", timeout=30_000)
    page.screenshot(path=str(artifacts_dir / "de-instance.png"), full_page=True)

    # The job's page: German steps, in German words.
    job.get_by_role("link").click()
    expect(page.get_by_text("Angefordert von")).to_be_visible()
    expect(page.get_by_text(re.compile("Snapshot angefordert — erledigt"))).to_be_visible()
    audit(page, "Auftragsseite")

    # Boot a new instance from the snapshot, from its row in the table.
    page.get_by_role("link", name="Snapshots", exact=True).click()
    page.get_by_label("Name", exact=True).fill("de-")
    expect(page.get_by_text("1 insgesamt")).to_be_visible()
    audit(page, "Snapshot-Tabelle")
    page.get_by_role("link", name="Instanz aus de-gold starten").click()
    expect(page.get_by_role("heading", name="Neue Instanz")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("de-boot")
    # Its disk is alpha-web-01's 50 GB: the tiny flavor (20 GB) does not fit it.
    page.get_by_label(re.compile(r"^de\.NBI small")).check()
    expect(page.get_by_label(re.compile("^de-gold"))).to_be_enabled()
    page.get_by_label(re.compile("^de-gold")).check()
    audit(page, "Startseite")
    page.get_by_role("button", name="Starten", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("Auftrag #\\d+: 1 Instanz"))).to_be_visible()
    expect(page.get_by_text("erfolgreich").first).to_be_visible(timeout=90_000)
    assert Server.objects.filter(name="de-boot", status="ACTIVE").exists()

    # Clean up: delete the new machine, then the snapshot (alpha's quota is small).
    page.get_by_role("link", name="Instanzen").click()
    page.get_by_role("link", name="de-boot").click()
    page.get_by_role("link", name="Löschen").click()
    page.get_by_role("button", name="1 Instanz löschen").click()
    expect(page.get_by_text("erfolgreich").first).to_be_visible(timeout=60_000)
    page.get_by_role("link", name="Snapshots", exact=True).click()
    expect(page.get_by_role("heading", name="Snapshots", exact=True)).to_be_visible()
    page.get_by_label("Name", exact=True).fill("de-")
    # The filter answers by htmx; at the end of a full run it took longer than 5 s once.
    expect(page.get_by_text("1 insgesamt")).to_be_visible(timeout=20_000)
    page.get_by_label("Alle auf dieser Seite auswählen").check()
    page.get_by_role("button", name="Ausgewählte löschen").click()
    expect(page.get_by_role("heading", name="Snapshots löschen")).to_be_visible()
    audit(page, "Löschbestätigung")
    page.get_by_role("button", name="1 Snapshot löschen").click()
    expect(page.get_by_role("status").filter(has_text="1 gelöscht.")).to_be_visible(timeout=60_000)


def test_a_workshop_in_german(live_demo, live_server, page):
    from instances.models import Server

    anmelden(page, live_server, "alice")
    page.get_by_role("link", name="Neue Instanz").click()
    page.get_by_label("Name", exact=True).fill("kurs-de")
    page.get_by_label("Teilnehmende (eine Person pro Zeile, Workshop-Modus)").fill(
        "Jürgen Groß\nAnna Beispiel <anna@example.org>"
    )
    page.get_by_label(re.compile(r"^de\.NBI tiny")).check()
    page.get_by_label("Ubuntu-22.04-LTS").check()
    expect(page.get_by_text("kurs-de-juergen-gross")).to_be_visible()
    expect(page.get_by_text("2 Instanzen, endgültige Namen:")).to_be_visible()
    page.get_by_role("button", name="Starten", exact=True).click()
    page.get_by_role("link", name="Die Workshop-Seite von kurs-de öffnen").click()

    expect(page.get_by_role("heading", name="Workshop kurs-de")).to_be_visible()
    table = page.locator("#seat-table")
    expect(table.get_by_role("row").filter(has_text="Jürgen Groß")).to_contain_text(
        "ACTIVE", timeout=90_000
    )
    expect(table.get_by_role("row").filter(has_text="anna@example.org")).to_contain_text(
        "ACTIVE", timeout=90_000
    )
    expect(page.get_by_text("2 Teilnehmende")).to_be_visible()
    audit(page, "Workshop-Seite")
    workshop_url = page.url
    page.get_by_role("link", name="Handzettel drucken").click()
    expect(page.get_by_role("region", name="Jürgen Groß")).to_contain_text(
        "Ihre Maschine: kurs-de-juergen-gross"
    )
    audit(page, "Handzettel")
    page.goto(workshop_url)

    page.get_by_role("button", name="Abbauen: jede Maschine löschen").click()
    expect(
        page.get_by_text("Der Workshop wird abgebaut: Jede Maschine wird gelöscht.")
    ).to_be_visible()
    expect(page.get_by_text("2 gelöscht.")).to_be_visible(timeout=90_000)
    assert not Server.objects.filter(name__startswith="kurs-de-", deleted_at__isnull=True).exists()


def test_every_page_passes_the_accessibility_audit_in_german(live_demo, live_server, page):
    from instances.models import Server

    page.goto(f"{live_server.url}/login/")
    audit(page, "Anmeldung")
    anmelden(page, live_server, "alice")
    web = Server.objects.get(name="alpha-guacamole-01")
    alpha = live_demo["projects"]["alpha"]
    for path in (
        "/instances/", f"/instances/{web.pk}/", "/instances/new/", "/images/", "/snapshots/",
        f"/snapshots/project/{alpha.pk}/", f"/snapshots/create/{web.pk}/", "/jobs/",
        "/profile/keys/", "/workshops/", "/instances/?status=ERROR&filtered=1", "/no-such-page/",
    ):  # fmt: skip
        page.goto(f"{live_server.url}{path}")
        expect(page.locator("html")).to_have_attribute("lang", "de")
        audit(page, path)
    # The switch: English from now on, whatever the browser asks.
    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("link", name="Instances", exact=True)).to_be_visible()
