"""Nova key pairs (os-keypairs), as the stock Nova 34 keeps them.

A key pair belongs to the user who made it, not to a project: every call acts
on the token's user (an admin may name another with `user_id` from 2.10), and
a boot's `key_name` must name one of the booting user's own pairs. Since 2.92
Nova only imports (`public_key` required); older microversions would generate a
pair, which devcloud does not offer (400, as if the field were required).
The fingerprint is Nova's: MD5 of the key's base64 blob, colon-separated hex
(nova/crypto.py generate_fingerprint), after cryptography parsed the key.
"""

import base64
import hashlib
import re

from cryptography.hazmat.primitives import serialization

from . import clock
from .nova import limit_param, mv, next_link
from .quotas import quota_of
from .web import ApiError, Response

# nova/api/validation/parameter_types.py: keypair_name_special_chars(_v292).
NAME_PATTERN = r"^[_\- a-zA-Z0-9]+$"
NAME_PATTERN_V292 = r"^[_\-\@\. a-zA-Z0-9]+$"


def _user_of(req):
    """The token's user, or (admins, from 2.10) the one named by `user_id`."""
    named = req.param("user_id") if mv(req, 10) else None
    if named and named != req.ctx.user_id:
        if not req.ctx.is_admin:
            raise ApiError(
                403, "Policy doesn't allow os_compute_api:os-keypairs:index to be performed."
            )
        return named
    return req.ctx.user_id


def _check_name(req, name):
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise ApiError(400, f"Invalid input for field/attribute name. Value: {name}.")
    if name != name.strip() or not name.isprintable():
        raise ApiError(
            400,
            "An invalid 'name' value was provided. The name must be: printable characters. "
            "Can not start or end with whitespace.",
        )
    pattern = NAME_PATTERN_V292 if mv(req, 92) else NAME_PATTERN
    if not re.match(pattern, name):
        shown = pattern.replace("\\", "\\\\")
        raise ApiError(
            400,
            f"Invalid input for field/attribute name. Value: {name}. "
            f"'{name}' does not match '{shown}'",
        )


def fingerprint_of(public_key):
    """Nova's MD5 fingerprint, or None when cryptography cannot load the key."""
    try:
        serialization.load_ssh_public_key(public_key.encode("utf-8"))
        blob = base64.b64decode(public_key.split(" ")[1])
    except Exception:
        return None
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _view(req, row, *, show=False, create=False):
    view = {
        "name": row["name"],
        "public_key": row["public_key"],
        "fingerprint": row["fingerprint"],
    }
    if show or create:
        view["user_id"] = row["user_id"]
    if show:
        view.update(
            {
                "created_at": row["created_at"],
                "deleted": False,
                "deleted_at": None,
                "id": row["id"],
                "updated_at": None,
            }
        )
    if mv(req, 2):
        view["type"] = row["type"]
    return view


def _row(store, user_id, name):
    return store.one("SELECT * FROM keypairs WHERE user_id = ? AND name = ?", (user_id, name))


def _not_found(name, user_id):
    return ApiError(404, f"Keypair {name} not found for user {user_id}")


def list_keypairs(req):
    user_id = _user_of(req)
    store = req.app.store
    sql, params = "SELECT * FROM keypairs WHERE user_id = ?", [user_id]
    limit = None
    if mv(req, 35):
        limit = limit_param(req)
        marker = req.param("marker")
        if marker is not None:
            if _row(store, user_id, marker) is None:
                raise ApiError(400, f"Marker {marker} could not be found.")
            sql += " AND name > ?"
            params.append(marker)
    sql += " ORDER BY name"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    rows = store.query(sql, params)
    body = {"keypairs": [{"keypair": _view(req, row)} for row in rows]}
    if limit and len(rows) == limit:
        body["keypairs_links"] = next_link(req, "os-keypairs", rows[-1]["name"])
    return Response(200, body)


def show_keypair(req, name):
    user_id = _user_of(req)
    row = _row(req.app.store, user_id, name)
    if row is None:
        raise _not_found(name, user_id)
    return Response(200, {"keypair": _view(req, row, show=True)})


def _create_body(req):
    body = req.json()
    keypair = body.get("keypair") if isinstance(body, dict) else None
    if not isinstance(keypair, dict):
        raise ApiError(
            400, f"Invalid input for field/attribute keypair. Value: {keypair}. "
            "'keypair' is a required property"
        )  # fmt: skip
    if "name" not in keypair:
        raise ApiError(
            400,
            f"Invalid input for field/attribute keypair. Value: {keypair}. "
            "'name' is a required property",
        )
    if "public_key" not in keypair:
        # 2.92 requires it; before, Nova would generate a pair: not offered here.
        raise ApiError(
            400,
            f"Invalid input for field/attribute keypair. Value: {keypair}. "
            "'public_key' is a required property",
        )
    allowed = {"name", "public_key"}
    if mv(req, 2):
        allowed.add("type")
    if mv(req, 10):
        allowed.add("user_id")
    extra = sorted(set(keypair) - allowed)
    if extra:
        raise ApiError(
            400,
            "Invalid input for field/attribute keypair. Value: "
            f"{keypair}. Additional properties are not allowed ('{extra[0]}' was unexpected)",
        )
    return keypair


def create_keypair(req):
    keypair = _create_body(req)
    name = keypair["name"]
    _check_name(req, name)
    public_key = keypair["public_key"]
    key_type = keypair.get("type", "ssh")
    if key_type not in ("ssh", "x509"):
        raise ApiError(400, f"Invalid input for field/attribute type. Value: {key_type}.")
    if key_type != "ssh":
        raise ApiError(400, "Keypair data is invalid: failed to generate fingerprint")
    user_id = req.ctx.user_id
    named = keypair.get("user_id")
    if named and named != user_id:
        if not req.ctx.is_admin:
            raise ApiError(
                403, "Policy doesn't allow os_compute_api:os-keypairs:create to be performed."
            )
        user_id = named
    if not isinstance(public_key, str):
        raise ApiError(400, f"Invalid input for field/attribute public_key. Value: {public_key}.")
    store = req.app.store
    with store.write() as conn:
        count = store.one("SELECT COUNT(*) AS n FROM keypairs WHERE user_id = ?", (user_id,))["n"]
        limit = quota_of(store, req.ctx.project_id)["key_pairs"]
        if 0 <= limit <= count:
            raise ApiError(403, "Quota exceeded, too many key pairs.")
        fingerprint = fingerprint_of(public_key)
        if fingerprint is None:
            raise ApiError(400, "Keypair data is invalid: failed to generate fingerprint")
        if _row(store, user_id, name) is not None:
            raise ApiError(409, f"Key pair '{name}' already exists.")
        conn.execute(
            "INSERT INTO keypairs (user_id, name, public_key, fingerprint, type, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (user_id, name, public_key, fingerprint, key_type, _now()),
        )
    row = _row(store, user_id, name)
    return Response(201 if mv(req, 2) else 200, {"keypair": _view(req, row, create=True)})


def _now():
    # Nova's created_at: "2026-12-05T16:43:46.000000" (no zone).
    return clock.db_to_api(clock.now_db()).rstrip("Z") + ".000000"


def delete_keypair(req, name):
    user_id = _user_of(req)
    store = req.app.store
    with store.write() as conn:
        deleted = conn.execute(
            "DELETE FROM keypairs WHERE user_id = ? AND name = ?", (user_id, name)
        ).rowcount
    if not deleted:
        raise _not_found(name, user_id)
    return Response(204 if mv(req, 2) else 202)


def boot_key_name(req, key_name):
    """The `key_name` of a boot, checked as Nova does: one of the caller's own
    pairs (an admin's too: Nova looks the name up under the token's user), else
    400 "Invalid key_name provided."."""
    if key_name is None:
        return None
    if not isinstance(key_name, str) or _row(req.app.store, req.ctx.user_id, key_name) is None:
        raise ApiError(400, "Invalid key_name provided.")
    return key_name
