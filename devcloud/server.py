"""HTTP front end: request parsing, routing, auth, faults and the access log.

Each OpenStack service is mounted under its own prefix (/identity, /compute,
/image, /networking) the way devstack does it, plus /devcloud for the simulator's admin
knobs. Errors are raised as ApiError and rendered in the shape of the service
that the path belongs to, because clients parse those bodies differently.
"""

import http.server
import re
import select
import signal
import socket
import sys
import threading
import time
import uuid

from . import clock, compute, identity, image, neutron, transitions
from . import faults as faults_mod
from .store import Store, loads
from .web import (
    HTTP_REASONS,
    MAX_BODY,
    ApiError,
    BodyStream,
    Request,
    Response,
    Router,
    render_error,
)

# Requests whose body the handler reads piece by piece (Glance's image data upload):
# an image is larger than memory, and MAX_BODY does not apply to it.
STREAMED_BODIES = re.compile(r"^/image/v2/images/[^/?]+/file(\?.*)?$")


class RequestDropped(Exception):
    """A hang fault took the request: it is never answered (see Handler._hold)."""


class App:
    def __init__(
        self,
        data_dir,
        host="127.0.0.1",
        port=0,
        speed=1.0,
        faults=None,
        profile="primary",
        timing=None,
    ):
        self.store = Store(data_dir)
        self.data_dir = self.store.data_dir
        self.host = host
        self.port = port
        self.speed = float(speed)
        if self.speed <= 0:
            raise ValueError("speed must be positive")
        self.faults = faults_mod.Faults(faults)
        self.profile = profile
        timing = timing or {}
        # Nominal (unscaled) knobs; see README "Simulated time".
        self.task_state_lag = float(timing.get("task_state_lag", clock.TASK_STATE_LAG_SECONDS))
        self.upload_rate = float(timing.get("upload_rate", clock.UPLOAD_BYTES_PER_SECOND))
        self.progress_interval = float(
            timing.get("progress_interval", clock.UPLOAD_PROGRESS_SECONDS)
        )
        self.guest_boot = float(timing.get("guest_boot", clock.GUEST_BOOT_SECONDS))
        if (
            self.task_state_lag < 0
            or self.upload_rate <= 0
            or self.progress_interval < 0
            or self.guest_boot < 0
        ):
            raise ValueError("timing values must be positive (progress interval may be 0)")
        self.access_log_path = f"{self.data_dir}/access.log"
        # Open for the server's life: every request appends a line; close() closes it.
        self._log = open(self.access_log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        self._log_lock = threading.Lock()
        self.routers = {
            "identity": Router(),
            "compute": Router(),
            "image": Router(),
            "networking": Router(),
            "devcloud": Router(),
        }
        identity.register(self.routers["identity"])
        compute.register(self.routers["compute"])
        image.register(self.routers["image"])
        neutron.register(self.routers["networking"])
        self.routers["devcloud"].add("GET", "/faults", get_faults)
        self.routers["devcloud"].add("PUT", "/faults", put_faults)
        self.routers["devcloud"].add("GET", "/health", health, auth=False)
        self.routers["devcloud"].add("GET", "/servers/(?P<server_id>[^/]+)", get_server)
        self.routers["devcloud"].add("PUT", "/servers/(?P<server_id>[^/]+)", put_server)
        from . import seed

        seed.ensure_seeded(self.store, profile)
        admin = self.store.one("SELECT id FROM projects WHERE name = ?", (seed.ADMIN_PROJECT,))
        neutron.ensure_default_network(self.store, admin["id"] if admin else "")
        self.scheduler = transitions.Scheduler(self)

    def duration(self, seconds):
        return seconds / self.speed

    # -- request pipeline ---------------------------------------------------

    def split_service(self, path):
        for service in ("identity", "compute", "image", "networking", "devcloud"):
            prefix = "/" + service
            if path == prefix or path.startswith(prefix + "/"):
                return service, path[len(prefix) :]
        return None, path

    def handle(self, req):
        service, rest = self.split_service(req.path)
        req.service = service
        try:
            if service is None:
                raise ApiError(404, "The resource could not be found.")
            if service != "devcloud":
                # A dropped request reaches nothing: no latency, no error, no effect.
                if self.faults.hang(req.method, req.target):
                    raise RequestDropped
                delay = self.faults.latency_ms(req.method, req.target)
                if delay:
                    time.sleep(delay / 1000.0)
                injected = self.faults.http_error(req.method, req.target)
                if injected:
                    raise ApiError(injected["status"], injected["message"])
            if service == "compute":
                resp = compute.dispatch(self, req, rest)
            else:
                handler, params, needs_auth = self.routers[service].match(req.method, rest)
                if needs_auth:
                    self.authenticate(req)
                resp = handler(req, **params)
            if req.method in ("POST", "PUT", "DELETE"):
                # The request may have planned steps; let the scheduler re-read its deadline.
                self.scheduler.poke()
            return resp
        except ApiError as err:
            resp = Response(err.status, render_error(service, err), err.headers)
            if service == "compute":
                compute.add_version_headers(req, resp)
            return resp

    def authenticate(self, req):
        token = req.header("X-Auth-Token")
        ctx = identity.validate_token(self.store, token) if token else None
        if ctx is None:
            raise ApiError(
                401,
                "The request you have made requires authentication.",
                {"WWW-Authenticate": f'Keystone uri="{req.base_url}/identity"'},
            )
        req.ctx = ctx
        return ctx

    def log_access(self, req, status, started):
        elapsed_ms = (time.monotonic() - started) * 1000.0
        project = req.ctx.project_id if req.ctx and req.ctx.project_id else "-"
        stamp = clock.ts_to_db(time.time())[:23] + "Z"
        line = f"{stamp} {req.method} {req.target} {status} {elapsed_ms:.1f} {project}\n"
        with self._log_lock:
            if self._log.closed:  # a straggling daemon thread after shutdown
                return
            self._log.write(line)
            self._log.flush()

    def close(self):
        self.scheduler.stop()
        with self._log_lock:
            self._log.close()


# -- /devcloud admin endpoints -------------------------------------------------


def _require_admin(req):
    if not req.ctx.is_admin:
        raise ApiError(
            403, "You are not authorized to use the devcloud admin endpoints (admin role required)."
        )


def get_faults(req):
    _require_admin(req)
    return Response(200, req.app.faults.get())


def put_faults(req):
    _require_admin(req)
    spec = req.json(required=False) or {}
    try:
        req.app.faults.replace(spec)
    except faults_mod.FaultSpecError as exc:
        raise ApiError(400, str(exc)) from exc
    return Response(200, req.app.faults.get())


# Simulator-only state of a server that Nova does not show (or shows only in
# some states): what tests need to set up and to check.
SERVER_KNOBS = {"disk_used_bytes"}


def _internal_server(req, server_id):
    row = req.app.store.one("SELECT * FROM servers WHERE id = ? AND deleted = 0", (server_id,))
    if row is None:
        raise ApiError(404, f"Instance {server_id} could not be found.")
    return row


def _internal_view(row):
    return {
        "id": row["id"],
        "name": row["name"],
        "project_id": row["project_id"],
        "vm_state": row["vm_state"],
        "task_state": row["task_state"],
        "power_state": row["power_state"],
        "disk_used_bytes": row["disk_used_bytes"],
        # The latest instance fault, even when Nova would not show it (SHUTOFF, ACTIVE).
        "fault": loads(row["fault"]),
    }


def get_server(req, server_id):
    _require_admin(req)
    return Response(200, {"server": _internal_view(_internal_server(req, server_id))})


def put_server(req, server_id):
    _require_admin(req)
    body = req.json()
    if not isinstance(body, dict) or not body:
        raise ApiError(400, f"Expected a JSON object with some of {sorted(SERVER_KNOBS)}.")
    unknown = set(body) - SERVER_KNOBS
    if unknown:
        raise ApiError(400, f"Unknown server fields: {sorted(unknown)}.")
    size = body["disk_used_bytes"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ApiError(400, "disk_used_bytes must be a non-negative integer.")
    with req.app.store.write() as conn:
        _internal_server(req, server_id)
        # Not a Nova attribute, so `updated` stays as it is.
        conn.execute("UPDATE servers SET disk_used_bytes = ? WHERE id = ?", (size, server_id))
    return Response(200, {"server": _internal_view(_internal_server(req, server_id))})


def health(req):
    return Response(200, {"status": "ok", "profile": req.app.profile})


# -- HTTP plumbing ---------------------------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "devcloud"
    sys_version = ""

    def log_message(self, format, *args):
        pass

    def date_time_string(self, timestamp=None):
        # The Date header tells the cloud's own time (see clock.OFFSET).
        return super().date_time_string(clock.now_ts() if timestamp is None else timestamp)

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus the
        # client's delayed ACK adds ~40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            total = 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise ApiError(413, "Request body too large.")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ApiError(413, "Request body too large.")
        return self.rfile.read(length) if length else b""

    def _handle(self):
        app = self.server.app
        started = time.monotonic()
        stream = None
        if self.command == "PUT" and STREAMED_BODIES.match(self.path):
            stream = BodyStream(self.rfile, self.headers)
            body = b""
        else:
            try:
                body = self._read_body()
            except (ValueError, ApiError):
                self.close_connection = True
                body = None
        req = Request(app, self.command, self.path, self.headers, body or b"")
        req.stream = stream
        if body is None:
            resp = Response(
                400,
                {
                    "error": {
                        "code": 400,
                        "title": "Bad Request",
                        "message": "Unreadable request body.",
                    }
                },
            )
        else:
            try:
                resp = app.handle(req)
            except RequestDropped:
                self._hold(req, started)
                return
            except Exception as exc:  # a bug must not kill the connection thread silently
                import traceback

                traceback.print_exc(file=sys.stderr)
                err = ApiError(500, f"Unexpected error: {exc.__class__.__name__}: {exc}")
                resp = Response(500, render_error(req.service, err))
        resp.headers.setdefault("X-OpenStack-Request-Id", "req-" + str(uuid.uuid4()))
        # Logged before the response leaves, so a client that counts lines right
        # after its request returns always sees its own line.
        app.log_access(req, resp.status, started)
        self.send_response(resp.status, HTTP_REASONS.get(resp.status))
        for key, value in resp.headers.items():
            self.send_header(key, value)
        if stream is not None and not stream.done:
            # An answer before the whole body was read (a refusal): the rest of it
            # is still on the connection, which cannot carry another request.
            self.close_connection = True
            self.send_header("Connection", "close")
        if resp.stream is not None:
            self.send_header("Content-Length", str(resp.length))
            self.end_headers()
            if self.command != "HEAD":
                for piece in resp.stream:
                    self.wfile.write(piece)
            return
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD" and resp.body:
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def _hold(self, req, started):
        """Never answer: keep the connection open until the client gives up.

        This is what a client sees of a site that drops packets after the
        handshake (or of an API process stuck behind its load balancer): the
        connection opens, the request goes out, nothing comes back, and only the
        client's own timeout ends the wait. Whatever else the client sends is read
        and dropped. Only this connection's thread waits; every connection has
        its own (ThreadingHTTPServer), so other requests are answered as usual.
        """
        self.close_connection = True
        status = 444  # nginx's "closed without a response": devcloud gave up first
        deadline = started + faults_mod.HANG_MAX_SECONDS
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 1.0)
            if not readable:
                continue
            try:
                if not self.connection.recv(65536):
                    status = 499  # nginx's "client closed request"
                    break
            except OSError:
                status = 499
                break
        # Logged when the wait ends, with how long the client was held.
        self.server.app.log_access(req, status, started)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.app.store.close_thread_connection()


class DevcloudHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, app):
        self.app = app
        super().__init__((app.host, app.port), Handler)
        app.port = self.server_address[1]

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def _lock_data_dir(data_dir):
    """One server per data directory: a second one would race the first's transitions."""
    import fcntl
    import os

    os.makedirs(data_dir, exist_ok=True)
    # Returned open: the lock holds as long as the handle does.
    handle = open(os.path.join(data_dir, "devcloud.lock"), "w")  # noqa: SIM115
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise SystemExit(
            f"devcloud: data directory {data_dir} is in use by another devcloud"
        ) from None
    return handle


def _watch_parent(stop):
    """Exit when the launcher that started us dies, so test runs never leak servers.

    The launcher passes its pid in DEVCLOUD_PARENT_PID; once we are re-parented
    the pid differs and we shut down as if we had received SIGTERM.
    """
    import os

    expected = os.environ.get("DEVCLOUD_PARENT_PID")
    if not expected or not expected.isdigit():
        return

    def watch():
        while True:
            if os.getppid() != int(expected):
                stop(None, None)
                return
            time.sleep(0.5)

    threading.Thread(target=watch, name="devcloud-parent-watch", daemon=True).start()


def serve(
    data_dir, host="127.0.0.1", port=0, speed=1.0, faults=None, profile="primary", timing=None
):
    lock = _lock_data_dir(data_dir)
    app = App(
        data_dir, host=host, port=port, speed=speed, faults=faults, profile=profile, timing=timing
    )
    httpd = DevcloudHTTPServer(app)
    app.scheduler.start()
    stopping = threading.Event()

    def _stop(signum, frame):
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    _watch_parent(_stop)
    print(f"devcloud listening on http://{host}:{app.port}", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        httpd.server_close()
        app.close()
        lock.close()
    return 0
