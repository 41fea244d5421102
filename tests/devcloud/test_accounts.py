"""`python -m devcloud accounts`: test projects with a member and a reader user each."""

import subprocess
import sys

import yaml

from devcloud.launcher import REPO_ROOT, DevcloudProcess

from .conftest import FAST, Api, admin_api


def _accounts(data_dir, *args):
    proc = subprocess.run(
        [sys.executable, "-m", "devcloud", "accounts", "--data", str(data_dir), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return proc.stdout


def test_accounts_for_tempest(tmp_path):
    data_dir = tmp_path / "cloud"
    text = _accounts(data_dir, "--projects", "2")
    assert _accounts(data_dir, "--projects", "2") == text  # idempotent
    accounts = yaml.safe_load(text)
    assert [(a["username"], a["project_name"], a["roles"]) for a in accounts] == [
        ("tempest-1-member", "tempest-1", ["member"]),
        ("tempest-1-reader", "tempest-1", ["reader"]),
        ("tempest-2-member", "tempest-2", ["member"]),
        ("tempest-2-reader", "tempest-2", ["reader"]),
    ]
    assert all(a["user_domain_name"] == a["project_domain_name"] == "Default" for a in accounts)

    with DevcloudProcess(data_dir, speed=FAST) as cloud:
        by_role = {}
        for account in accounts[:2]:
            api = Api(cloud, account["username"], account["password"], account["project_name"])
            by_role[account["roles"][0]] = api
            assert api.get("/compute/v2.1/servers").json() == {"servers": []}
        member, reader = by_role["member"], by_role["reader"]
        assert member.project_id == reader.project_id
        assert [r["name"] for r in member.token_body["roles"]] == ["member", "reader"]
        assert [r["name"] for r in reader.token_body["roles"]] == ["reader"]
        # The demo catalog is untouched, and the admin can scope into the new projects.
        admin = admin_api(cloud)
        users = {u["name"] for u in admin.get("/identity/v3/users").json()["users"]}
        assert {"admin", "alpha-user", "beta-user", "tempest-2-reader"} <= users
        assert admin_api(cloud, "tempest-1").project_id == member.project_id
