from __future__ import annotations

import os
import shutil

import pytest

# Playwright's sync API keeps an event loop running in the test thread; the
# database calls the tests make there are still plain synchronous ones.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (Playwright's own download does not work here)."""
    if not shutil.which("chromium"):
        pytest.fail("chromium is not installed: `apt-get install chromium` (.ci/run does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
            ],
        )  # fmt: skip
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    """A fresh page; the test fails if the browser reports any Content-Security-Policy
    violation (an inline script, handler or style the policy refused). A test marked
    `browser_locale("de-DE")` gets a browser that asks for that language."""
    marker = request.node.get_closest_marker("browser_locale")
    context = browser.new_context(
        viewport={"width": 1400, "height": 1000}, locale=marker.args[0] if marker else None
    )
    page = context.new_page()
    page.set_default_timeout(30_000)
    violations: list[str] = []
    page.csp_paused = False  # set by the accessibility audit while axe probes the page

    def on_console(message) -> None:
        if "Content Security Policy" in message.text and not page.csp_paused:
            violations.append(message.text)

    page.on("console", on_console)
    yield page
    context.close()
    assert violations == [], violations
