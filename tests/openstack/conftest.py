"""Fixtures for tests against the loopback OpenStack cloud (`make openstack`).

Every test under tests/openstack is marked `openstack`: `make test` leaves
them out, `make test-openstack` runs only them (with PORTAL_REQUIRE_OPENSTACK=1,
so a missing cloud fails instead of skipping).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import pytest

from tests.openstack.loopback import CLOUD_JSON, LoopbackCloud, sdk
from tests.openstack.portal_stack import names, os_portal, os_worker  # noqa: F401 (fixtures)

HERE = Path(__file__).resolve().parent

__all__ = ["sdk"]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.openstack)


def _unavailable(reason: str):
    if os.environ.get("PORTAL_REQUIRE_OPENSTACK"):
        pytest.fail(f"{reason} (PORTAL_REQUIRE_OPENSTACK is set)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def loopback_openstack() -> LoopbackCloud:
    """The loopback cloud's paths and ids (var/openstack/cloud.json).

    Attributes: cloud_json, clouds_yaml, knobs_path, projects, flavors,
    images, networks (name -> id), endpoints, region, accounts; methods
    sdk(name, project=None) and knobs(**changes) (a context manager).
    """
    if not CLOUD_JSON.exists():
        _unavailable(f"no loopback OpenStack: {CLOUD_JSON} is missing; run `make openstack`")
    cloud = LoopbackCloud.load(CLOUD_JSON)
    if not cloud.reachable():
        _unavailable(
            f"the loopback OpenStack does not answer at {cloud.endpoints['identity']}; "
            "run `make openstack`"
        )
    return cloud


@pytest.fixture
def knobs(loopback_openstack):
    """Set virt-driver knobs for one test: knobs(panic_server_name_regex="x"); undone after."""
    before = loopback_openstack.read_knobs()

    def set_knobs(**changes):
        loopback_openstack.write_knobs({**loopback_openstack.read_knobs(), **changes})

    yield set_knobs
    loopback_openstack.write_knobs(before)


@pytest.fixture
def unique_name():
    """A name no other run uses: ostest-<what>-<8 hex>."""
    return lambda what: f"ostest-{what}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cleanup(loopback_openstack):
    """Register servers, images and networks to delete after the test (as admin)."""
    admin = loopback_openstack.sdk("openstack-admin")
    servers, images, networks = [], [], []
    yield {"servers": servers, "images": images, "networks": networks}
    for server_id in servers:
        with contextlib.suppress(Exception):  # best effort
            admin.compute.delete_server(server_id, ignore_missing=True)
    for server_id in servers:
        with contextlib.suppress(Exception):  # gone already
            admin.compute.wait_for_delete(admin.compute.get_server(server_id), wait=60)
    for image_id in images:
        admin.image.delete_image(image_id, ignore_missing=True)
    for network_id in networks:
        admin.network.delete_network(network_id, ignore_missing=True)
