"""Login throttling on top of django-axes: the client address behind a proxy
(AXES_CLIENT_IP_CALLABLE), and a limit per address as well as axes' own per
username and address (AXES_HANDLER)."""

from __future__ import annotations

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum


def client_address(request) -> str | None:
    """The address a login is counted under: REMOTE_ADDR, or behind
    PORTAL_TRUSTED_PROXY_COUNT proxies the address the first of them saw (settings.py
    says which X-Forwarded-For entry that is), and REMOTE_ADDR when the header has none.

    Not axes' own ipware call: given REMOTE_ADDR among the headers, ipware prefers
    whichever address is more public, so behind a proxy with a public address every
    client with a private one (a campus network) would be counted as the proxy."""
    remote = request.META.get("REMOTE_ADDR")
    headers = [h for h in settings.AXES_IPWARE_META_PRECEDENCE_ORDER if h != "REMOTE_ADDR"]
    if not (settings.PORTAL_TRUSTED_PROXY_COUNT and headers):
        return remote  # no proxy trusted: a header is the client's word (portal.checks)
    from ipware.ip import get_client_ip  # needed behind a proxy only (portal.checks)

    address, _public = get_client_ip(
        request,
        proxy_count=settings.AXES_IPWARE_PROXY_COUNT,
        request_header_order=headers,
        strict=settings.IPWARE_STRICT,
    )
    return address or remote


def address_failures(request) -> int:
    """Wrong passwords from the request's client address within the cool-off, for
    any usernames (axes keeps one row per username, address and browser)."""
    attempts = AccessAttempt.objects.filter(ip_address=request.axes_ip_address)
    if get_cool_off(request) is not None:
        attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


class AddressLimitedHandler(AxesDatabaseHandler):
    """axes' database handler, and an address with PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT
    wrong passwords (for any usernames) is locked out as a username+address pair is.

    Not `AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]`: axes
    has one failure limit for every list, so an address would be locked after 5
    wrong passwords of all its users together (a course room behind one NAT), and a
    successful login deletes the attempts matching any list, so a guesser with an
    account of their own could clear their address's count by logging in. Here the
    count comes from the same rows, and a login clears only its own username's."""

    def get_failures(self, request, credentials=None) -> int:
        failures = super().get_failures(request, credentials)
        if address_failures(request) < settings.PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT:
            return failures
        # The lockout page says which limit it was.
        request.login_address_locked = True
        return max(failures, get_failure_limit(request, credentials))
