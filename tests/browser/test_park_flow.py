"""As a person would: park a machine from its page, find it parked on the overview
with what it frees, and resume it. Real Chromium, live server, devcloud, Redis, a
real worker."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal import cloud
from tests.browser.test_snapshot_flow import log_in
from tests.integration.test_park_job import boot

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_park_a_machine_see_it_parked_and_resume_it(live_demo, live_server, page, artifacts_dir):
    server = boot(live_demo, "browser-park")  # alpha's quota is small: one tiny machine
    try:
        log_in(page, live_server, "alice")
        page.goto(f"{live_server.url}/instances/{server.pk}/")
        expect(page.get_by_role("heading", name="browser-park")).to_be_visible()
        page.get_by_role("button", name="Park browser-park").click()
        badge = page.locator("#instance-live .badge").first
        expect(badge).to_have_text("parked", timeout=60_000)
        expect(page.locator("#instance-live")).to_contain_text("frees 1 vCPUs")
        page.screenshot(path=str(artifacts_dir / "park-parked.png"), full_page=True)

        # The overview: the "Parked" status filter, and what the machine frees.
        page.goto(f"{live_server.url}/instances/?filtered=1&status=parked")
        expect(page.get_by_label("Parked")).to_be_checked()
        row = page.get_by_role("row").filter(has_text="browser-park")
        expect(row).to_contain_text("parked")
        expect(row).to_contain_text("frees 1 vCPUs, 2 GiB RAM")

        # Resume: on its own flavor, same name and IP.
        row.get_by_role("link", name="Resume browser-park").click()
        expect(page.get_by_role("heading", name="Resume browser-park")).to_be_visible()
        page.get_by_role("button", name="Resume on de.NBI tiny").click()
        page.goto(f"{live_server.url}/instances/{server.pk}/")
        expect(page.locator("#instance-live .badge").first).to_have_text("ACTIVE", timeout=60_000)
        expect(page.get_by_text(server.addresses[0]).first).to_be_visible()
        page.screenshot(path=str(artifacts_dir / "park-resumed.png"), full_page=True)
    finally:
        cloud.server_delete("devcloud", server_id=server.openstack_id)
