"""Login throttling behind a reverse proxy (issue #21): each client is counted under
its own address, the one the proxy saw, whatever the client writes into
X-Forwarded-For; one address guessing many usernames is stopped as well."""

from __future__ import annotations

import os
import runpy
from unittest import mock

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.checks import run_checks
from django.test import override_settings
from django.urls import reverse

LOGIN = reverse("login")
PROXY = "127.0.0.1"  # nginx on the same host, as the README's production notes have it
ATTACKER = "203.0.113.5"
BOB_AT_HOME = "198.51.100.7"


def settings_from_env(**env) -> dict:
    """The login throttle's settings as config/settings.py computes them from `env`."""
    with mock.patch.dict(os.environ, env):
        computed = runpy.run_path(str(settings.BASE_DIR / "config" / "settings.py"))
    prefixes = ("AXES_", "IPWARE_", "PORTAL_TRUSTED_", "PORTAL_LOGIN_")
    return {name: value for name, value in computed.items() if name.startswith(prefixes)}


@pytest.fixture
def behind_one_proxy():
    with override_settings(**settings_from_env(PORTAL_TRUSTED_PROXY_COUNT="1")):
        yield


def login(client, username, password, *, forwarded_for):
    """A login through the proxy: it appends the address it was reached from."""
    return client.post(
        LOGIN,
        {"username": username, "password": password},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=forwarded_for,
    )


def test_an_attacker_does_not_lock_bob_out_of_his_own_address(client, people, behind_one_proxy):
    for _ in range(6):
        login(client, "bob", "wrong", forwarded_for=ATTACKER)
    # The attacker is locked out...
    assert login(client, "bob", "bob", forwarded_for=ATTACKER).status_code == 429
    # ...bob, at home behind the same proxy, is not.
    assert login(client, "bob", "bob", forwarded_for=BOB_AT_HOME).status_code == 302


def test_a_spoofed_left_most_forwarded_address_is_not_the_one_counted(
    client, people, behind_one_proxy
):
    # The attacker claims to be bob at home; the proxy appends the real address.
    for _ in range(6):
        login(client, "bob", "wrong", forwarded_for=f"{BOB_AT_HOME}, {ATTACKER}")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}
    assert login(client, "bob", "bob", forwarded_for=BOB_AT_HOME).status_code == 302


def test_behind_a_proxy_with_a_public_address_campus_clients_keep_their_own(
    client, people, behind_one_proxy
):
    # ipware alone prefers the "more public" of REMOTE_ADDR and the header.
    through = {"REMOTE_ADDR": "93.184.216.34"}
    for _ in range(6):
        client.post(LOGIN, {"username": "bob", "password": "wrong"},
                    HTTP_X_FORWARDED_FOR="10.1.2.3", **through)  # fmt: skip
    response = client.post(LOGIN, {"username": "bob", "password": "bob"},
                           HTTP_X_FORWARDED_FOR="10.4.5.6", **through)  # fmt: skip
    assert response.status_code == 302


def test_a_proxy_header_without_a_trusted_count_is_not_believed(client, people):
    # The system check refuses this configuration, but gunicorn runs no checks.
    with override_settings(**settings_from_env(AXES_IP_HEADERS="HTTP_X_FORWARDED_FOR")):
        login(client, "bob", "wrong", forwarded_for=BOB_AT_HOME)
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {PROXY}


def test_one_address_trying_many_usernames_is_locked_out(client, people, settings):
    limit = settings.PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT
    assert limit == 50
    # 4 wrong passwords each (below the per-user limit of 5) for many usernames.
    for n in range(limit):
        client.post(LOGIN, {"username": f"user{n // 4}", "password": "wrong"})
    # Now even a right password from that address is refused, and the page says why.
    response = client.post(LOGIN, {"username": "carol", "password": "carol"})
    assert response.status_code == 429
    assert "for several users" in response.content.decode()
    # Another address is not affected.
    other = client.post(LOGIN, {"username": "carol", "password": "carol"}, REMOTE_ADDR="10.1.2.3")
    assert other.status_code == 302


def test_a_guesser_cannot_clear_the_address_count_by_logging_in_to_their_own_account(
    client, people, settings
):
    settings.PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT = 8
    for n in range(7):
        client.post(LOGIN, {"username": f"user{n // 4}", "password": "wrong"})
    assert client.post(LOGIN, {"username": "eve", "password": "eve"}).status_code == 302
    client.post(LOGIN, {"username": "user9", "password": "wrong"})
    assert client.post(LOGIN, {"username": "carol", "password": "carol"}).status_code == 429


def errors_with(**env) -> list[str]:
    with override_settings(**settings_from_env(**env)):
        return [error.id for error in run_checks() if error.is_serious()]


def test_a_proxy_header_without_a_trusted_proxy_count_fails_the_checks():
    assert "portal.E001" in errors_with(AXES_IP_HEADERS="HTTP_X_FORWARDED_FOR,REMOTE_ADDR")
    assert "portal.E001" in errors_with(AXES_IP_HEADERS="HTTP_X_REAL_IP")
    assert "portal.E001" not in errors_with(PORTAL_TRUSTED_PROXY_COUNT="1")
    assert "portal.E001" not in errors_with()


def test_a_trusted_proxy_without_ipware_fails_the_checks(monkeypatch):
    monkeypatch.setattr("portal.checks.IPWARE_INSTALLED", False)
    assert "portal.E002" in errors_with(PORTAL_TRUSTED_PROXY_COUNT="1")
    assert "portal.E002" not in errors_with()
