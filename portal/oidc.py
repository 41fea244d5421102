"""Sign-in with the facility's OpenID Connect provider (LS Login at de.NBI), on top of
mozilla-django-oidc, and the local password login beside it.

mozilla-django-oidc does the protocol: the authorization code flow with PKCE, the
`state` kept in the session and checked at the callback, the `nonce` checked in the
ID token, the token's signature checked against the provider's keys. Here:

- the provider's endpoints, from its discovery document, read once per process at
  the first sign-in (never at import: with the provider down the portal still starts
  and its local login works);
- the user an identity signs in as: found by issuer and `sub` (portal.models
  .OidcIdentity), created at the first sign-in, never matched by email;
- the memberships its claim grants (portal.oidc_memberships), at every sign-in;
- the provider's sign-out URL (RP-initiated logout);
- PORTAL_LOCAL_LOGIN: who may still use a local password.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.shortcuts import resolve_url
from django.urls import reverse
from django.utils import timezone
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from portal.models import OidcIdentity
from portal.oidc_memberships import memberships_apply

log = logging.getLogger(__name__)

USERNAME_MAX = 150
DISCOVERY_PATH = "/.well-known/openid-configuration"


class ProviderUnavailable(Exception):
    """The provider's discovery document could not be read (down, or not configured)."""


@dataclass(frozen=True)
class ProviderEndpoints:
    issuer: str
    authorization: str
    token: str
    userinfo: str
    jwks: str
    end_session: str  # "" when the provider offers no RP-initiated logout


_discovered: dict[str, ProviderEndpoints] = {}
_discovery_lock = threading.Lock()


def provider_endpoints() -> ProviderEndpoints:
    """The endpoints: from the settings where set, the rest from the issuer's
    discovery document (fetched once per process and issuer). Raises
    ProviderUnavailable when a needed one is neither set nor discoverable."""
    explicit = ProviderEndpoints(
        issuer=settings.PORTAL_OIDC_ISSUER,
        authorization=settings.OIDC_OP_AUTHORIZATION_ENDPOINT,
        token=settings.OIDC_OP_TOKEN_ENDPOINT,
        userinfo=settings.OIDC_OP_USER_ENDPOINT,
        jwks=settings.OIDC_OP_JWKS_ENDPOINT,
        end_session=settings.PORTAL_OIDC_END_SESSION_ENDPOINT,
    )
    if explicit.authorization and explicit.token and explicit.userinfo and explicit.jwks:
        return explicit
    issuer = explicit.issuer
    if not issuer:
        raise ProviderUnavailable("PORTAL_OIDC_ISSUER is not set")
    with _discovery_lock:
        if issuer not in _discovered:
            _discovered[issuer] = _discover(issuer)
        found = _discovered[issuer]
    return ProviderEndpoints(
        issuer=issuer,
        authorization=explicit.authorization or found.authorization,
        token=explicit.token or found.token,
        userinfo=explicit.userinfo or found.userinfo,
        jwks=explicit.jwks or found.jwks,
        end_session=explicit.end_session or found.end_session,
    )


def _discover(issuer: str) -> ProviderEndpoints:
    try:
        response = requests.get(issuer + DISCOVERY_PATH, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise ProviderUnavailable(f"no discovery document at {issuer}: {exc}") from exc
    # OpenID Connect Discovery 1.0, section 4.3: the document names the issuer it was
    # fetched for, else it is someone else's.
    if str(document.get("issuer", "")).rstrip("/") != issuer:
        raise ProviderUnavailable(f"the discovery document at {issuer} names another issuer")
    try:
        return ProviderEndpoints(
            issuer=issuer,
            authorization=document["authorization_endpoint"],
            token=document["token_endpoint"],
            userinfo=document["userinfo_endpoint"],
            jwks=document["jwks_uri"],
            end_session=document.get("end_session_endpoint", ""),
        )
    except KeyError as exc:
        raise ProviderUnavailable(f"the discovery document at {issuer} lacks {exc}") from exc


def discovery_forget() -> None:
    """Read the discovery documents again at the next sign-in (tests, a changed provider)."""
    with _discovery_lock:
        _discovered.clear()


class ProviderBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, with the user found by issuer and `sub`.

    Its settings are read at each authentication, not when Django instantiates the
    backend (which it does for every login and every request's session user): the
    endpoints may need the provider, and a password login must not."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.UserModel = get_user_model()

    def authenticate(self, request, **kwargs):
        if not settings.PORTAL_OIDC_ENABLED or request is None:
            return None
        if "code" not in request.GET or "state" not in request.GET:
            return None  # a password login, or nothing for us
        endpoints = provider_endpoints()  # ProviderUnavailable: the callback view says so
        self.endpoints = endpoints
        self.OIDC_OP_TOKEN_ENDPOINT = endpoints.token
        self.OIDC_OP_USER_ENDPOINT = endpoints.userinfo
        self.OIDC_OP_JWKS_ENDPOINT = endpoints.jwks
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        return super().authenticate(request, **kwargs)

    def verify_token(self, token, **kwargs):
        """The library checks the signature and the nonce; the issuer and the audience
        are checked here (OpenID Connect Core 3.1.3.7, steps 2 and 3)."""
        payload = super().verify_token(token, **kwargs)
        if str(payload.get("iss", "")).rstrip("/") != self.endpoints.issuer.rstrip("/"):
            raise SuspiciousOperation("The ID token was issued by another provider.")
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("The ID token was issued for another client.")
        return payload

    def get_or_create_user(self, access_token, id_token, payload):
        claims = self.get_userinfo(access_token, id_token, payload)
        subject = payload.get("sub")
        # Core 5.3.2: the userinfo answer is about the token's subject, or it is ignored.
        if not subject or claims.get("sub") != subject:
            raise SuspiciousOperation("The userinfo answer is about another subject.")
        return user_sign_in(issuer=self.endpoints.issuer, subject=subject, claims=claims)


@transaction.atomic
def user_sign_in(*, issuer: str, subject: str, claims: dict[str, Any]):
    """The user this identity signs in as (created at its first sign-in), with name and
    email from the claims and memberships from the membership claim."""
    identity = (
        OidcIdentity.objects.select_for_update()
        .select_related("user")
        .filter(issuer=issuer, subject=subject)
        .first()
    )
    if identity is None:
        user = get_user_model().objects.create_user(username=username_for(claims))
        identity = OidcIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        log.info("OIDC: new user %s for subject %s at %s", user.username, subject, issuer)
    user = identity.user
    user.first_name = str(claims.get("given_name") or "")[:150]
    user.last_name = str(claims.get("family_name") or "")[:150]
    user.email = str(claims.get("email") or "")[:254]
    user.save(update_fields=["first_name", "last_name", "email"])
    identity.last_sign_in_at = timezone.now()
    identity.save(update_fields=["last_sign_in_at"])
    memberships_apply(user=user, claims=claims)
    return user


def username_for(claims: dict[str, Any]) -> str:
    """A free username from the claims: preferred_username, else the email's local
    part, else "user"; "-2", "-3"... when taken (a local account of that name stays
    someone else's)."""
    wanted = str(claims.get("preferred_username") or "") or str(claims.get("email") or "")
    wanted = wanted.split("@", 1)[0] if "@" in wanted else wanted
    base = re.sub(r"[^\w.+-]", "", wanted)[: USERNAME_MAX - 8] or "user"
    users = get_user_model().objects
    candidate, number = base, 1
    while users.filter(username__iexact=candidate).exists():
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def provider_logout_url(request: HttpRequest) -> str:
    """Where signing out sends the browser (OIDC_OP_LOGOUT_URL_METHOD): the provider's
    end_session_endpoint, with the ID token and where to come back to, when the user
    signed in there and the provider offers one; else the portal's own login page."""
    local = resolve_url(settings.LOGOUT_REDIRECT_URL)
    id_token = request.session.get("oidc_id_token")
    if not (settings.PORTAL_OIDC_ENABLED and id_token):
        return local
    try:
        end_session = provider_endpoints().end_session
    except ProviderUnavailable:
        return local
    if not end_session:
        return local
    query = urlencode(
        {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": request.build_absolute_uri(reverse("login")),
        }
    )
    return f"{end_session}{'&' if '?' in end_session else '?'}{query}"


def local_password_allowed(username: str) -> bool:
    """PORTAL_LOCAL_LOGIN: all, staff (is_staff or superuser only) or off."""
    mode = settings.PORTAL_LOCAL_LOGIN
    if mode == "all":
        return True
    if mode != "staff":
        return False
    staff = Q(is_staff=True) | Q(is_superuser=True)
    return get_user_model().objects.filter(staff, username=username, is_active=True).exists()


class LocalPasswordBackend(ModelBackend):
    """Django's password login, for those PORTAL_LOCAL_LOGIN allows (here as well as
    on the login form, so the admin's login page obeys it too). Not in
    user_can_authenticate: that would also end the sessions of users already in."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None or not local_password_allowed(user.get_username()):
            return None
        return user
