"""As a person would: copy a snapshot to the other site from the snapshot table,
watch the bytes go across on the job page, then find the copy on the snapshot's
page at the other site. Real Chromium, live server, both devcloud sites, Redis,
the session worker and a worker on the transfer queue."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal import cloud
from tests.browser.test_snapshot_flow import log_in
from tests.integration.test_image_copy import (  # noqa: F401  (fixtures)
    pair,
    source_image,
    transfer_worker,
)

pytestmark = [pytest.mark.browser, pytest.mark.worker]
MIB = 1024 * 1024


def test_copy_a_snapshot_to_the_other_site_and_see_it_there(
    live_demo,
    live_server,
    page,
    artifacts_dir,
    pair,  # noqa: F811
    transfer_worker,  # noqa: F811
):
    transfer_worker()
    original = source_image(live_demo, name="browser-travels", size=24 * MIB)
    # The target's store takes 4 MiB/s: the copy takes about 6 s, long enough to watch.
    pair["devcloud2"].set_faults(
        {"image_upload": {"image_name": "^browser-travels$", "bytes_per_second": 4 * MIB}}
    )
    copy_id = ""
    try:
        log_in(page, live_server, "alice")
        page.get_by_role("link", name="Snapshots", exact=True).click()
        page.get_by_label("Name", exact=True).fill("browser-travels")
        expect(page.get_by_text("1 total")).to_be_visible()
        page.get_by_role("link", name="Copy to another site: browser-travels").click()

        expect(
            page.get_by_role("heading", name="Copy browser-travels to another site")
        ).to_be_visible()
        where = page.locator("#image-copies")
        expect(where.get_by_role("row")).to_have_count(2)  # the header and the original
        expect(where).to_contain_text("original")
        target = page.get_by_label("Target site and project")
        expect(target.locator("option")).to_have_count(1)  # gamma, alice's one elsewhere
        expect(target).to_contain_text("gamma")
        page.get_by_role("button", name="Copy", exact=True).click()

        # The job page follows the bytes, then the checksums.
        expect(
            page.get_by_text(re.compile(r"Copying the data: .* MiB of 24\.0 MiB \(\d+%\)")).first
        ).to_be_visible(timeout=30_000)
        page.screenshot(path=str(artifacts_dir / "copy-progress.png"), full_page=True)
        expect(page.get_by_text(re.compile("Comparing checksums — done"))).to_be_visible(
            timeout=60_000
        )
        from portal.models import Job

        job = Job.objects.filter(kind="image.copy").latest("pk")
        copy_id = job.result["image_id"]

        # At the other site the copy is a snapshot of gamma, and its page says where
        # the image exists: the original at Bielefeld, the copy at Heidelberg.
        page.get_by_role("link", name="Snapshots", exact=True).click()
        page.get_by_label("Name", exact=True).fill("browser-travels")
        expect(page.get_by_text("2 total")).to_be_visible()
        row = page.get_by_role("row").filter(has_text="Heidelberg")
        row.get_by_role("link", name="copy", exact=True).click()
        where = page.locator("#image-copies")
        expect(where.get_by_role("row")).to_have_count(3)
        expect(where.get_by_role("row").filter(has_text="Bielefeld")).to_contain_text("original")
        expect(where.get_by_role("row").filter(has_text="Heidelberg")).to_contain_text("copy")
        page.screenshot(path=str(artifacts_dir / "copy-listed.png"), full_page=True)
    finally:
        pair["devcloud2"].set_faults({})
        if copy_id:
            cloud.image_delete("devcloud2", image_id=copy_id)
        cloud.image_delete("devcloud", image_id=original.openstack_id)
