"""Request/response objects, routing and service-specific error bodies."""

import json
import re
import urllib.parse

HTTP_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    300: "Multiple Choices",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

# Nova's wsgi Fault maps status codes to these body keys; others are computeFault.
NOVA_FAULT_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}

NEUTRON_TYPES = {
    400: "HTTPBadRequest",
    401: "HTTPUnauthorized",
    403: "HTTPForbidden",
    404: "HTTPNotFound",
    405: "HTTPMethodNotAllowed",
    409: "HTTPConflict",
    503: "HTTPServiceUnavailable",
}

MAX_BODY = 512 * 1024 * 1024


class ApiError(Exception):
    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class Response:
    """An answer. `stream` (an iterable of bytes, `length` of them in all) is sent
    piece by piece instead of `body`: image data, which may be larger than memory."""

    def __init__(
        self, status=200, body=None, headers=None, content_type=None, stream=None, length=0
    ):
        self.status = status
        self.headers = dict(headers or {})
        self.stream = stream
        self.length = length
        if body is None:
            self.body = b""
        elif isinstance(body, (bytes, bytearray)):
            self.body = bytes(body)
        else:
            self.body = json.dumps(body).encode()
            content_type = content_type or "application/json"
        if content_type:
            self.headers.setdefault("Content-Type", content_type)


class Request:
    def __init__(self, app, method, target, headers, body):
        self.app = app
        self.method = method
        self.target = target
        split = urllib.parse.urlsplit(target)
        self.path = urllib.parse.unquote(split.path)
        self.query_string = split.query
        self.query = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
        self.headers = headers
        self.body = body
        # A BodyStream for the few routes that read their body piece by piece
        # (image data); `body` is then empty.
        self.stream = None
        host = headers.get("Host") or f"{app.host}:{app.port}"
        self.base_url = f"http://{host}"
        self.ctx = None
        self.service = None
        self.microversion = None
        self._json = None

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def param(self, name, default=None):
        for key, value in self.query:
            if key == name:
                return value
        return default

    def params(self, name):
        return [value for key, value in self.query if key == name]

    def has_param(self, name):
        return any(key == name for key, _ in self.query)

    def json(self, required=True):
        if self._json is None:
            if not self.body:
                if required:
                    raise ApiError(400, "Request body is missing or empty.")
                return None
            try:
                self._json = json.loads(self.body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ApiError(400, f"Malformed request body: {exc}") from exc
        return self._json


class IncompleteBody(Exception):
    """The client stopped sending before the body was complete."""


class BodyStream:
    """A request body read piece by piece, sized (Content-Length) or chunked
    (Transfer-Encoding: chunked): what Glance's data upload accepts."""

    def __init__(self, rfile, headers):
        self._rfile = rfile
        self.chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        self._left = None if self.chunked else int(headers.get("Content-Length") or 0)
        self._chunk_left = 0
        self.done = not self.chunked and self._left == 0

    def _read_exact(self, size):
        data = self._rfile.read(size)
        if len(data) < size:
            raise IncompleteBody(f"body cut off after a short read ({len(data)} of {size})")
        return data

    def read(self, size=1024 * 1024):
        """Up to `size` bytes; b"" at the end. IncompleteBody when the client went away."""
        if self.done:
            return b""
        if not self.chunked:
            data = self._read_exact(min(size, self._left))
            self._left -= len(data)
            self.done = self._left == 0
            return data
        if self._chunk_left == 0:
            line = self._rfile.readline(65537)
            if not line:
                raise IncompleteBody("body cut off between chunks")
            try:
                self._chunk_left = int(line.split(b";", 1)[0].strip() or b"0", 16)
            except ValueError:
                raise IncompleteBody("unreadable chunk size") from None
            if self._chunk_left == 0:
                while self._rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                self.done = True
                return b""
        data = self._read_exact(min(size, self._chunk_left))
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._rfile.readline(3)
        return data

    def __iter__(self):
        while True:
            data = self.read()
            if not data:
                return
            yield data


class Router:
    def __init__(self):
        self.routes = []

    def add(self, method, pattern, handler, auth=True):
        self.routes.append((method, re.compile("^" + pattern + "$"), handler, auth))

    def match(self, method, path):
        path_matched = False
        for route_method, regex, handler, auth in self.routes:
            m = regex.match(path)
            if not m:
                continue
            path_matched = True
            if route_method == method or (route_method == "GET" and method == "HEAD"):
                return handler, m.groupdict(), auth
        if path_matched:
            raise ApiError(405, "The method is not allowed for the requested URL.")
        raise ApiError(404, "The resource could not be found.")


def render_error(service, err):
    reason = HTTP_REASONS.get(err.status, "Error")
    # 401s come from keystonemiddleware in front of Nova and Glance, in Keystone's shape.
    if service == "compute" and err.status != 401:
        name = NOVA_FAULT_NAMES.get(err.status, "computeFault")
        return {name: {"code": err.status, "message": err.message}}
    if service == "networking" and err.status != 401:
        # Neutron names the exception; a NeutronError carries its type as `kind`.
        kind = getattr(err, "kind", None) or NEUTRON_TYPES.get(err.status, "HTTPError")
        return {"NeutronError": {"type": kind, "message": err.message, "detail": ""}}
    if service == "image" and err.status != 401:
        return {"message": err.message, "code": f"{err.status} {reason}", "title": reason}
    return {"error": {"code": err.status, "title": reason, "message": err.message}}
