"""What the printed handout tells a participant about getting in: the image's login
user name, and a QR code of their access link."""

from __future__ import annotations

import re

import segno
from django.utils.safestring import SafeString, mark_safe

# The user cloud images of these distributions create for the injected key
# (cloud-init's default_user in each distribution's cloud image).
DISTRO_LOGIN_USERS = {
    "ubuntu": "ubuntu",
    "debian": "debian",
    "centos": "centos",
    "rocky": "rocky",
    "almalinux": "almalinux",
    "fedora": "fedora",
}
# A POSIX user name; anything else in a property (which any project member may set
# on a snapshot) is not shown as one.
_USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def login_user_of(properties) -> str:
    """The user to log in as on a machine of an image with these Glance properties:
    `os_admin_user` when set, else by `os_distro`; "" when unknown."""
    admin = str(properties.get("os_admin_user") or "").strip()
    if _USER_NAME.match(admin):
        return admin
    distro = str(properties.get("os_distro") or "").strip().lower()
    return DISTRO_LOGIN_USERS.get(distro, "")


def qr_svg(url: str) -> SafeString:
    """The QR code of `url` as inline SVG (made here, so the page needs no image
    source the Content-Security-Policy would have to allow). Only path data: the
    URL itself does not appear in the markup."""
    code = segno.make(url, error="m")
    return mark_safe(code.svg_inline(scale=3, border=2))
