"""The access link a participant opens: checked, then filled in for one machine.

A link template comes from an image property (a proposal) and is confirmed by
whoever runs the workshop. It is checked when confirmed and again each time a
link is made (a setting may have changed since): http or https only, the host
exactly `{ip}` or one the operators allow (PORTAL_ACCESS_HOSTS), no user part,
and no placeholders but `{ip}` and `{name}`. The values are filled in quoted, so
a machine renamed to "x/../@evil" cannot move the link elsewhere.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote, urlsplit

from django.conf import settings

MAX_LENGTH = 500
PLACEHOLDERS = frozenset({"{ip}", "{name}"})
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


def access_template_problem(template: str) -> str:
    """Why `template` may not be an access link; "" when it may."""
    if len(template) > MAX_LENGTH:
        return f"The access link may be at most {MAX_LENGTH} characters long."
    if _UNSAFE.search(template):
        return "The access link may not contain spaces, control characters or backslashes."
    unknown = sorted(set(_PLACEHOLDER.findall(template)) - PLACEHOLDERS)
    if unknown:
        return f"Unknown placeholder {unknown[0]}: only {{ip}} and {{name}} are filled in."
    if "{" in _PLACEHOLDER.sub("", template) or "}" in _PLACEHOLDER.sub("", template):
        return "Braces are only allowed around {ip} and {name}."
    try:
        parts = urlsplit(template)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError:
        return "The access link is not a valid URL (look at its host and port)."
    if parts.scheme not in ("http", "https") or not template.lower().startswith(
        f"{parts.scheme}://"
    ):
        return "The access link must start with http:// or https://."
    if "@" in parts.netloc:
        return "The access link may not contain a user name or password before the host."
    host = parts.hostname or ""
    if host == "{ip}" and parts.netloc.startswith("{ip}"):
        return ""
    if "{" in parts.netloc:
        return "The host must be exactly {ip}; {name} may only appear after it."
    if host not in allowed_hosts():
        allowed = ", ".join(["{ip}", *allowed_hosts()])
        return f"The host {host or '(none)'} is not allowed: use {allowed}."
    return ""


def allowed_hosts() -> list[str]:
    return [host.lower() for host in settings.PORTAL_ACCESS_HOSTS]


def access_url(template: str, *, ip: str, name: str) -> str:
    """The link to machine `name` at `ip`; "" when the template or the address is
    not acceptable. Used for the page, the handout and the CSV alike."""
    if not template or access_template_problem(template):
        return ""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    parts = urlsplit(template)
    head_length = len(parts.scheme) + 3 + len(parts.netloc)
    head, tail = template[:head_length], template[head_length:]
    host = f"[{address}]" if address.version == 6 else str(address)
    link = head.replace("{ip}", host) + tail.replace("{ip}", quote(str(address), safe="")).replace(
        "{name}", quote(name, safe="")
    )
    # The filled-in link must still point where the template said.
    expected = {str(address)} if "{ip}" in head else set(allowed_hosts())
    try:
        target = urlsplit(link).hostname
    except ValueError:
        return ""
    return link if target in expected else ""
