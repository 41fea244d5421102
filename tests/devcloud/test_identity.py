"""Keystone v3: discovery, token issue/validate, scoping, projects and users."""

import requests

from devcloud import seed

from .conftest import admin_api, member_api


def _password_body(user, password, project=None, user_domain=None, project_domain=None):
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": dict(
                        user, password=password, **({"domain": user_domain} if user_domain else {})
                    )
                },
            }
        }
    }
    if project:
        body["auth"]["scope"] = {
            "project": dict(project, **({"domain": project_domain} if project_domain else {}))
        }
    return body


def test_unversioned_discovery_is_300_with_v3_link(cloud):
    resp = requests.get(cloud.auth_url)
    assert resp.status_code == 300
    values = resp.json()["versions"]["values"]
    assert values[0]["status"] == "stable"
    assert values[0]["id"].startswith("v3.")
    assert values[0]["links"][0]["href"] == f"{cloud.url}/identity/v3/"
    v3 = requests.get(f"{cloud.auth_url}/v3")
    assert v3.status_code == 200
    assert v3.json()["version"]["id"] == values[0]["id"]


def test_password_auth_with_domain_by_name_and_by_id(cloud):
    for user_domain, project_domain in (
        ({"name": "Default"}, {"name": "Default"}),
        ({"id": "default"}, {"id": "default"}),
    ):
        resp = requests.post(
            f"{cloud.auth_url}/v3/auth/tokens",
            json=_password_body(
                {"name": "alpha-user"},
                seed.member_password("alpha"),
                {"name": "alpha"},
                user_domain,
                project_domain,
            ),
        )
        assert resp.status_code == 201, resp.text
        assert resp.headers["X-Subject-Token"]
        token = resp.json()["token"]
        assert set(token) >= {
            "methods",
            "user",
            "project",
            "roles",
            "catalog",
            "expires_at",
            "issued_at",
            "audit_ids",
        }
        assert token["methods"] == ["password"]
        assert token["project"]["name"] == "alpha"
        assert token["user"]["domain"] == {"id": "default", "name": "Default"}
        assert token["expires_at"] > token["issued_at"]
        assert {"member", "reader"} <= {r["name"] for r in token["roles"]}
        assert "admin" not in {r["name"] for r in token["roles"]}
        types = {entry["type"]: entry for entry in token["catalog"]}
        assert set(types) == {"identity", "compute", "image", "network"}
        public = next(e for e in types["compute"]["endpoints"] if e["interface"] == "public")
        assert public["url"] == f"{cloud.url}/compute/v2.1"
        assert public["region"] == "RegionOne"
        assert public["region_id"] == "RegionOne"


def test_auth_by_user_and_project_id(cloud, alpha):
    resp = requests.post(
        f"{cloud.auth_url}/v3/auth/tokens",
        json=_password_body(
            {"id": alpha.user_id}, seed.member_password("alpha"), {"id": alpha.project_id}
        ),
    )
    assert resp.status_code == 201
    assert resp.json()["token"]["project"]["id"] == alpha.project_id


def test_bad_password_and_foreign_project_are_401(cloud):
    bad = requests.post(
        f"{cloud.auth_url}/v3/auth/tokens",
        json=_password_body(
            {"name": "alpha-user"},
            "wrong",
            {"name": "alpha"},
            {"name": "Default"},
            {"name": "Default"},
        ),
    )
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == 401
    foreign = requests.post(
        f"{cloud.auth_url}/v3/auth/tokens",
        json=_password_body(
            {"name": "alpha-user"},
            seed.member_password("alpha"),
            {"name": "beta"},
            {"name": "Default"},
            {"name": "Default"},
        ),
    )
    assert foreign.status_code == 401


def test_validate_and_revoke_token(cloud, admin):
    other = member_api(cloud, "beta")
    resp = admin.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": other.token})
    assert resp.status_code == 200
    assert resp.headers["X-Subject-Token"] == other.token
    assert resp.json()["token"]["project"]["name"] == "beta"
    assert other.get("/compute/v2.1/servers").status_code == 200
    assert (
        other.delete(
            "/identity/v3/auth/tokens", headers={"X-Subject-Token": other.token}
        ).status_code
        == 204
    )
    assert other.get("/compute/v2.1/servers").status_code == 401
    missing = admin.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": "nope"})
    assert missing.status_code == 404


def test_services_reject_missing_or_bad_token_with_401_body(cloud):
    for path in ("/compute/v2.1/servers/detail", "/image/v2/images"):
        for headers in ({}, {"X-Auth-Token": "not-a-token"}):
            resp = requests.get(cloud.url + path, headers=headers)
            assert resp.status_code == 401
            assert resp.json()["error"]["code"] == 401
            assert "Keystone uri=" in resp.headers["WWW-Authenticate"]


def test_projects_admin_lists_all_member_is_forbidden(admin, alpha):
    names = {p["name"] for p in admin.get("/identity/v3/projects").json()["projects"]}
    assert names == {"admin", "alpha", "beta"}
    only = admin.get("/identity/v3/projects", params={"name": "beta"}).json()["projects"]
    assert [p["name"] for p in only] == ["beta"]
    assert admin.get(f"/identity/v3/projects/{only[0]['id']}").json()["project"]["name"] == "beta"
    assert alpha.get("/identity/v3/projects").status_code == 403
    assert alpha.get(f"/identity/v3/projects/{alpha.project_id}").status_code == 200
    assert alpha.get(f"/identity/v3/projects/{only[0]['id']}").status_code == 403


def test_users_and_auth_projects(admin, alpha):
    users = {u["name"] for u in admin.get("/identity/v3/users").json()["users"]}
    assert users == {"admin", "alpha-user", "beta-user"}
    assert alpha.get("/identity/v3/users").status_code == 403
    mine = admin.get("/identity/v3/auth/projects").json()["projects"]
    assert {p["name"] for p in mine} == {"admin", "alpha", "beta"}
    theirs = alpha.get("/identity/v3/auth/projects").json()["projects"]
    assert [p["name"] for p in theirs] == ["alpha"]


def test_admin_can_scope_to_every_demo_project(cloud):
    for project in ("alpha", "beta"):
        api = admin_api(cloud, project)
        assert "admin" in {r["name"] for r in api.token_body["roles"]}
        assert api.token_body["project"]["name"] == project


def test_sdk_connect_as_project_acts_inside_alpha(sdk, admin_alpha):
    alpha_conn = sdk.connect_as_project("alpha")
    assert alpha_conn.current_project_id == admin_alpha.project_id
    names = {s.name for s in alpha_conn.compute.servers()}
    assert "alpha-web-01" in names
    assert not any(n.startswith("beta") for n in names)
