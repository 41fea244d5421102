"""Sign-in through the facility's OpenID Connect provider: devidp on loopback, real
HTTP (discovery, authorize with its login and consent pages, token, userinfo, JWKS,
end_session), no mocks."""

from __future__ import annotations

import socket
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_hypothesis
from hypothesis import strategies as st

from portal.models import Membership, OidcIdentity, Project, Site
from tests.oidc_flow import ProviderBrowser, entitlement, sign_in

pytestmark = pytest.mark.slow


@pytest.fixture
def unused_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def heidelberg(people):
    """A second site with a project "alpha" too (the same project group there)."""
    site = Site.objects.create(name="devcloud2", display_name="Heidelberg")
    return Project.objects.create(site=site, openstack_id="p-alpha-hd", name="alpha")


def dora():
    return OidcIdentity.objects.get().user


def roles(user) -> set[tuple[str, str, str, str]]:
    return {
        (m.project.name, m.project.site.name, m.role, m.source)
        for m in Membership.objects.filter(user=user).select_related("project__site")
    }


def test_it_offers_the_provider_on_the_login_page_when_configured(client, oidc, settings):
    page = client.get("/login/").content.decode()
    assert "Sign in with devidp" in page
    assert 'href="/oidc/authenticate/"' in page

    settings.PORTAL_OIDC_ENABLED = False
    assert "Sign in with" not in client.get("/login/").content.decode()
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/", {"code": "a", "state": "b"}).status_code == 404


def test_a_member_signs_in_and_sees_their_projects(client, oidc, people, heidelberg):
    oidc.user_set(
        "dora", entitlements=[entitlement("alpha"), "urn:other:group:x", entitlement("nowhere")]
    )
    done = sign_in(client, ProviderBrowser(oidc))

    assert done.asked_password
    asked = parse_qs(urlsplit(done.authorize_url).query)
    assert asked["code_challenge_method"] == ["S256"]  # PKCE
    assert {"state", "nonce", "code_challenge"} <= set(asked)
    assert asked["scope"] == ["openid profile email eduperson_entitlement"]
    assert done.response.status_code == 302
    assert done.response["Location"] == "/instances/"
    user = dora()
    assert (user.username, user.email, user.get_full_name()) == (
        "dora",
        "dora@example.org",
        "Dora Lee",
    )
    assert not user.has_usable_password()
    # "alpha" at both sites; the value of another federation and the unknown project: ignored.
    assert roles(user) == {
        ("alpha", "devcloud", "member", "oidc"),
        ("alpha", "devcloud2", "member", "oidc"),
    }
    listing = client.get("/instances/").content.decode()
    assert ">alpha" in listing
    assert ">beta" not in listing


def test_a_claim_removed_at_the_provider_removes_the_membership_and_a_manual_one_survives(
    client, oidc, people
):
    browser = ProviderBrowser(oidc)
    oidc.user_set("dora", entitlements=[entitlement("alpha"), entitlement("beta")])
    sign_in(client, browser)
    user = dora()
    gamma = Project.objects.create(site=people["site"], openstack_id="p-gamma", name="gamma")
    Membership.objects.create(user=user, project=gamma, role="admin")  # in the admin
    client.post("/logout/")

    oidc.user_set("dora", entitlements=[entitlement("alpha")], email="dora@uni.example")
    done = sign_in(client, browser)

    assert done.response.status_code == 302
    assert roles(user) == {
        ("alpha", "devcloud", "member", "oidc"),
        ("gamma", "devcloud", "admin", "manual"),
    }
    user.refresh_from_db()
    assert user.email == "dora@uni.example"  # updated from the claims at each sign-in
    assert get_user_model().objects.filter(username__startswith="dora").count() == 1


def test_a_role_changed_at_the_provider_changes_the_membership(client, oidc, people):
    browser = ProviderBrowser(oidc)
    oidc.user_set("dora", entitlements=[entitlement("alpha")])
    sign_in(client, browser)
    assert roles(dora()) == {("alpha", "devcloud", "member", "oidc")}

    oidc.user_set("dora", entitlements=[entitlement("alpha", "admin")])
    sign_in(client, browser)

    assert roles(dora()) == {("alpha", "devcloud", "admin", "oidc")}


def test_a_manual_membership_in_a_claimed_project_keeps_its_role(client, oidc, people):
    local = get_user_model().objects.create_user("placeholder")
    oidc.user_set("dora", entitlements=[entitlement("alpha", "admin")])
    sign_in(client, ProviderBrowser(oidc))
    user = dora()
    Membership.objects.filter(user=user).update(source="manual", role="member")

    sign_in(client, ProviderBrowser(oidc))

    assert roles(user) == {("alpha", "devcloud", "member", "manual")}
    assert not Membership.objects.filter(user=local).exists()


def test_a_forged_state_is_refused_with_a_clear_page(client, oidc, people):
    start = client.get("/oidc/authenticate/")
    callback, _ = ProviderBrowser(oidc).authorize(start["Location"])
    parts = urlsplit(callback)
    code = parse_qs(parts.query)["code"][0]

    answer = client.get("/oidc/callback/", {"code": code, "state": "forged-by-an-attacker"})

    assert answer.status_code == 400
    assert "does not belong to a sign-in started in this browser" in answer.content.decode()
    assert "_auth_user_id" not in client.session
    assert not OidcIdentity.objects.exists()


def test_a_callback_without_any_sign_in_started_is_refused(client, oidc):
    answer = client.get("/oidc/callback/", {"code": "abc", "state": "xyz"})

    assert answer.status_code == 400
    assert "does not belong to a sign-in started in this browser" in answer.content.decode()


def test_a_used_code_is_refused(client, oidc, people):
    done = sign_in(client, ProviderBrowser(oidc))
    assert done.response.status_code == 302
    client.post("/logout/")

    # Again with the same answer: its state was used up.
    again = client.get(urlsplit(done.callback_url).path + "?" + urlsplit(done.callback_url).query)
    assert again.status_code == 400
    # With a state of a new sign-in: the provider refuses the used code.
    start = client.get("/oidc/authenticate/")
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    code = parse_qs(urlsplit(done.callback_url).query)["code"][0]
    answer = client.get("/oidc/callback/", {"code": code, "state": state})

    assert answer.status_code == 400
    assert "expired or was used already" in answer.content.decode()
    assert "_auth_user_id" not in client.session


def test_denied_consent_gets_a_clear_page(client, oidc, people):
    done = sign_in(client, ProviderBrowser(oidc), consent=False)

    assert done.response.status_code == 403
    assert "You declined to share your details" in done.response.content.decode()
    assert "_auth_user_id" not in client.session
    assert not OidcIdentity.objects.exists()


def test_the_provider_down_sends_back_to_the_login_page_with_a_message(
    client, oidc, people, settings, unused_port
):
    settings.PORTAL_OIDC_ISSUER = f"http://127.0.0.1:{unused_port}/oidc"

    answer = client.get("/oidc/authenticate/", follow=True)

    assert answer.redirect_chain[-1][0] == "/login/"
    assert "devidp did not answer" in answer.content.decode()
    # The local login still works.
    assert client.post("/login/", {"username": "bob", "password": "bob"}).status_code == 302


def test_a_local_account_with_the_same_email_stays_separate(client, oidc, people):
    local = get_user_model().objects.create_user("dora", "dora@example.org", "local-password")
    Membership.objects.create(user=local, project=people["beta"], role="admin")
    oidc.user_set("dora", entitlements=[entitlement("alpha")])

    sign_in(client, ProviderBrowser(oidc))

    user = dora()
    assert user.pk != local.pk
    assert user.username == "dora-2"
    assert client.session["_auth_user_id"] == str(user.pk)
    assert roles(local) == {("beta", "devcloud", "admin", "manual")}
    local.refresh_from_db()
    assert local.check_password("local-password")


def test_sign_out_ends_the_provider_session(client, oidc, people):
    browser = ProviderBrowser(oidc)
    assert sign_in(client, browser).asked_password
    # Signed in at the provider: the next sign-in does not ask for the password.
    assert not sign_in(client, browser).asked_password

    out = client.post("/logout/")

    assert out.status_code == 302
    end_session = urlsplit(out["Location"])
    assert out["Location"].startswith(oidc.issuer + "/end-session")
    query = parse_qs(end_session.query)
    assert query["post_logout_redirect_uri"] == ["http://testserver/login/"]
    assert "_auth_user_id" not in client.session
    back = browser.session.get(out["Location"], allow_redirects=False, timeout=10)
    assert back.status_code == 302
    assert back.headers["Location"] == "http://testserver/login/"
    # The provider's session is gone: a new sign-in asks for the password again.
    assert sign_in(client, browser).asked_password


def test_a_local_sign_out_stays_local(client, oidc, people):
    client.force_login(people["bob"])

    out = client.post("/logout/")

    assert out["Location"] == "/login/"


@pytest.mark.parametrize(("username", "allowed"), [("bob", False), ("admin", True)])
def test_staff_mode_refuses_a_non_staff_password_with_the_way_in(
    client, oidc, people, settings, username, allowed
):
    settings.PORTAL_LOCAL_LOGIN = "staff"

    answer = client.post("/login/", {"username": username, "password": username})

    if allowed:
        assert answer.status_code == 302
    else:
        assert answer.status_code == 200
        assert "Passwords here are only for staff accounts." in answer.content.decode()
        assert "Please use “Sign in with devidp”." in answer.content.decode()
        assert "_auth_user_id" not in client.session


def test_off_mode_holds_on_the_admin_login_too(client, people, settings):
    settings.PORTAL_LOCAL_LOGIN = "off"

    client.post("/admin/login/", {"username": "admin", "password": "admin"})

    assert "_auth_user_id" not in client.session


def test_off_mode_hides_the_password_form(client, oidc, settings):
    settings.PORTAL_LOCAL_LOGIN = "off"

    page = client.get("/login/").content.decode()

    assert 'name="password"' not in page
    assert "Sign in with devidp" in page


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [("(?P<project>[a-z]+", "does not compile"), ("^group:(?P<name>.*)$", "no named group")],
)
def test_a_broken_membership_pattern_stops_the_start(settings, pattern, problem):
    from portal.checks import oidc_membership_pattern_check

    settings.PORTAL_OIDC_MEMBERSHIP_PATTERN = pattern

    (error,) = oidc_membership_pattern_check(None)

    assert problem in error.msg


@settings_hypothesis(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.dictionaries(
        st.sampled_from(["code", "state", "error", "error_description", "next"]),
        st.text(max_size=60),
    )
)
def test_the_callback_answers_anything_with_a_4xx_or_a_redirect(client, oidc, query):
    answer = client.get("/oidc/callback/", query)

    assert answer.status_code in (302, 400, 403)


@pytest.mark.parametrize(
    ("wanted", "landing"), [("/jobs/", "/jobs/"), ("//evil.example/", "/instances/")]
)
def test_it_lands_on_the_page_asked_for_if_it_is_on_this_site(
    client, oidc, people, wanted, landing
):
    done = sign_in(client, ProviderBrowser(oidc), next=wanted)

    assert done.response["Location"] == landing
