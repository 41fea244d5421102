"""Start and stop devidp as a subprocess (test fixtures and `make run`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import BinaryIO

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LISTENING = "devidp listening on http://"


class DevIdpError(RuntimeError):
    pass


class DevIdpProcess:
    """One devidp server. `config` is the content of its config file (devidp.config);
    `write_config` changes it while it runs (a user's entitlements, a redirect URI)."""

    def __init__(self, data_dir, config: dict, *, host="127.0.0.1", port=0, exit_with_parent=True):
        self.data_dir = os.path.abspath(str(data_dir))
        self.host = host
        self.config = config
        self.exit_with_parent = exit_with_parent
        self._port = int(port)
        self._proc: subprocess.Popen | None = None
        self._log: BinaryIO | None = None

    @property
    def config_path(self) -> str:
        return os.path.join(self.data_dir, "config.json")

    @property
    def log_path(self) -> str:
        return os.path.join(self.data_dir, "devidp.log")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def issuer(self) -> str:
        return self.url + "/oidc"

    def write_config(self, config: dict | None = None) -> None:
        if config is not None:
            self.config = config
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(self.config, fh, indent=2)
        os.replace(tmp, self.config_path)
        # The server notices a change by the file's modification time: make sure a
        # second write within the same clock tick is seen too.
        stamp = time.time_ns()
        os.utime(self.config_path, ns=(stamp, stamp))

    def user_set(self, username: str, **fields) -> None:
        """Change one user's entry (e.g. entitlements=[...]) and write the file."""
        for entry in self.config["users"]:
            if entry["username"] == username:
                entry.update(fields)
        self.write_config()

    def start(self, timeout=30) -> DevIdpProcess:
        os.makedirs(self.data_dir, exist_ok=True)
        self.write_config()
        log = open(self.log_path, "ab")  # noqa: SIM115  (open while it runs: stop() closes it)
        self._log = log
        offset = log.tell()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env.pop("DEVIDP_PARENT_PID", None)
        if self.exit_with_parent:
            env["DEVIDP_PARENT_PID"] = str(os.getpid())
        command = [sys.executable, "-m", "devidp", "serve", "--data", self.data_dir]
        command += ["--host", self.host, "--port", str(self._port)]
        self._proc = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        try:
            self._port = self._wait_for_listening(offset, deadline)
            self._wait_for_discovery(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _read_log(self, offset: int) -> str:
        with open(self.log_path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")

    def _wait_for_listening(self, offset: int, deadline: float) -> int:
        while time.monotonic() < deadline:
            for line in self._read_log(offset).splitlines():
                if line.startswith(LISTENING):
                    return int(line.rsplit(":", 1)[1].strip().rstrip("/"))
            if self._proc is not None and self._proc.poll() is not None:
                raise DevIdpError(f"devidp exited:\n{self._read_log(offset)[-4000:]}")
            time.sleep(0.05)
        raise DevIdpError(f"devidp did not start in time:\n{self._read_log(offset)[-4000:]}")

    def _wait_for_discovery(self, deadline: float) -> None:
        url = self.issuer + "/.well-known/openid-configuration"
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        raise DevIdpError("devidp's discovery document did not answer in time")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout=10) -> None:
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
