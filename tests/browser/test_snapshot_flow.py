"""As a person would: create a snapshot from a detail page, then filter, select all
and bulk delete in the snapshot table. Real Chromium, live server, devcloud, Redis,
a real worker."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def log_in(page, live_server, username):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(username)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Instances")).to_be_visible()


def test_create_a_snapshot_then_filter_select_all_and_bulk_delete(
    live_demo, live_server, page, artifacts_dir
):
    log_in(page, live_server, "alice")

    # Open an instance's detail page from the overview.
    page.get_by_role("link", name="alpha-web-01").click()
    expect(page.get_by_role("heading", name="alpha-web-01")).to_be_visible()

    # Create snapshot: the dialog asks for a name, confirm.
    page.get_by_role("link", name="Create snapshot").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("The portal stops alpha-web-01 before the snapshot")
    dialog.get_by_label("Snapshot name").fill("browser-gold")
    expect(dialog.get_by_text("“browser-gold” is available.")).to_be_visible()
    expect(
        dialog.get_by_label("Start the instance again when the snapshot is done")
    ).to_be_checked()
    dialog.get_by_role("button", name="Create snapshot").click()

    # Progress updates without reload until the snapshot is active and the VM runs again.
    snapshots = page.locator("li", has_text="browser-gold")
    expect(snapshots.get_by_text("active")).to_be_visible(timeout=60_000)
    expect(
        page.get_by_role("cell", name=re.compile("Create snapshot “browser-gold”")).first
    ).to_be_visible()
    expect(page.locator("#instance-live .badge").first).to_have_text("ACTIVE", timeout=30_000)
    page.screenshot(path=str(artifacts_dir / "snapshot-created.png"), full_page=True)

    # The table: filter by name, select all, bulk delete, read one combined result.
    page.get_by_role("link", name="Snapshots", exact=True).click()
    page.get_by_label("Name", exact=True).fill("browser-")
    expect(page.get_by_text("1 total")).to_be_visible()
    expect(page.get_by_role("cell", name="browser-gold", exact=True)).to_be_visible()
    page.get_by_label("Select all on this page").check()
    expect(page.get_by_label("Select browser-gold")).to_be_checked()
    page.get_by_role("button", name="Delete selected").click()
    expect(page.get_by_role("heading", name="Delete snapshots")).to_be_visible()
    expect(page.get_by_text("browser-gold")).to_be_visible()
    page.get_by_role("button", name="Delete 1 snapshot").click()
    expect(page.get_by_role("status").filter(has_text="Deleted 1.")).to_be_visible(timeout=60_000)
    page.screenshot(path=str(artifacts_dir / "snapshots-bulk-deleted.png"), full_page=True)


def test_the_high_memory_instance_is_refused_before_any_job(
    live_demo, live_server, page, artifacts_dir
):
    from instances.models import Server
    from portal.models import Job

    log_in(page, live_server, "alice")
    # The overview row and the detail page show the action disabled, with the reason.
    row = page.get_by_role("row").filter(has_text="alpha-bigmem-01")
    expect(row.get_by_role("button", name="Create snapshot")).to_be_disabled()
    page.get_by_role("link", name="alpha-bigmem-01").click()
    button = page.get_by_role("button", name="Create snapshot")
    expect(button).to_be_disabled()
    expect(button).to_have_accessible_description(re.compile("at most 256 GiB"))
    expect(page.get_by_text("512 GiB (524,288 MiB)").first).to_be_visible()
    # A direct URL to the dialog still refuses, before anything is submitted.
    bigmem = Server.objects.get(name="alpha-bigmem-01")
    page.goto(f"{live_server.url}/snapshots/create/{bigmem.pk}/")
    alert = page.get_by_role("alert").filter(has_text="256 GiB")
    expect(alert).to_contain_text("at most 256 GiB (262,144 MiB) RAM")
    expect(alert).to_contain_text("512 GiB (524,288 MiB)")
    expect(page.get_by_role("button", name="Create snapshot")).to_have_count(0)
    page.screenshot(path=str(artifacts_dir / "snapshot-refused-highmem.png"), full_page=True)
    assert not Job.objects.filter(kind="snapshot.create").exists()
