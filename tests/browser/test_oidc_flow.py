"""As a person would: "Sign in with …" on the login page, the provider's own login and
consent pages (devidp, a real OpenID Connect provider on loopback), back on the portal
with the projects the provider's claim grants, and signing out of both."""

from __future__ import annotations

import copy

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from portal.models import Project, Site
from tests.browser.test_user_flows import audit
from tests.oidc_flow import entitlement

pytestmark = pytest.mark.browser


@pytest.fixture
def provider_for_live_server(oidc, live_server, settings):
    """devidp knows the live server's callback, and the portal's pages allow the
    sign-out form to end at the provider (form-action, as settings.py derives it from
    PORTAL_OIDC_ISSUER)."""
    client = oidc.config["clients"][0]
    client["redirect_uris"].append(f"{live_server.url}/oidc/callback/")
    client["post_logout_redirect_uris"] = [f"{live_server.url}/login/"]
    oidc.write_config()
    policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
    policy["DIRECTIVES"]["form-action"] = ["'self'", oidc.url]
    settings.CONTENT_SECURITY_POLICY = policy
    return oidc


def test_sign_in_with_the_provider_see_the_projects_and_sign_out(
    transactional_db, provider_for_live_server, live_server, page, artifacts_dir
):
    idp = provider_for_live_server
    site = Site.objects.create(name="devcloud", display_name="Bielefeld")
    for name in ("alpha", "beta"):
        Project.objects.create(site=site, openstack_id=f"p-{name}", name=name)
    idp.user_set("dora", entitlements=[entitlement("alpha", "admin")])

    page.goto(f"{live_server.url}/login/")
    audit(page, "login page with the provider's button")
    page.get_by_role("link", name="Sign in with devidp").click()

    # The provider's pages.
    page.get_by_label("Username").fill("dora")
    page.get_by_label("Password").fill("dora-at-the-idp")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Share your details with")).to_be_visible()
    page.get_by_role("button", name="Authorize").click()

    # Back on the portal, signed in, with alpha (from the claim) and not beta.
    expect(page.get_by_role("heading", name="Instances")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    options = page.get_by_label("Project").locator("option").all_inner_texts()
    assert any("alpha" in option for option in options), options
    assert not any("beta" in option for option in options), options
    assert get_user_model().objects.get(username="dora").email == "dora@example.org"
    page.screenshot(path=str(artifacts_dir / "oidc-signed-in.png"), full_page=True)

    # Signing out ends the provider's session too, and comes back to the login page.
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert page.url == f"{live_server.url}/login/"
    page.get_by_role("link", name="Sign in with devidp").click()
    expect(page.get_by_label("Password")).to_be_visible()  # the provider asks again


def test_declining_consent_shows_a_clear_page(
    transactional_db, provider_for_live_server, live_server, page
):
    page.goto(f"{live_server.url}/login/")
    page.get_by_role("link", name="Sign in with devidp").click()
    page.get_by_label("Username").fill("dora")
    page.get_by_label("Password").fill("dora-at-the-idp")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Decline").click()

    expect(page.get_by_role("heading", name="Sign-in failed")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("You declined to share your details")
    audit(page, "sign-in failed page")
