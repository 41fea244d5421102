"""System checks: `manage.py check`, `check --deploy` and runserver refuse to start
with a configuration that would make the login throttle count the wrong address."""

from __future__ import annotations

from axes.helpers import IPWARE_INSTALLED
from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security)
def client_address_check(app_configs, **kwargs) -> list[Error]:
    headers = [h for h in settings.AXES_IPWARE_META_PRECEDENCE_ORDER if h != "REMOTE_ADDR"]
    trusted = settings.PORTAL_TRUSTED_PROXY_COUNT > 0
    errors = []
    if headers and not trusted:
        errors.append(
            Error(
                f"AXES_IP_HEADERS names {', '.join(headers)}, but no proxy is trusted: "
                "a client could write any address there and be counted under it "
                "(and lock others out).",
                hint="Set PORTAL_TRUSTED_PROXY_COUNT to the number of proxies in front "
                "of the portal (1 for one nginx), or leave AXES_IP_HEADERS unset.",
                id="portal.E001",
            )
        )
    if (headers or trusted) and not IPWARE_INSTALLED:
        errors.append(
            Error(
                "A proxy is configured (PORTAL_TRUSTED_PROXY_COUNT or AXES_IP_HEADERS), "
                "but django-ipware is not installed: every login would fail.",
                hint="Install the portal's dependencies again (make install).",
                id="portal.E002",
            )
        )
    return errors


@register()
def oidc_membership_pattern_check(app_configs, **kwargs) -> list[Error]:
    """A pattern that does not compile would fail every sign-in; one without the group
    `project` would grant nothing."""
    import re

    try:
        pattern = re.compile(settings.PORTAL_OIDC_MEMBERSHIP_PATTERN)
    except re.error as exc:
        problem = f"does not compile: {exc}"
    else:
        if "project" in pattern.groupindex:
            return []
        problem = "has no named group `project`"
    return [
        Error(
            f"PORTAL_OIDC_MEMBERSHIP_PATTERN {problem}.",
            hint="A regex with the named groups project and (optionally) role, e.g. "
            r"^urn:geant:denbi\.de:group:(?P<project>[A-Za-z0-9_.-]+)(?::(?P<role>admin|member))?#.*$",
            id="portal.E003",
        )
    ]


@register()
def local_login_check(app_configs, **kwargs) -> list[Error]:
    if settings.PORTAL_LOCAL_LOGIN in ("all", "staff", "off"):
        return []
    return [
        Error(
            f"PORTAL_LOCAL_LOGIN is {settings.PORTAL_LOCAL_LOGIN!r}.",
            hint="One of all, staff or off.",
            id="portal.E004",
        )
    ]
