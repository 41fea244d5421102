"""devidp's users and clients, from a JSON file that tests and the demo write:

    {"clients": [{"client_id": "portal", "client_secret": "...", "name": "Cloud portal",
                  "redirect_uris": ["http://127.0.0.1:8000/oidc/callback/"],
                  "post_logout_redirect_uris": ["http://127.0.0.1:8000/login/"],
                  "require_consent": true}],
     "users": [{"username": "dora", "password": "dora", "email": "dora@example.org",
                "given_name": "Dora", "family_name": "Lee",
                "entitlements": ["urn:geant:denbi.de:group:alpha#login.aai.lifescience-ri.eu"]}]}

The file is read again whenever its modification time changes (at the next request):
users and clients are written into the database, and the claims are read from the
file itself, so a changed entitlement shows at the next sign-in.
"""

from __future__ import annotations

import json
import threading

from django.contrib.auth import get_user_model
from django.db import transaction

from devidp.settings import DEVIDP_CONFIG

_lock = threading.Lock()
_state: dict = {"mtime": None, "config": {"clients": [], "users": []}}


def config() -> dict:
    """The file's content, read again when it changed."""
    path = DEVIDP_CONFIG
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        return _state["config"]
    with _lock:
        if mtime != _state["mtime"]:
            _state["config"] = json.loads(path.read_text())
            config_apply(_state["config"])
            _state["mtime"] = mtime
    return _state["config"]


def user_entry(username: str) -> dict:
    for entry in config().get("users", []):
        if entry["username"] == username:
            return entry
    return {}


@transaction.atomic
def config_apply(content: dict) -> None:
    """Users and clients into the database (a user no longer listed is deactivated)."""
    from oidc_provider.models import Client, ResponseType

    User = get_user_model()
    listed = set()
    for entry in content.get("users", []):
        user, _ = User.objects.get_or_create(username=entry["username"])
        user.email = entry.get("email", "")
        user.first_name = entry.get("given_name", "")
        user.last_name = entry.get("family_name", "")
        user.is_active = True
        # Only a changed password is set again: a new hash would end the user's
        # session here (Django ties sessions to it), and tests rely on it lasting.
        if not user.check_password(entry["password"]):
            user.set_password(entry["password"])
        user.save()
        listed.add(user.pk)
    User.objects.exclude(pk__in=listed).update(is_active=False)

    code, _ = ResponseType.objects.get_or_create(
        value="code", defaults={"description": "code (Authorization Code Flow)"}
    )
    for entry in content.get("clients", []):
        client, _ = Client.objects.get_or_create(client_id=entry["client_id"])
        client.name = entry.get("name", entry["client_id"])
        client.client_type = "confidential"
        client.client_secret = entry["client_secret"]
        client.jwt_alg = "RS256"
        client.redirect_uris = entry.get("redirect_uris", [])
        client.post_logout_redirect_uris = entry.get("post_logout_redirect_uris", [])
        client.require_consent = entry.get("require_consent", True)
        client.reuse_consent = not client.require_consent
        client.save()
        client.response_types.set([code])


def config_sync_middleware(get_response):
    def middleware(request):
        config()
        return get_response(request)

    return middleware
