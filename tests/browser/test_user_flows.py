"""What users do at speed, in Chromium, by visible labels and roles: stop and start
from the overview, bulk actions that do exactly what they show, a launch page that
keeps every click, failed VMs visible and deletable, a snapshot made with the
keyboard alone, and an accessibility audit (axe-core, WCAG 2.1 A/AA) of every page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.test_snapshot_flow import log_in

pytestmark = [pytest.mark.browser, pytest.mark.worker]

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()


def audit(page, what: str) -> None:
    """No WCAG 2.1 A/AA violation axe-core can find on the page as it is now."""
    page.csp_paused = True  # axe's own probes may trip the policy; the portal's may not
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE)  # evaluated by the test, not a page script: the CSP allows it
    violations = page.evaluate(
        """() => axe.run(document, {runOnly: {type: "tag",
             values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}})
           .then(r => r.violations.map(v => `${v.id}: ${v.nodes.length} × ${v.help}: `
                + v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(", ")))"""
    )
    page.wait_for_timeout(100)  # let the console deliver what axe caused
    page.csp_paused = False
    assert violations == [], f"{what}: {violations}"


def server_status(name: str) -> str:
    from instances.models import Server

    return Server.objects.get(name=name).status


def test_stop_then_start_from_the_overview_row(live_demo, live_server, page, artifacts_dir):
    log_in(page, live_server, "alice")
    audit(page, "instance overview")
    page.screenshot(path=str(artifacts_dir / "overview.png"), full_page=True)
    row = page.get_by_role("row").filter(has_text="alpha-analysis-02")
    row.get_by_role("button", name="Start alpha-analysis-02").click()
    expect(
        page.get_by_role("alert").filter(has_text="Start requested alpha-analysis-02")
    ).to_be_visible()
    expect(page.get_by_text("CSRF verification failed")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/instances/"))
    row = page.get_by_role("row").filter(has_text="alpha-analysis-02")
    expect(row.get_by_role("button", name="Stop alpha-analysis-02")).to_be_visible(timeout=30_000)
    row.get_by_role("button", name="Stop alpha-analysis-02").click()
    row = page.get_by_role("row").filter(has_text="alpha-analysis-02")
    expect(row.get_by_role("button", name="Start alpha-analysis-02")).to_be_visible(timeout=30_000)
    assert server_status("alpha-analysis-02") == "SHUTOFF"


def test_select_all_on_one_projects_page_deletes_only_that_project(live_demo, live_server, page):
    from portal.models import Membership
    from snapshots.models import Snapshot

    alice = live_demo["users"]["alice"]
    alpha, beta = live_demo["projects"]["alpha"], live_demo["projects"]["beta"]
    Membership.objects.create(user=alice, project=beta, role="admin")  # admin of both
    beta_before = Snapshot.objects.filter(project=beta, deleted_at__isnull=True).count()
    alpha_ones = Snapshot.objects.filter(
        project=alpha, deleted_at__isnull=True, name__icontains="a"
    )
    expected = alpha_ones.count()
    assert beta_before
    assert expected > 10

    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/snapshots/project/{alpha.pk}/")
    # Typed right after choosing a page size: the filter keeps the size the user chose.
    page.get_by_label("Per page").select_option("10")
    page.get_by_label("Name", exact=True).fill("a")
    expect(page).to_have_url(re.compile(r"[?&]name=a(&|$)"))
    expect(page.get_by_text(f"{expected} total")).to_be_visible()
    expect(page.locator("#snapshot-table tbody tr")).to_have_count(10)
    page.get_by_label(f"Select all {expected} matching").check()
    page.get_by_role("button", name="Delete selected").click()
    expect(page.get_by_role("heading", name="Delete snapshots")).to_be_visible()
    expect(page.get_by_text(f"{expected} snapshots will be deleted")).to_be_visible()
    audit(page, "snapshot delete confirmation")
    page.get_by_role("button", name=f"Delete {expected} snapshots").click()
    expect(page).to_have_url(re.compile(rf"/snapshots/project/{alpha.pk}/\?job="))
    expect(page.get_by_role("status").filter(has_text=f"Deleted {expected}.")).to_be_visible(
        timeout=60_000
    )
    assert Snapshot.objects.filter(project=beta, deleted_at__isnull=True).count() == beta_before
    assert not alpha_ones.filter(deleted_at__isnull=True).exists()


def test_a_search_typed_right_after_a_page_size_keeps_that_size(live_demo, live_server, page):
    log_in(page, live_server, "alice")
    page.get_by_label("Per page").select_option("10")
    page.get_by_label("Search").fill("a")
    expect(page).to_have_url(re.compile(r"[?&]q=a(&|$)"))
    assert "per_page=10" in page.url
    expect(page.get_by_label("Per page")).to_have_value("10")


def test_a_selection_survives_the_live_refresh_of_a_running_job(
    live_demo, live_server, page, artifacts_dir
):
    from portal.models import Job
    from snapshots.services import snapshot_create_request
    from tests.integration.test_gateway import wait_until
    from tests.integration.test_snapshot_job import boot

    # A machine with a 500 GB disk: its snapshot uploads for minutes (and shows
    # progress), so the table keeps refreshing while the user selects.
    server = boot(live_demo, "mid-job-vm")
    live_demo["clouds"]["devcloud"].set_server(server.openstack_id, disk_used_bytes=500 * 10**9)
    job = snapshot_create_request(server=server, actor=live_demo["users"]["alice"], name="mid-job")
    wait_until(lambda: Job.objects.get(pk=job.pk).target_image_id, timeout=30)
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/snapshots/")
    expect(page.get_by_role("cell", name="mid-job", exact=True)).to_be_visible(timeout=30_000)
    page.screenshot(path=str(artifacts_dir / "snapshot-table-mid-job.png"), full_page=True)
    audit(page, "snapshot table during a job")
    box = page.get_by_label("Select gamma-ws-01-baseline")
    box.first.check()
    page.wait_for_timeout(7_000)  # two refresh periods of the running job
    expect(box.first).to_be_checked()
    expect(page.get_by_text("1 selected")).to_be_visible()


def test_the_launch_page_keeps_every_click_and_a_double_click_launches_once(
    live_demo, live_server, page, artifacts_dir
):
    from portal.models import Job

    log_in(page, live_server, "alice")
    page.get_by_role("link", name="New instance").click()
    page.get_by_label("Participants (one per line, workshop mode)").fill("Anna\nBen\nCem")
    page.get_by_label(re.compile(r"^de\.NBI small")).check()  # at once, inside the preview delay
    page.get_by_label("Ubuntu-22.04-LTS").check()
    expect(page.get_by_text("3 instances, final names")).to_be_visible()
    expect(page.get_by_text("ubuntu-22-04-lts-anna")).to_be_visible()  # named after the image
    expect(page.get_by_label(re.compile(r"^de\.NBI small"))).to_be_checked()
    page.screenshot(path=str(artifacts_dir / "launch-page.png"), full_page=True)
    audit(page, "launch page")
    page.get_by_role("button", name="Launch").dblclick()
    expect(page.get_by_role("heading", name=re.compile("Launch 3 instance"))).to_be_visible()
    launches = Job.objects.filter(kind="instances.launch")
    assert launches.count() == 1
    launch = launches.get()
    assert launch.params["names"] == [f"ubuntu-22-04-lts-{n}" for n in ("anna", "ben", "cem")]
    from instances.models import Flavor

    assert Flavor.objects.get(openstack_id=launch.params["flavor_id"]).name == "de.NBI small"
    expect(page.get_by_role("status").filter(has_text="3 active")).to_be_visible(timeout=60_000)
    page.screenshot(path=str(artifacts_dir / "job-page.png"), full_page=True)
    audit(page, "job page")


def test_a_failed_workshop_vm_is_visible_by_default_and_can_be_deleted(
    live_demo, live_server, page
):
    from images.models import Image
    from instances.launch import instance_launch_request
    from instances.launch_rules import launch_check
    from instances.models import Flavor
    from tests.conftest import wait_for_job

    devcloud = live_demo["clouds"]["devcloud"]
    devcloud.set_faults({"boot_error": {"server_name": "^fail-ws-b$"}})
    alpha = live_demo["projects"]["alpha"]
    site = alpha.site
    try:
        plan = launch_check(
            actor=live_demo["users"]["alice"], project=alpha,
            flavor=Flavor.objects.get(site=site, name="de.NBI tiny"),
            image=Image.objects.get(site=site, name="Ubuntu-22.04-LTS"),
            prefix="fail-ws", count=2, participants=["a", "b"],
        )  # fmt: skip
        job = wait_for_job(instance_launch_request(actor=live_demo["users"]["alice"], plan=plan))
    finally:
        devcloud.set_faults({})
    log_in(page, live_server, "alice")
    row = page.get_by_role("row").filter(has_text="fail-ws-b")
    expect(row).to_contain_text("ERROR")
    page.goto(f"{live_server.url}/jobs/{job.pk}/")
    expect(page.get_by_role("status").filter(has_text="1 active, 1 failed")).to_be_visible()
    page.get_by_role("link", name="Retry 1 failed seat…").click()
    expect(page.get_by_text("1 ERROR machine will be deleted and launched again")).to_be_visible()
    expect(page.get_by_role("button", name="Retry 1 seat")).to_be_visible()
    audit(page, "retry confirmation")
    page.goto(f"{live_server.url}/instances/")
    page.get_by_role("link", name="fail-ws-b").click()
    page.get_by_role("link", name="Delete").click()
    expect(page.get_by_text("1 instance will be deleted")).to_be_visible()
    audit(page, "instance delete confirmation")
    page.get_by_role("button", name="Delete 1 instance").click()
    expect(page.get_by_role("status").filter(has_text="Deleted 1.")).to_be_visible(timeout=60_000)
    page.goto(f"{live_server.url}/instances/")
    expect(page.get_by_role("row").filter(has_text="fail-ws-b")).to_have_count(0)


def test_a_snapshot_made_with_the_keyboard_alone(live_demo, live_server, page):
    log_in(page, live_server, "alice")
    page.get_by_role("link", name="alpha-worker-01").click()
    opener = page.get_by_role("link", name="Create snapshot")
    opener.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Create snapshot of alpha-worker-01")
    expect(dialog).to_be_visible()
    name = dialog.get_by_label("Snapshot name")
    expect(name).to_be_focused()  # focus moved into the dialog
    expect(name).to_have_value(re.compile(r"^alpha-worker-01-\d{4}-\d{2}-\d{2}$"))
    audit(page, "snapshot dialog")
    # Tab stays inside the dialog.
    for _ in range(6):
        page.keyboard.press("Tab")
        assert page.evaluate("() => !!document.activeElement.closest('.modal')")
    # Escape closes it, and focus goes back to the link that opened it.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()
    page.keyboard.press("Enter")
    expect(name).to_be_focused()
    page.keyboard.press("Control+a")
    page.keyboard.type("keyboard-made")
    page.keyboard.press("Enter")
    expect(page.locator("li", has_text="keyboard-made")).to_be_visible(timeout=30_000)
    from portal.models import Job

    assert Job.objects.get(kind="snapshot.create").params["name"] == "keyboard-made"
    expect(page.get_by_role("cell", name=re.compile("keyboard-made")).first).to_be_visible()


def test_every_page_passes_the_accessibility_audit(live_demo, live_server, page):
    from instances.models import Server

    page.goto(f"{live_server.url}/login/")
    audit(page, "login")
    log_in(page, live_server, "alice")
    web = Server.objects.get(name="alpha-guacamole-01")
    alpha = live_demo["projects"]["alpha"]
    for path in (
        "/instances/", f"/instances/{web.pk}/", "/instances/new/", "/images/", "/snapshots/",
        f"/snapshots/project/{alpha.pk}/", f"/snapshots/create/{web.pk}/", "/jobs/",
        "/instances/?status=ERROR&filtered=1", "/no-such-page/",
    ):  # fmt: skip
        page.goto(f"{live_server.url}{path}")
        audit(page, path)


def test_a_ten_participant_workshop_from_launch_to_csv_to_teardown(
    live_demo, live_server, page, artifacts_dir
):
    from images.models import Image
    from instances.models import Server
    from workshops.models import Workshop

    site = live_demo["sites"]["devcloud"]
    # The image says how participants reach their service (an RStudio-style URL).
    ubuntu = Image.objects.get(site=site, name="Ubuntu-22.04-LTS")
    Image.objects.filter(pk=ubuntu.pk).update(
        properties={**ubuntu.properties, "portal_access_url": "https://{ip}:8787/"}
    )
    people = [f"Teilnehmerin {n} <t{n}@example.org>" for n in range(1, 10)] + ["Jürgen Groß"]
    log_in(page, live_server, "alice")
    page.get_by_role("link", name="New instance").click()
    page.get_by_label("Name", exact=True).fill("kurs")
    page.get_by_label("Participants (one per line, workshop mode)").fill("\n".join(people))
    page.get_by_label(re.compile(r"^de\.NBI tiny")).check()
    page.get_by_label("Ubuntu-22.04-LTS").check()
    expect(page.get_by_text("kurs-juergen-gross")).to_be_visible()
    page.get_by_role("button", name="Launch").click()
    expect(page.get_by_role("status").filter(has_text="10 active")).to_be_visible(timeout=90_000)
    page.get_by_role("link", name="Open the workshop page of kurs").click()

    expect(page.get_by_role("heading", name="Workshop kurs")).to_be_visible()
    table = page.locator("#seat-table")
    expect(table.get_by_role("row")).to_have_count(11)
    expect(table.get_by_role("row").filter(has_text="Jürgen Groß")).to_contain_text(
        "kurs-juergen-gross"
    )
    # The image only proposes the access link; it is used once alice confirms it.
    expect(page.get_by_text("proposed by the image, not confirmed")).to_be_visible()
    expect(table.get_by_role("row").filter(has_text="t1@example.org")).not_to_contain_text(":8787/")
    page.get_by_role("button", name="Confirm access link").click()
    expect(page.get_by_text("confirmed by alice")).to_be_visible()
    expect(table.get_by_role("row").filter(has_text="t1@example.org")).to_contain_text(":8787/")
    page.screenshot(path=str(artifacts_dir / "workshop.png"), full_page=True)
    audit(page, "workshop page")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download participant list (CSV)").click()
    text = Path(download.value.path()).read_text()
    lines = text.strip().splitlines()
    assert lines[0] == "participant,email,machine,status,ip,access"
    assert len(lines) == 11
    assert "Teilnehmerin 3,t3@example.org,kurs-teilnehmerin-3,ACTIVE," in text

    page.get_by_role("link", name="Print handout").click()
    expect(page.get_by_role("region", name="Jürgen Groß")).to_contain_text("kurs-juergen-gross")
    audit(page, "handout")
    page.go_back()

    page.get_by_role("button", name="Tear down: delete every machine").click()
    expect(page.get_by_text("Deleted 10.")).to_be_visible(timeout=90_000)
    workshop = Workshop.objects.get(name="kurs")
    assert workshop.teardown_job.status == "succeeded"
    assert not Server.objects.filter(name__startswith="kurs-", deleted_at__isnull=True).exists()
