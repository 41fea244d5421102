"""Start and stop a devcloud server as a subprocess (for test fixtures and `make run`)."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from . import clouds, seed

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LISTENING = "devcloud listening on http://"


class DevcloudError(RuntimeError):
    pass


class DevcloudProcess:
    def __init__(
        self,
        data_dir,
        *,
        port=0,
        host="127.0.0.1",
        speed=1.0,
        faults=None,
        profile="primary",
        python=sys.executable,
        exit_with_parent=True,
        task_state_lag=None,
        upload_rate=None,
        progress_interval=None,
        guest_boot=None,
        clock_offset=None,
    ):
        self.data_dir = os.path.abspath(str(data_dir))
        self.host = host
        self.speed = speed
        self.faults = faults
        self.profile = profile
        # Nominal timing knobs (None = devcloud's default): seconds, MB/s, seconds, seconds.
        self.task_state_lag = task_state_lag
        self.upload_rate = upload_rate
        self.progress_interval = progress_interval
        self.guest_boot = guest_boot
        self.clock_offset = clock_offset
        self.python = python
        # The server stops itself when this process dies, so crashed test runs
        # leave nothing listening; pass False to let it outlive its launcher.
        self.exit_with_parent = exit_with_parent
        self._port = int(port)
        self._proc = None
        self._log = None
        self._admin_token = None

    # -- lifecycle ----------------------------------------------------------------

    @property
    def log_path(self):
        return os.path.join(self.data_dir, "devcloud.log")

    def command(self):
        cmd = [
            self.python,
            "-m",
            "devcloud",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self._port),
            "--data",
            self.data_dir,
            "--speed",
            str(self.speed),
            "--profile",
            self.profile,
        ]
        for option, value in (
            ("--task-state-lag", self.task_state_lag),
            ("--upload-rate", self.upload_rate),
            ("--progress-interval", self.progress_interval),
            ("--guest-boot", self.guest_boot),
            ("--clock-offset", self.clock_offset),
        ):
            if value is not None:
                cmd += [option, str(value)]
        if self.faults:
            # A dict goes over as JSON; a string ("@file.json" or JSON text) as-is.
            spec = self.faults if isinstance(self.faults, str) else json.dumps(self.faults)
            cmd += ["--faults", spec]
        return cmd

    def start(self, timeout=30):
        if self.running:
            return self
        os.makedirs(self.data_dir, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (open while it runs: stop() closes it)
        offset = self._log.tell()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("DEVCLOUD_PARENT_PID", None)
        if self.exit_with_parent:
            env["DEVCLOUD_PARENT_PID"] = str(os.getpid())
        self._proc = subprocess.Popen(
            self.command(),
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        try:
            self._port = self._wait_for_listening(offset, deadline)
            self._wait_for_identity(deadline)
        except BaseException:
            self.stop()
            raise
        self._admin_token = None
        return self

    def _read_log(self, offset):
        with open(self.log_path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")

    def _wait_for_listening(self, offset, deadline):
        while time.monotonic() < deadline:
            for line in self._read_log(offset).splitlines():
                if line.startswith(LISTENING):
                    return int(line.rsplit(":", 1)[1].strip().rstrip("/"))
            if self._proc.poll() is not None:
                raise DevcloudError(
                    f"devcloud exited with {self._proc.returncode}:\n"
                    + self._read_log(offset)[-4000:]
                )
            time.sleep(0.02)
        raise DevcloudError(
            "devcloud did not report listening in time:\n" + self._read_log(offset)[-4000:]
        )

    def _wait_for_identity(self, deadline):
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.auth_url, timeout=2)
            except urllib.error.HTTPError as exc:
                if exc.code == 300:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise DevcloudError("devcloud identity endpoint did not answer 300 in time")

    @property
    def running(self):
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self):
        """The server process's id (benchmarks read its CPU time)."""
        return self._proc.pid if self._proc is not None else None

    def stop(self, timeout=10):
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- addresses and credentials --------------------------------------------------

    @property
    def port(self):
        return self._port

    @property
    def url(self):
        return f"http://{self.host}:{self._port}"

    @property
    def auth_url(self):
        return self.url + "/identity"

    @property
    def access_log_path(self):
        return os.path.join(self.data_dir, "access.log")

    @property
    def admin_credentials(self):
        return clouds.admin_credentials(self._port, self.host)

    def member_credentials(self, project):
        return clouds.member_credentials(project, self._port, self.host)

    def clouds_yaml(self, name="devcloud", entries_only=False):
        return clouds.clouds_yaml(
            self._port, host=self.host, name=name, profile=self.profile, entries_only=entries_only
        )

    # -- admin API ------------------------------------------------------------------------

    def _request(self, method, path, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers=dict(headers or {})
        )
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()

    def admin_token(self):
        if self._admin_token is None:
            body = {
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {
                            "user": {
                                "name": seed.ADMIN_USER,
                                "domain": {"id": "default"},
                                "password": seed.ADMIN_PASSWORD,
                            }
                        },
                    },
                    "scope": {"project": {"name": seed.ADMIN_PROJECT, "domain": {"id": "default"}}},
                }
            }
            _, headers, _ = self._request("POST", "/identity/v3/auth/tokens?nocatalog", body)
            self._admin_token = headers["X-Subject-Token"]
        return self._admin_token

    def _admin_request(self, method, path, body=None):
        try:
            return self._request(method, path, body, {"X-Auth-Token": self.admin_token()})
        except urllib.error.HTTPError as exc:
            if exc.code != 401:
                raise
            # The cached token died (revoked, expired, or a fresh data directory): renew once.
            self._admin_token = None
            return self._request(method, path, body, {"X-Auth-Token": self.admin_token()})

    def get_faults(self):
        _, _, raw = self._admin_request("GET", "/devcloud/faults")
        return json.loads(raw)

    def set_faults(self, faults):
        """Replace the running server's fault rules (an empty dict clears them)."""
        _, _, raw = self._admin_request("PUT", "/devcloud/faults", faults or {})
        return json.loads(raw)

    def get_server(self, server_id):
        """devcloud's own view of a server: disk_used_bytes, the recorded fault, states."""
        _, _, raw = self._admin_request("GET", f"/devcloud/servers/{server_id}")
        return json.loads(raw)["server"]

    def set_server(self, server_id, **fields):
        """Change simulator-only server fields, e.g. set_server(sid, disk_used_bytes=500 * 10**9)."""
        _, _, raw = self._admin_request("PUT", f"/devcloud/servers/{server_id}", fields)
        return json.loads(raw)["server"]
