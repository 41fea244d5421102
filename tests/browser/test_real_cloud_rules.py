"""In Chromium, what a real cloud demands that devcloud used to let pass: a project
that sees two networks is asked which one (and a double click launches once), and a
machine the operators locked says why on its page and offers no action."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.operator_actions import lock, second_network
from tests.browser.test_snapshot_flow import log_in
from tests.browser.test_user_flows import audit

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_two_networks_make_the_launch_page_ask_and_a_double_click_launches_once(
    live_demo, live_server, page
):
    from portal.models import Job

    with second_network(live_demo, project="beta", name="lab") as lab_id:
        log_in(page, live_server, "carol")
        page.get_by_role("link", name="New instance").click()
        page.get_by_label("Name", exact=True).fill("two-nets")
        page.get_by_label(re.compile(r"^de\.NBI tiny")).check()
        page.get_by_label("Ubuntu-22.04-LTS").check()
        network = page.get_by_label("Network")
        expect(network).to_be_visible()
        expect(page.get_by_label(re.compile(r"^de\.NBI gpu"))).to_have_count(0)  # alpha's only
        audit(page, "launch page with a network choice")
        page.get_by_role("button", name="Launch").click()  # no network: the browser asks
        expect(page).to_have_url(re.compile(r"/instances/new/"))
        assert not Job.objects.filter(kind="instances.launch").exists()
        network.select_option(label="lab")
        page.get_by_role("button", name="Launch").dblclick()
        expect(page).to_have_url(re.compile(r"/jobs/\d+/"))
        expect(page.get_by_role("status").filter(has_text="1 active")).to_be_visible(timeout=60_000)
        (job,) = Job.objects.filter(kind="instances.launch", params__names=["two-nets"])
        assert job.params["network_ids"] == [lab_id]


def test_a_locked_machine_says_why_and_offers_no_action(live_demo, live_server, page):
    with lock(live_demo, "alpha-guacamole-01", reason="forensics"):
        log_in(page, live_server, "alice")
        row = page.get_by_role("row").filter(has_text="alpha-guacamole-01")
        expect(row.get_by_text("locked", exact=True)).to_be_visible()
        expect(row.get_by_role("button", name=re.compile("^Stop"))).to_have_count(0)
        page.get_by_role("link", name="alpha-guacamole-01").click()
        expect(page.get_by_role("note")).to_have_text(
            re.compile(r"alpha-guacamole-01 is locked \(forensics\): the portal does not stop")
        )
        expect(page.get_by_role("link", name="Create snapshot")).to_have_count(0)
        audit(page, "a locked machine's page")
