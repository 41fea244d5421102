"""As a person would: add an SSH key on the profile page (and see its fingerprint),
launch a machine with it, and see the key on the machine's page. Real Chromium, live
server, devcloud, Redis, a real worker."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_snapshot_flow import log_in
from tests.browser.test_user_flows import audit
from tests.conftest import sdk_connection
from tests.ssh_keys import DSA, keygen_fingerprint, new_ed25519

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_add_a_key_launch_with_it_and_see_it_on_the_instance_page(
    live_demo, live_server, page, artifacts_dir
):
    from portal.models import SshKey

    public_key = new_ed25519("bob@laptop")
    log_in(page, live_server, "bob")
    page.get_by_role("link", name="bob").click()
    expect(page.get_by_role("heading", name="Your SSH keys")).to_be_visible()

    # A DSA key is refused with the reason, and nothing is kept.
    page.get_by_label("Public key").fill(DSA)
    page.get_by_role("button", name="Add key").click()
    expect(page.get_by_role("alert")).to_contain_text("DSA keys (ssh-dss) are refused")
    assert not SshKey.objects.exists()

    page.get_by_label("Public key").fill(public_key)
    page.get_by_label("Name").fill("laptop")
    page.get_by_role("button", name="Add key").click()
    fingerprint = keygen_fingerprint(public_key)
    row = page.locator("#ssh-keys").get_by_role("row").filter(has_text="laptop")
    expect(row).to_contain_text(fingerprint)
    expect(row).to_contain_text("default")
    page.screenshot(path=str(artifacts_dir / "profile-keys.png"), full_page=True)
    audit(page, "profile keys page")

    # Launch one small machine: the key is preselected.
    page.get_by_role("link", name="Instances", exact=True).click()
    page.get_by_role("link", name="New instance").click()
    expect(page.get_by_label("SSH key")).to_have_value(str(SshKey.objects.get().pk))
    page.get_by_label("Name", exact=True).fill("bob-keyed")
    page.get_by_label(re.compile(r"^de\.NBI tiny")).check()
    page.get_by_label("Ubuntu-22.04-LTS").check()
    expect(page.get_by_text("bob-keyed", exact=True)).to_be_visible()
    page.get_by_role("button", name="Launch").click()
    expect(page.get_by_role("status").filter(has_text="1 active")).to_be_visible(timeout=60_000)

    page.get_by_role("link", name="Instances", exact=True).click()
    page.get_by_role("link", name="bob-keyed").click()
    key_line = page.locator("#ssh-key")
    expect(key_line).to_contain_text("“laptop” of bob")
    expect(key_line).to_contain_text(fingerprint)
    page.screenshot(path=str(artifacts_dir / "instance-with-key.png"), full_page=True)

    # Clean up what the test made (the browser session's cloud has a small quota).
    sdk = sdk_connection(live_demo["clouds"], "devcloud")
    for server in sdk.compute.servers(all_projects=True, name="^bob-keyed$"):
        assert server.key_name == SshKey.objects.get().keypair_name
        sdk.compute.delete_server(server.id)
    sdk.compute.delete_keypair(SshKey.objects.get().keypair_name, ignore_missing=True)
