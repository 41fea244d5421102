"""Cloud errors shown to users (job errors, messages, pages) name no internal URL,
host or port; the operator finds the original in the log (issue #21)."""

from __future__ import annotations

import logging

import keystoneauth1.exceptions as ksa_exceptions
import openstack.exceptions as sdk_exceptions
import pytest

from portal import cloud
from portal.cloud.connection import translate_errors

REFUSED = (
    "Unable to establish connection to http://10.1.2.3:5000/v3/auth/tokens: "
    "HTTPConnectionPool(host='10.1.2.3', port=5000): Max retries exceeded with url: "
    "/v3/auth/tokens (Caused by NewConnectionError('<urllib3.connection.HTTPConnection "
    "object at 0x7f3b2c1d>: Failed to establish a new connection: [Errno 111] "
    "Connection refused'))"
)
# urllib3 2's way of saying the same.
REFUSED_URLLIB3_2 = (
    "Unable to establish connection to http://10.1.2.3:5000/v3: HTTPConnectionPool("
    "host='10.1.2.3', port=5000): Max retries exceeded with url: /v3 (Caused by "
    "NewConnectionError(\"HTTPConnection(host='10.1.2.3', port=5000): Failed to establish "
    'a new connection: [Errno 111] Connection refused"))'
)


def _translated(exc: Exception) -> cloud.CloudError:
    with pytest.raises(cloud.CloudError) as info, translate_errors("devcloud"):
        raise exc
    return info.value


def _assert_no_internals(message: str) -> None:
    for internal in ("10.1.2.3", "5000", "http", "/v3", "keystone.internal", "fd00", "0x"):
        assert internal not in message, (internal, message)


@pytest.mark.parametrize("text", [REFUSED, REFUSED_URLLIB3_2])
def test_a_refused_connection_names_the_site_not_keystones_url(caplog, text):
    with caplog.at_level(logging.WARNING, logger="portal.cloud.connection"):
        error = _translated(ksa_exceptions.ConnectFailure(text))
    assert isinstance(error, cloud.Unavailable)
    _assert_no_internals(error.message)
    assert "devcloud" in error.message
    assert "Connection refused" in error.message
    assert "Unable to establish connection" in error.message
    # The operator still learns where it tried.
    assert "http://10.1.2.3:5000/v3" in caplog.text


def test_a_discovery_failure_and_a_timeout_keep_their_reason_only():
    error = _translated(
        ksa_exceptions.DiscoveryFailure(
            "Could not find versioned identity endpoints when attempting to authenticate. "
            "Unable to establish connection to https://keystone.internal:5000/v3: "
            "HTTPSConnectionPool(host='keystone.internal', port=5000): Read timed out."
        )
    )
    _assert_no_internals(error.message)
    assert "Read timed out" in error.message


def test_an_http_error_keeps_its_status_and_novas_text_not_the_endpoint():
    exc = sdk_exceptions.HttpException(
        message="Server Error for url: http://[fd00::5]:8774/v2.1/servers/abc",
        http_status=503,
    )
    error = _translated(exc)
    _assert_no_internals(error.message)
    assert "503" in error.message
    not_found = sdk_exceptions.NotFoundException(
        message="Client Error for url: http://10.1.2.3:8774/v2.1/servers/abc, "
        "Instance abc could not be found.",
        http_status=404,
    )
    error = _translated(not_found)
    assert isinstance(error, cloud.NotFound)
    _assert_no_internals(error.message)
    assert "Instance abc could not be found." in error.message


def test_a_message_without_internals_is_left_as_nova_wrote_it():
    text = "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"
    exc = sdk_exceptions.ForbiddenException(message=text, http_status=403)
    assert _translated(exc).message == text
