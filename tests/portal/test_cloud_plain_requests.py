"""The gateway's plain path for simple cloud calls (portal.cloud.connection.
_requests_sent_plainly): what reaches the cloud is what requests' own path sends,
the session's response hooks still run, and whatever the plain path does not
handle (cookies, proxies, query strings) takes requests' path, as before."""

from __future__ import annotations

import http.server
import json
import threading
from types import SimpleNamespace

import pytest
import requests
from keystoneauth1 import session as ksa_session

from portal.cloud.connection import _requests_sent_plainly


class _Recorder(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.command, self.path, dict(self.headers), body))
        answer = json.dumps({"ok": True, "echo": body.decode("utf-8")}).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        if self.path.endswith("/cookie"):
            self.send_header("Set-Cookie", "SERVERID=lb-1; Path=/")
        self.end_headers()
        self.wfile.write(answer)

    do_POST = do_GET = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _sessions():
    """Two keystoneauth sessions alike, the second sending plainly; each with a
    response hook, as the gateway's (the answer noted) is, and a list of the calls
    that took requests' own path."""
    made = []
    for plain in (False, True):
        session = ksa_session.Session(user_agent="portal-test")
        heard, requests_path = [], []
        session.session.hooks["response"].append(
            lambda response, *a, heard=heard, **k: heard.append(response.status_code)
        )
        original = session.session.request

        def counted(method, url, original=original, requests_path=requests_path, **kwargs):
            requests_path.append(url)
            return original(method, url, **kwargs)

        session.session.request = counted
        if plain:
            _requests_sent_plainly(SimpleNamespace(session=session))
        made.append((session, heard, requests_path))
    return made


def _comparable(headers: dict) -> dict:
    return {name.lower(): value for name, value in headers.items()}


def test_a_plain_call_reaches_the_cloud_as_requests_sends_it(recorder):
    url = f"http://127.0.0.1:{recorder.server_port}/v2.1/servers/abc/action"
    body = {"createImage": {"name": "Übung 1", "metadata": {"portal_job": "x"}}}
    (_, _, by_requests_path), (_, _, plain_by_requests_path) = sessions = _sessions()
    for session, heard, _ in sessions:
        response = session.post(url, json=body, headers={"OpenStack-API-Version": "compute 2.79"})
        assert response.status_code == 202
        assert response.json()["echo"] == json.dumps(body)
        assert heard == [202]  # the session's response hook ran
        assert response.elapsed.total_seconds() > 0
    assert (len(by_requests_path), len(plain_by_requests_path)) == (1, 0)
    (_, path, by_requests, body_requests), (_, path_plain, plainly, body_plain) = recorder.seen
    assert path_plain == path
    assert body_plain == body_requests  # UTF-8, the same bytes
    assert _comparable(plainly) == _comparable(by_requests)


def test_a_call_without_a_body_says_so_as_requests_does(recorder):
    url = f"http://127.0.0.1:{recorder.server_port}/v2.1/servers/abc"
    for session, _, _ in _sessions():
        session.post(url)
        session.get(url)
    posted = [headers for method, _, headers, _ in recorder.seen if method == "POST"]
    got = [headers for method, _, headers, _ in recorder.seen if method == "GET"]
    assert [_comparable(h).get("content-length") for h in posted] == ["0", "0"]
    assert _comparable(got[0]) == _comparable(got[1])


def test_a_cookie_the_cloud_sets_is_sent_back_by_requests_path(recorder):
    base = f"http://127.0.0.1:{recorder.server_port}/v2.1"
    (_, _, _), (session, heard, requests_path) = _sessions()
    session.post(f"{base}/cookie", json={})
    session.post(f"{base}/servers/abc/action", json={"os-stop": None})
    assert _comparable(recorder.seen[1][2]).get("cookie") == "SERVERID=lb-1"
    assert heard == [202, 202]
    assert requests_path == [f"{base}/servers/abc/action"]  # the second: a cookie to send


def test_a_query_string_or_a_proxy_takes_requests_path(recorder):
    (_, _, _), (session, _, requests_path) = _sessions()
    base = f"http://127.0.0.1:{recorder.server_port}/v2.1"

    session.post(f"{base}/servers/abc/action", json={"os-stop": None})
    assert requests_path == []
    session.get(f"{base}/servers/detail?changes-since=2026-01-01T00:00:00Z")
    assert requests_path == [f"{base}/servers/detail?changes-since=2026-01-01T00:00:00Z"]
    assert recorder.seen[-1][1] == "/v2.1/servers/detail?changes-since=2026-01-01T00:00:00Z"

    session.session.proxies = {"http": "http://127.0.0.1:9"}  # nothing listens there
    with pytest.raises(requests.exceptions.RequestException):
        session.session.request(
            "POST", f"{base}/servers/abc/action", data="{}", allow_redirects=False
        )
    assert len(requests_path) == 2
