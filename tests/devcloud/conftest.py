"""Fixtures: devcloud subprocesses on free ports, raw HTTP clients and SDK connections."""

import os
import sys
import time

import pytest
import requests

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from devcloud.launcher import DevcloudProcess  # noqa: E402

FAST = 40.0
COMPUTE_MAX = "2.100"


class Api:
    """A thin raw-HTTP client holding one project-scoped token."""

    def __init__(self, cloud, username, password, project, microversion=COMPUTE_MAX):
        self.cloud = cloud
        self.session = requests.Session()
        self.microversion = microversion
        resp = self.session.post(
            f"{cloud.url}/identity/v3/auth/tokens",
            json={
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {
                            "user": {
                                "name": username,
                                "domain": {"name": "Default"},
                                "password": password,
                            }
                        },
                    },
                    "scope": {"project": {"name": project, "domain": {"id": "default"}}},
                }
            },
        )
        assert resp.status_code == 201, resp.text
        self.token = resp.headers["X-Subject-Token"]
        self.token_body = resp.json()["token"]
        self.project_id = self.token_body["project"]["id"]
        self.user_id = self.token_body["user"]["id"]

    def request(self, method, path, microversion=None, headers=None, **kwargs):
        hdrs = {"X-Auth-Token": self.token}
        if path.startswith("/compute"):
            mv = microversion or self.microversion
            if mv:
                hdrs["OpenStack-API-Version"] = f"compute {mv}"
                hdrs["X-OpenStack-Nova-API-Version"] = mv
        hdrs.update(headers or {})
        return self.session.request(method, self.cloud.url + path, headers=hdrs, **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # conveniences
    def server(self, server_id):
        resp = self.get(f"/compute/v2.1/servers/{server_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()["server"]

    def image(self, image_id):
        return self.get(f"/image/v2/images/{image_id}")

    def find_server(self, name):
        resp = self.get("/compute/v2.1/servers/detail", params={"name": f"^{name}$"})
        servers = resp.json()["servers"]
        assert len(servers) == 1, servers
        return servers[0]

    def find_image(self, name):
        images = self.get("/image/v2/images", params={"name": name}).json()["images"]
        assert len(images) == 1, images
        return images[0]

    def flavor_id(self, name):
        flavors = self.get("/compute/v2.1/flavors/detail", params={"is_public": "None"}).json()[
            "flavors"
        ]
        return next(f["id"] for f in flavors if f["name"] == name)

    def create_server(self, name, image="Ubuntu-22.04-LTS", flavor="de.NBI small", **extra):
        body = {
            "name": name,
            "imageRef": self.find_image(image)["id"],
            "flavorRef": self.flavor_id(flavor),
            "networks": "auto",
        }
        body.update(extra)
        resp = self.post("/compute/v2.1/servers", json={"server": body})
        assert resp.status_code == 202, resp.text
        return resp.json()["server"]["id"]

    def action(self, server_id, body, **kw):
        return self.post(f"/compute/v2.1/servers/{server_id}/action", json=body, **kw)

    def wait_server(self, server_id, predicate, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.server(server_id)
            if predicate(server):
                return server
            time.sleep(0.02)
        raise AssertionError(f"server {server_id} never satisfied predicate: {server}")

    def wait_status(self, server_id, status, timeout=20):
        return self.wait_server(
            server_id,
            lambda s: s["status"] == status and s["OS-EXT-STS:task_state"] is None,
            timeout,
        )

    def wait_image(self, image_id, predicate, timeout=20):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            resp = self.image(image_id)
            last = resp
            if predicate(resp):
                return resp
            time.sleep(0.02)
        raise AssertionError(
            f"image {image_id} never satisfied predicate: {last.status_code} {last.text[:300]}"
        )


def admin_api(cloud, project="admin"):
    from devcloud import seed

    return Api(cloud, seed.ADMIN_USER, seed.ADMIN_PASSWORD, project)


def member_api(cloud, project):
    from devcloud import seed

    return Api(cloud, seed.member_user(project), seed.member_password(project), project)


def start_cloud(tmp_path_factory, name, **kwargs):
    kwargs.setdefault("speed", FAST)
    data_dir = tmp_path_factory.mktemp(name)
    return DevcloudProcess(str(data_dir), **kwargs).start()


@pytest.fixture(scope="session")
def cloud(tmp_path_factory):
    """A shared primary-profile cloud; tests that mutate shared rows clean up after themselves."""
    proc = start_cloud(tmp_path_factory, "shared")
    yield proc
    proc.stop()


@pytest.fixture
def fresh_cloud(tmp_path_factory):
    """A private cloud for tests that change global state (faults, quotas, restarts)."""
    procs = []

    def factory(**kwargs):
        proc = start_cloud(tmp_path_factory, "fresh", **kwargs)
        procs.append(proc)
        return proc

    yield factory
    for proc in procs:
        proc.stop()


@pytest.fixture(scope="session")
def admin(cloud):
    return admin_api(cloud)


@pytest.fixture(scope="session")
def admin_alpha(cloud):
    return admin_api(cloud, "alpha")


@pytest.fixture(scope="session")
def alpha(cloud):
    return member_api(cloud, "alpha")


@pytest.fixture(scope="session")
def beta(cloud):
    return member_api(cloud, "beta")


@pytest.fixture
def sdk(cloud):
    import openstack

    conn = openstack.connect(**cloud.admin_credentials)
    yield conn
    conn.close()


@pytest.fixture
def sdk_alpha(cloud):
    import openstack

    conn = openstack.connect(**cloud.member_credentials("alpha"))
    yield conn
    conn.close()
