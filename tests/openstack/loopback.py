"""Helpers for tests against the loopback OpenStack cloud (`make openstack`).

The cloud is started by scripts/openstack/up.py; it leaves its ids and paths in
var/openstack/cloud.json and its accounts in var/openstack/clouds.yaml:

    openstack             portal-service, scoped to project portal (admin on portal, alpha, beta)
    openstack-admin       Keystone's admin
    openstack-alpha-user  alpha-user, member of alpha
    openstack-beta-user   beta-user, member of beta
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import openstack
from openstack.config import OpenStackConfig

ROOT = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("LOOPSTACK_STATE", ROOT / "var" / "openstack"))
CLOUD_JSON = STATE / "cloud.json"
CLOUD_NAMES = ("openstack", "openstack-admin", "openstack-alpha-user", "openstack-beta-user")


@dataclass(frozen=True)
class LoopbackCloud:
    """What `make openstack` set up: paths, ids (by name) and endpoints."""

    cloud_json: Path
    clouds_yaml: Path
    knobs_path: Path
    projects: dict[str, str]
    flavors: dict[str, str]
    images: dict[str, str]
    networks: dict[str, str]
    endpoints: dict[str, str]
    region: str = "RegionOne"
    accounts: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = CLOUD_JSON) -> LoopbackCloud:
        data = json.loads(Path(path).read_text())
        return cls(
            cloud_json=Path(path),
            clouds_yaml=Path(data.get("clouds_yaml") or Path(path).with_name("clouds.yaml")),
            knobs_path=Path(data["knobs_path"]),
            projects=data["projects"],
            flavors=data["flavors"],
            images=data["images"],
            networks=data["networks"],
            endpoints=data["endpoints"],
            region=data.get("region", "RegionOne"),
            accounts=data.get("accounts", {}),
        )

    def sdk(
        self, name: str = "openstack", project: str | None = None
    ) -> openstack.connection.Connection:
        return sdk(name, project=project, clouds_yaml=self.clouds_yaml)

    def reachable(self) -> bool:
        url = urlparse(self.endpoints["identity"])
        try:
            with socket.create_connection((url.hostname, url.port), timeout=2):
                return True
        except OSError:
            return False

    def read_knobs(self) -> dict:
        try:
            return json.loads(self.knobs_path.read_text())
        except FileNotFoundError:
            return {}

    def write_knobs(self, knobs: dict) -> None:
        tmp = self.knobs_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(knobs, indent=2) + "\n")
        os.replace(tmp, self.knobs_path)

    @contextlib.contextmanager
    def knobs(self, **changes):
        """Set virt-driver knobs (re-read by nova-compute on each call) for a block."""
        before = self.read_knobs()
        self.write_knobs({**before, **changes})
        try:
            yield
        finally:
            self.write_knobs(before)


def sdk(
    name: str = "openstack", *, project: str | None = None, clouds_yaml: Path | None = None
) -> openstack.connection.Connection:
    """An openstacksdk Connection for one entry of var/openstack/clouds.yaml.

    `project` re-scopes the same user to another project by name (as the
    portal re-scopes its service account to each project).
    """
    path = clouds_yaml or STATE / "clouds.yaml"
    config = OpenStackConfig(config_files=[str(path)], load_envvars=False).get_one(cloud=name)
    conn = openstack.connection.Connection(config=config)
    if project:
        conn = conn.connect_as_project(project)
    return conn


def wait_for_status(conn, server, status: str, timeout: float = 60) -> object:
    """Poll a server until it has `status` (ERROR fails at once)."""
    deadline = time.monotonic() + timeout
    while True:
        server = conn.compute.get_server(server.id)
        if server.status == status:
            return server
        if server.status == "ERROR":
            raise AssertionError(f"server {server.name} went to ERROR: {server.fault}")
        if time.monotonic() > deadline:
            raise AssertionError(f"server {server.name} is {server.status}, not {status}")
        time.sleep(0.3)
