"""Connections to the sites, and the translation of SDK errors into portal errors.

One connection per (site, project) per process: the service account of the
site's clouds.yaml entry, re-scoped to a project when an action must happen
inside it (a snapshot is owned by the project of the token that made it, a
server belongs to the project of the token that created it).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import keystoneauth1.exceptions as ksa_exceptions
import openstack
import openstack.config
import openstack.exceptions as sdk_exceptions
import requests
from django.conf import settings

from portal.cloud.errors import (
    BadRequest,
    CloudError,
    Conflict,
    Forbidden,
    NotFound,
    Unavailable,
)
from portal.cloud.util import answer_note, answered_since, call_began, call_ended

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_connections: dict[tuple[str, str, float], openstack.connection.Connection] = {}
_local = threading.local()
# Per site: the id of the service account the portal acts as there (see own_user_id).
_own_user_ids: dict[str, str] = {}


@contextlib.contextmanager
def call_timeout(seconds: float) -> Iterator[None]:
    """Calls made inside wait at most `seconds` for an answer (instead of
    OPENSTACK_TIMEOUT): for work that is cheap when the site is well and worthless
    when it is late, like the status watcher's listing of what changed."""
    before = getattr(_local, "timeout", None)
    _local.timeout = seconds
    try:
        yield
    finally:
        _local.timeout = before


def connection_for(site: str, *, project_id: str = "") -> openstack.connection.Connection:
    """The cached connection for a site (optionally scoped to one of its projects),
    one per timeout in use (see call_timeout)."""
    timeout = getattr(_local, "timeout", None) or settings.OPENSTACK_TIMEOUT
    key = (site, project_id, timeout)
    with _lock:
        conn = _connections.get(key)
    if conn is not None:
        return conn
    with translate_errors(site):
        base = _connections.get((site, "", timeout))
        if base is None:
            config = openstack.config.OpenStackConfig(
                config_files=[settings.OS_CLIENT_CONFIG_FILE], load_envvars=False
            )
            # One quick retry at most inside the SDK: it sleeps while holding a worker
            # slot (up to 15 s with its defaults), the job engine waits without one.
            region = config.get_one(
                cloud=site,
                api_timeout=timeout,
                status_code_retries=1,
                connect_retries=1,
            )
            base = openstack.connection.Connection(config=region)
        conn = base.connect_as(project_id=project_id) if project_id else base
        _answers_noted(base, site)
        _answers_noted(conn, site)
        _environment_read_once(base)
        _environment_read_once(conn)
        _endpoints_read_once(base)
        _endpoints_read_once(conn)
        _requests_sent_plainly(base)
        _requests_sent_plainly(conn)
    with _lock:
        _connections.setdefault((site, "", timeout), base)
        return _connections.setdefault(key, conn)


def _answers_noted(conn: openstack.connection.Connection, site: str) -> None:
    """Note every HTTP answer from the site as it arrives (one page of a long listing
    too): a process that hears nothing from a site for a while knows it hangs."""
    hooks = conn.session.session.hooks.setdefault("response", [])
    if not any(getattr(hook, "site", None) == site for hook in hooks):

        def noted(response: object, *args: object, **kwargs: object) -> None:
            answer_note(site)

        # The tag that finds this site's hook again on the next call.
        noted.site = site  # type: ignore[attr-defined]
        hooks.append(noted)


def _environment_read_once(conn: openstack.connection.Connection) -> None:
    """requests reads the proxy variables from the environment, and matches the URL
    against no_proxy, on every call (Session.merge_environment_settings): a sixth of
    the worker's CPU in a cloud call. A process's environment does not change while
    it runs, so that is looked up once per scheme and host (and verify/cert, which
    pick REQUESTS_CA_BUNDLE). A call with proxies of its own is merged as before."""
    session = conn.session.session
    if getattr(session, "portal_environment_read_once", False):
        return
    merge = session.merge_environment_settings
    known: dict[tuple[object, ...], Any] = {}

    def merged(url, proxies, stream, verify, cert):  # type: ignore[no-untyped-def]
        if proxies:
            return merge(url, proxies, stream, verify, cert)
        key = (*urlsplit(url)[:2], stream, str(verify), str(cert))
        if key not in known:
            known[key] = merge(url, proxies, stream, verify, cert)
        found = known[key]
        return {**found, "proxies": dict(found["proxies"])}

    session.merge_environment_settings = merged  # type: ignore[method-assign]
    session.portal_environment_read_once = True  # type: ignore[attr-defined]


def _endpoints_read_once(conn: openstack.connection.Connection) -> None:
    """keystoneauth looks each call's endpoint up in the token's service catalog,
    on every call: a quarter of the session's CPU in a job's stop or snapshot
    request. The catalog comes with the token, so a lookup is kept for the token it
    was made with; a new token (expired, invalidated, another scope) looks again.
    The session has fetched the call's token (its auth headers) before it asks for
    the endpoint, so a call never uses a lookup from a token it no longer holds."""
    session = conn.session
    if getattr(session, "portal_endpoints_read_once", False):
        return
    lookup = session.get_endpoint
    known: dict[str, tuple[object, str]] = {}

    def endpoint(auth=None, *, endpoint_override=None, **kwargs):  # type: ignore[no-untyped-def]
        plugin = auth or session.auth
        token = getattr(plugin, "auth_ref", None)
        if endpoint_override or token is None:
            return lookup(auth, endpoint_override=endpoint_override, **kwargs)
        key = repr((id(plugin), sorted(kwargs.items())))
        found = known.get(key)
        if found is not None and found[0] is token:
            return found[1]
        url = lookup(auth, **kwargs)
        if url:
            known[key] = (token, url)
        return url

    session.get_endpoint = endpoint  # type: ignore[method-assign]
    session.portal_endpoints_read_once = True  # type: ignore[attr-defined]


def _requests_sent_plainly(conn: openstack.connection.Connection) -> None:
    """keystoneauth hands each call to requests' Session.request, which merges the
    session's cookies, hooks and settings into a new request, looks for a ~/.netrc,
    re-parses and re-quotes the URL, checks every header and follows redirects: a
    quarter of a cloud call's CPU, for calls that have none of these. Such a call
    (an ASCII URL without spaces, a body already encoded, no cookies, proxies,
    files, query parameters or redirects to follow: keystoneauth follows them
    itself) is prepared here as requests would prepare it and handed to the same
    transport adapter, with the session's response hooks (the answer noted) run as
    requests runs them; the rest takes requests' own path. A response that sets a
    cookie puts it in the session's jar, and from then on the session's calls take
    requests' path, which sends it back."""
    session = conn.session.session
    if getattr(session, "portal_sent_plainly", False):
        return
    full = session.request

    def request(method: str, url: str, *, headers: Any = None, data: Any = None,
                timeout: Any = None, verify: Any = None, cert: Any = None,
                allow_redirects: bool = True, **rest: Any) -> requests.Response:  # fmt: skip
        plain = (
            not rest and not allow_redirects and isinstance(data, (str, bytes, type(None)))
            and url.isascii() and " " not in url and "?" not in url
            and not session.cookies and not session.auth and not session.params
        )  # fmt: skip
        if plain:
            settings = session.merge_environment_settings(url, {}, None, verify, cert)
            plain = not any(settings["proxies"].values())
        if not plain:
            return full(method, url, headers=headers, data=data, timeout=timeout, verify=verify,
                        cert=cert, allow_redirects=allow_redirects, **rest)  # fmt: skip
        prepared = requests.PreparedRequest()
        prepared.method = method.upper()
        prepared.url = url
        # The session's headers under the call's, None dropping one, as requests merges.
        merged: dict[str, Any] = {**session.headers}
        merged_headers = requests.structures.CaseInsensitiveDict(merged)
        merged_headers.update(headers or {})
        prepared.headers = requests.structures.CaseInsensitiveDict(
            {name: value for name, value in merged_headers.items() if value is not None}
        )
        body = data.encode("utf-8") if isinstance(data, str) else data
        prepared.body = body
        if body is not None:
            prepared.headers["Content-Length"] = str(len(body))
        elif prepared.method not in ("GET", "HEAD"):
            prepared.headers["Content-Length"] = "0"
        prepared.hooks = {"response": list(session.hooks.get("response", []))}
        adapter = session.get_adapter(url=url)
        started = time.perf_counter()
        verifying = True if settings["verify"] is None else settings["verify"]
        response = adapter.send(prepared, stream=False, timeout=timeout, verify=verifying,
                                cert=settings["cert"], proxies=settings["proxies"])  # fmt: skip
        response.elapsed = timedelta(seconds=time.perf_counter() - started)
        hooked: requests.Response = requests.hooks.dispatch_hook(  # type: ignore[no-untyped-call]
            "response", prepared.hooks, response
        )
        response = hooked
        requests.cookies.extract_cookies_to_jar(session.cookies, prepared, response.raw)  # type: ignore[no-untyped-call]
        response.content  # noqa: B018  (read now, as requests does when not streaming)
        return response

    session.request = request  # type: ignore[method-assign,assignment]
    session.portal_sent_plainly = True  # type: ignore[attr-defined]


def connections_reset() -> None:
    """Forget every cached connection (after clouds.yaml changed, and in tests)."""
    with _lock:
        _connections.clear()
        _own_user_ids.clear()


def own_user_id(site: str) -> str:
    """The id of the user the portal acts as on `site` (the service account of its
    clouds.yaml entry), read off the token. Nova records the token's user as the
    `user_id` of each server it creates, and no one else's server can carry it: what
    proves a server is the portal's (see portal.jobs.made_by_job). Asked once per
    site per process; connect_as() re-scopes the same user, so one id per site."""
    with _lock:
        known = _own_user_ids.get(site)
    if known:
        return known
    with translate_errors(site):
        user_id = connection_for(site).current_user_id or ""
    if user_id:
        with _lock:
            _own_user_ids[site] = user_id
    return user_id


def _message(site: str, exc: sdk_exceptions.HttpException) -> str:
    details = getattr(exc, "details", None)
    return _shown(site, str(details or exc.message or exc), exc)


# What in an SDK or keystoneauth message names the cloud's insides: its URLs
# (Keystone's, a service endpoint's), urllib3's pool and object reprs, the path
# it retried, bare addresses. Users see job errors and messages; operators
# find the full text in the log.
_INTERNALS = (
    # urllib3's HTTPConnectionPool(host=..., port=...) and HTTPConnection(...).
    (re.compile(r"\bHTTPS?Connection(?:Pool)?\([^)]*\):?\s*"), ""),
    # A URL up to a space, quote, bracket or comma, without a trailing ":" or ".".
    (re.compile(r"\b[a-zA-Z][\w+.-]*://(?:\[[^\]]*\])?(?:[^\s'\"<>()\[\],]*[^\s'\"<>()\[\],:.;])?"),
     "{site}"),
    (re.compile(r"\s*\bwith url: [^\s,()]+"), ""),
    (re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>"), "connection"),
    (re.compile(r"\[[0-9a-fA-F:]*:[0-9a-fA-F:]*\](?::\d+)?"), "{site}"),  # [fd00::5]:5000
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "{site}"),  # 10.0.0.5:5000
    (re.compile(r"\b[\w-]+(?:\.[\w-]+)+:\d{2,5}\b"), "{site}"),  # keystone.internal:5000
)  # fmt: skip


def _shown(site: str, text: str, exc: BaseException) -> str:
    """`text` without the cloud's internal URLs, hosts and ports (each becomes the
    site's name), the useful rest kept: "Unable to establish connection to
    devcloud: ... Connection refused", the HTTP status, Nova's own fault text. The
    one place a cloud message is made fit to show; the original goes to the log."""
    shown = text
    for pattern, replacement in _INTERNALS:
        shown = pattern.sub(replacement.replace("{site}", site or "the cloud"), shown)
    if shown != text:
        logger.warning("%s: %s: %s", site, exc.__class__.__name__, text)
    return shown


@contextlib.contextmanager
def translate_errors(site: str) -> Iterator[None]:
    """Turn SDK / keystoneauth exceptions into the portal's few errors. The call is
    registered as in flight meanwhile (see cloud.util.call_began); every HTTP answer
    is noted as it arrives by the session's hook (see _answers_noted)."""
    began = call_began(site)
    try:
        yield
    except CloudError:
        raise
    except sdk_exceptions.HttpException as exc:
        raise _translated(site, exc) from exc
    except (ksa_exceptions.ClientException, sdk_exceptions.SDKException, OSError) as exc:
        # Connection refused, timeouts, discovery failures, a missing clouds.yaml
        # entry: all mean "we cannot talk to this site right now". Silent only if no
        # answer at all came back (a 503 to Keystone's discovery is an answer).
        error = Unavailable(f"{site} is unreachable: {_shown(site, str(exc), exc)}", site=site)
        error.silent = not answered_since(site, began)
        raise error from exc
    finally:
        call_ended(site, began)


def _translated(site: str, exc: sdk_exceptions.HttpException) -> CloudError:
    message = _message(site, exc)
    for sdk_class, error, status in (
        (sdk_exceptions.NotFoundException, NotFound, 404),
        (sdk_exceptions.ConflictException, Conflict, 409),
        (sdk_exceptions.ForbiddenException, Forbidden, 403),
        (sdk_exceptions.BadRequestException, BadRequest, 400),
    ):
        if isinstance(exc, sdk_class):
            return error(message, site=site, status=status)
    status_code = exc.status_code
    if status_code is not None and status_code < 500 and status_code not in (408, 429):
        return BadRequest(message, site=site, status=status_code)
    return Unavailable(
        f"{site} answered {status_code or 'an error'}: {message}", site=site, status=status_code
    )
