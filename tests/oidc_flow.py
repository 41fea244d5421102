"""Signing in through devidp, the loopback OpenID Connect provider, as a browser would:
the portal's test client on the portal's side, a `requests` session (the provider's
cookies) on the provider's side, real HTTP between the portal and the provider."""

from __future__ import annotations

import copy
import html
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

CLIENT_ID = "portal-tests"
CLIENT_SECRET = "loopback-client-secret"
ENTITLEMENT = "urn:geant:denbi.de:group:{project}{role}#login.aai.lifescience-ri.eu"

CONFIG = {
    "clients": [
        {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "name": "Cloud portal (tests)",
            "redirect_uris": ["http://testserver/oidc/callback/"],
            "post_logout_redirect_uris": ["http://testserver/login/"],
            "require_consent": True,
        }
    ],
    "users": [
        {
            "username": "dora",
            "password": "dora-at-the-idp",
            "email": "dora@example.org",
            "given_name": "Dora",
            "family_name": "Lee",
            "entitlements": [],
        }
    ],
}


def entitlement(project: str, role: str = "") -> str:
    return ENTITLEMENT.format(project=project, role=f":{role}" if role else "")


def fresh_config() -> dict:
    return copy.deepcopy(CONFIG)


def hidden_inputs(page: str) -> dict[str, str]:
    fields = {}
    for tag in re.findall(r"<input[^>]*>", page):
        if 'type="hidden"' not in tag:
            continue
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[name.group(1)] = html.unescape(value.group(1) if value else "")
    return fields


@dataclass
class SignIn:
    response: object  # the portal's answer to the callback (or to the start)
    asked_password: bool
    callback_url: str = ""
    authorize_url: str = ""


class ProviderBrowser:
    """The browser's side at the provider: its cookies, its login and consent pages."""

    def __init__(self, idp, username: str = "dora", password: str | None = None):
        self.idp = idp
        self.session = requests.Session()
        self.username = username
        self.password = password

    def password_of(self, username: str) -> str:
        for entry in self.idp.config["users"]:
            if entry["username"] == username:
                return entry["password"]
        raise KeyError(username)

    def authorize(self, authorize_url: str, *, consent: bool = True) -> tuple[str, bool]:
        """Through the provider's login (if it asks) and consent pages; returns where
        the provider sends the browser back, and whether it asked for the password."""
        page = self.session.get(authorize_url, timeout=10)
        page.raise_for_status()
        asked = 'name="password"' in page.text
        if asked:
            fields = hidden_inputs(page.text)
            fields["csrfmiddlewaretoken"] = self.session.cookies["devidp_csrftoken"]
            fields["username"] = self.username
            fields["password"] = self.password or self.password_of(self.username)
            page = self.session.post(self.idp.url + "/login/", data=fields, timeout=10)
            page.raise_for_status()
            assert 'name="password"' not in page.text, "the provider refused the password"
        assert 'name="allow"' in page.text, page.text[:2000]
        fields = hidden_inputs(page.text)
        fields["csrfmiddlewaretoken"] = self.session.cookies["devidp_csrftoken"]
        if consent:
            fields["allow"] = "Authorize"
        answer = self.session.post(
            self.idp.issuer + "/authorize", data=fields, allow_redirects=False, timeout=10
        )
        assert answer.status_code == 302, answer.text[:2000]
        return answer.headers["Location"], asked


def portal_path(url: str) -> str:
    parts = urlsplit(url)
    assert parts.netloc == "testserver", url
    return parts.path + (f"?{parts.query}" if parts.query else "")


def sign_in(client, browser: ProviderBrowser, *, consent: bool = True, next: str = "") -> SignIn:
    """The whole round trip; the portal's answer to the callback is `.response`."""
    start = client.get("/oidc/authenticate/" + (f"?next={next}" if next else ""))
    assert start.status_code == 302, start
    callback, asked = browser.authorize(start["Location"], consent=consent)
    return SignIn(client.get(portal_path(callback)), asked, callback, start["Location"])
