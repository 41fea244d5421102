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
