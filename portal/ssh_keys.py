"""Users' SSH public keys: validation, the writes and reads of the profile page, and
the Nova key pair a launch injects (imported again when the cloud lost it).

Validation uses `cryptography` (already a dependency of openstacksdk, maintained,
and what Nova itself loads keys with): it parses the OpenSSH one-line format and
checks the blob against its type. `sshpubkeys` would do the same but is
unmaintained since 2021.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils.formats import number_format
from django.utils.translation import gettext

from portal import cloud
from portal.errors import ActionRefused
from portal.models import SshKey

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# A 16384-bit RSA key is ~2,800 characters with a long comment; anything much
# longer is not one key.
MAX_KEY_CHARS = 8192
MAX_NAME_CHARS = 100
MIN_RSA_BITS = 2048
ACCEPTED_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)
ACCEPTED_WORDS = "ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa (2048 bits or more)"
# What the first line of a private key file says, in every format people paste.
PRIVATE_MARKERS = ("PRIVATE KEY", "PuTTY-User-Key-File", "ENCRYPTED KEY")


class KeyRefused(ActionRefused):
    """A key the portal does not keep; `private`: it was a private key (never echo it)."""

    def __init__(self, message: str, *, private: bool = False):
        super().__init__(message, status=400)
        self.private = private


@dataclass(frozen=True)
class ParsedKey:
    public_key: str  # "<type> <base64> [comment]", one line
    key_type: str
    bits: int
    fingerprint: str  # "SHA256:<base64 without padding>"
    comment: str


def fingerprint_sha256(blob: bytes) -> str:
    """As `ssh-keygen -lf` prints it."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def key_parse(text: str) -> ParsedKey:
    """The public key in `text`, checked; KeyRefused with the reason otherwise."""
    if len(text) > MAX_KEY_CHARS:
        raise KeyRefused(
            gettext(
                "That is %(length)s characters; one public key is at most %(max)s. "
                "Paste the one line of your .pub file."
            )
            % {
                "length": number_format(len(text), force_grouping=True),
                "max": number_format(MAX_KEY_CHARS, force_grouping=True),
            }
        )
    if any(marker in text for marker in PRIVATE_MARKERS):
        raise KeyRefused(
            gettext(
                "That is a private key: it was not stored. Keep it secret (make a new key if "
                "you pasted it anywhere else) and paste the public key: the one line of the "
                ".pub file, e.g. ~/.ssh/id_ed25519.pub."
            ),
            private=True,
        )
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        raise KeyRefused(gettext("Paste a public key."))
    if len(lines) > 1:
        raise KeyRefused(
            gettext(
                "Paste one public key, on one line, as OpenSSH writes it (`ssh-keygen -i -f "
                "key.pub` converts the “---- BEGIN SSH2 PUBLIC KEY ----” format)."
            )
        )
    parts = lines[0].split(None, 2)
    key_type = parts[0]
    if key_type == "ssh-dss":
        raise KeyRefused(
            gettext(
                "DSA keys (ssh-dss) are refused: they are weak, and OpenSSH no longer accepts "
                "them. Make a new key: ssh-keygen -t ed25519."
            )
        )
    if key_type not in ACCEPTED_TYPES:
        raise KeyRefused(
            gettext("This does not start like a public key the portal accepts (%(accepted)s).")
            % {"accepted": ACCEPTED_WORDS}
        )
    if len(parts) < 2:
        raise KeyRefused(gettext("The key's data is missing after its type."))
    try:
        blob = base64.b64decode(parts[1], validate=True)
        key = load_ssh_public_key(f"{key_type} {parts[1]}".encode())
    except (binascii.Error, ValueError, TypeError) as exc:
        raise KeyRefused(
            gettext(
                "This is not a valid public key: its data is damaged or does not match its "
                "type. Copy the whole line of the .pub file again."
            )
        ) from exc
    if isinstance(key, rsa.RSAPublicKey):
        bits = key.key_size
        if bits < MIN_RSA_BITS:
            raise KeyRefused(
                gettext(
                    "This RSA key has %(bits)s bits; the portal accepts RSA keys of %(min)s "
                    "bits or more. Make a new key: ssh-keygen -t ed25519."
                )
                % {"bits": bits, "min": MIN_RSA_BITS}
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        bits = key.curve.key_size
    elif isinstance(key, ed25519.Ed25519PublicKey):
        bits = 256
    else:  # pragma: no cover - the type list above admits nothing else
        raise KeyRefused(
            gettext("Keys of type %(type)s are not accepted (%(accepted)s).")
            % {"type": key_type, "accepted": ACCEPTED_WORDS}
        )
    comment = parts[2].strip() if len(parts) > 2 else ""
    return ParsedKey(
        public_key=f"{key_type} {parts[1]}" + (f" {comment}" if comment else ""),
        key_type=key_type,
        bits=bits,
        fingerprint=fingerprint_sha256(blob),
        comment=comment,
    )


# --- reads ----------------------------------------------------------------------------


def ssh_keys_of(user: User) -> QuerySet[SshKey]:
    """The user's keys, the default first."""
    return SshKey.objects.filter(user=user)


def ssh_key_default(user: User) -> SshKey | None:
    return SshKey.objects.filter(user=user, is_default=True).first()


def ssh_key_get_for_user(user: User, key_id: int) -> SshKey:
    """One of the user's own keys; ActionRefused (404) for anyone else's or a deleted one."""
    key = SshKey.objects.filter(user=user, pk=key_id).first()
    if key is None:
        raise ActionRefused(gettext("That SSH key no longer exists in your profile."), status=404)
    return key


KEYPAIR_NAME = re.compile(r"^portal-u(\d+)-[0-9a-f]{16}$")


def ssh_key_of_keypair(keypair_name: str) -> SshKey | None:
    """The profile key a portal key pair name stands for (None: not one of the
    portal's names, or the key was deleted from the profile since)."""
    match = KEYPAIR_NAME.match(keypair_name)
    if match is None:
        return None
    keys = SshKey.objects.filter(user_id=int(match.group(1))).select_related("user")
    return next((key for key in keys if key.keypair_name == keypair_name), None)


# --- writes ---------------------------------------------------------------------------


def ssh_key_add(*, user: User, text: str, name: str = "") -> SshKey:
    """Keep a new public key for `user`; the first becomes the default."""
    parsed = key_parse(text)
    name = (name.strip() or parsed.comment or parsed.key_type)[:MAX_NAME_CHARS]
    same = SshKey.objects.filter(user=user, fingerprint=parsed.fingerprint).first()
    if same is not None:
        raise KeyRefused(
            gettext("You added this key already, as “%(name)s”.") % {"name": same.name}
        )
    if SshKey.objects.filter(user=user, name=name).exists():
        raise KeyRefused(
            gettext("You have a key named “%(name)s” already; choose another name.")
            % {"name": name}
        )
    try:
        with transaction.atomic():
            first = not SshKey.objects.filter(user=user).exists()
            return SshKey.objects.create(
                user=user, name=name, public_key=parsed.public_key, key_type=parsed.key_type,
                bits=parsed.bits, fingerprint=parsed.fingerprint, is_default=first,
            )  # fmt: skip
    except IntegrityError as exc:  # a second request with the same key, at the same time
        raise KeyRefused(gettext("You added this key (or a key of this name) already.")) from exc


def ssh_key_default_set(*, user: User, key_id: int) -> SshKey:
    key = ssh_key_get_for_user(user, key_id)
    with transaction.atomic():
        SshKey.objects.filter(user=user, is_default=True).exclude(pk=key.pk).update(
            is_default=False
        )
        SshKey.objects.filter(pk=key.pk).update(is_default=True)
    key.is_default = True
    return key


def ssh_key_delete(*, user: User, key_id: int) -> None:
    """Forget the key; the portal's key pair in the clouds stays (machines booted with
    it keep the key either way). A deleted default passes to the oldest key left."""
    key = ssh_key_get_for_user(user, key_id)
    with transaction.atomic():
        key.delete()
        if key.is_default:
            oldest = SshKey.objects.filter(user=user).order_by("created_at", "pk").first()
            if oldest is not None:
                SshKey.objects.filter(pk=oldest.pk).update(is_default=True)


# --- the cloud side -------------------------------------------------------------------


def _blob(public_key: str) -> str:
    parts = public_key.split()
    return parts[1] if len(parts) > 1 else ""


def keypair_ensure(*, site: str, key: SshKey) -> str:
    """Make sure the portal's key pair for `key` exists on `site` with this public key,
    importing it (again) if the cloud has none or another key under that name; returns
    its name, for `server_create(key_name=...)`. Safe to run twice, and at once from two
    jobs: a 409 on import means another got there first, and is checked like a find."""
    name = key.keypair_name
    try:
        found: cloud.CloudKeypair | None = cloud.keypair_get(site, name=name)
    except cloud.NotFound:
        found = None
    if found is not None and _blob(found.public_key) == _blob(key.public_key):
        return name
    if found is not None:  # someone replaced it in the cloud: put the user's key back
        with contextlib.suppress(cloud.NotFound):
            cloud.keypair_delete(site, name=name)
    try:
        cloud.keypair_import(site, name=name, public_key=key.public_key)
    except cloud.Conflict:
        found = cloud.keypair_get(site, name=name)
        if _blob(found.public_key) != _blob(key.public_key):
            raise
    return name
