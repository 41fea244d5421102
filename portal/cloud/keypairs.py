"""Nova key pairs of the portal's service account.

A Nova key pair belongs to the user who made it, and a boot's `key_name` must
name one of the booting user's own pairs. The portal boots as its service
account (re-scoped to the project, the same user), so the pairs it injects are
the service account's, under names the portal owns (see portal.ssh_keys).
Raw requests at 2.92 (import only: `public_key` required), like server_get.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openstack import exceptions as sdk_exceptions

from portal.cloud.connection import connection_for, translate_errors
from portal.cloud.types import CloudKeypair

KEYPAIR_MICROVERSION = "2.92"


def _keypair_from_body(body: Mapping[str, Any]) -> CloudKeypair:
    return CloudKeypair(
        name=body.get("name") or "",
        public_key=body.get("public_key") or "",
        fingerprint=body.get("fingerprint") or "",
        type=body.get("type") or "ssh",
    )


def keypair_get(site: str, *, name: str) -> CloudKeypair:
    """The service account's key pair `name`; NotFound when it has none of that name."""
    with translate_errors(site):
        response = connection_for(site).compute.get(
            f"/os-keypairs/{name}", microversion=KEYPAIR_MICROVERSION
        )
        sdk_exceptions.raise_from_response(response)
        return _keypair_from_body(response.json()["keypair"])


def keypair_import(site: str, *, name: str, public_key: str) -> CloudKeypair:
    """Import `public_key` as the service account's key pair `name`.

    Conflict (409) when a pair of that name exists already; BadRequest when Nova
    cannot read the key; Forbidden past the key pair quota (per user in Nova).
    """
    body = {"keypair": {"name": name, "public_key": public_key, "type": "ssh"}}
    with translate_errors(site):
        response = connection_for(site).compute.post(
            "/os-keypairs", json=body, microversion=KEYPAIR_MICROVERSION
        )
        sdk_exceptions.raise_from_response(response)
        return _keypair_from_body(response.json()["keypair"])


def keypair_delete(site: str, *, name: str) -> None:
    """Delete the service account's key pair `name`; NotFound when it is gone.
    Servers booted with it keep it: Nova injected the key at boot."""
    with translate_errors(site):
        response = connection_for(site).compute.delete(
            f"/os-keypairs/{name}", microversion=KEYPAIR_MICROVERSION
        )
        sdk_exceptions.raise_from_response(response)
