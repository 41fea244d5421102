"""Nova's key pairs (os-keypairs) and `key_name` at boot, as the stock Nova 34 answers
(checked against the loopback OpenStack: bodies, codes and messages)."""

import base64
import hashlib
import uuid

import pytest

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAWbTMKrL7MW4cMMB6d1TFdfQFAFUZRnxBaRRP0KOpmw me@lab"
# What the loopback Nova answered for ED25519.
ED25519_MD5 = "15:69:bc:82:6d:c6:fe:f1:3f:90:eb:2d:04:2f:49:11"
KP = "/compute/v2.1/os-keypairs"


@pytest.fixture
def kp_name():
    return f"kp-{uuid.uuid4().hex[:8]}"


def _import(api, name, public_key=ED25519, **kw):
    return api.post(KP, json={"keypair": {"name": name, "public_key": public_key}}, **kw)


def test_import_show_list_delete(alpha, kp_name):
    created = _import(alpha, kp_name)
    assert created.status_code == 201, created.text
    body = created.json()["keypair"]
    assert body == {
        "name": kp_name, "public_key": ED25519, "fingerprint": ED25519_MD5,
        "user_id": alpha.user_id, "type": "ssh",
    }  # fmt: skip
    blob = base64.b64decode(ED25519.split()[1])
    assert ED25519_MD5.replace(":", "") == hashlib.md5(blob).hexdigest()

    shown = alpha.get(f"{KP}/{kp_name}").json()["keypair"]
    assert shown["fingerprint"] == ED25519_MD5
    assert shown["deleted"] is False
    assert {"created_at", "id", "deleted_at", "updated_at", "user_id", "type"} <= set(shown)
    listed = alpha.get(KP).json()["keypairs"]
    assert {
        "keypair": {k: body[k] for k in ("name", "public_key", "fingerprint", "type")}
    } in listed

    assert alpha.delete(f"{KP}/{kp_name}").status_code == 204
    gone = alpha.delete(f"{KP}/{kp_name}")
    assert gone.status_code == 404
    assert gone.json()["itemNotFound"]["message"] == (
        f"Keypair {kp_name} not found for user {alpha.user_id}"
    )


def test_old_microversions_answer_200_202_without_type(alpha, kp_name):
    created = _import(alpha, kp_name, microversion="2.1")
    assert created.status_code == 200
    assert "type" not in created.json()["keypair"]
    assert "type" not in alpha.get(f"{KP}/{kp_name}", microversion="2.1").json()["keypair"]
    assert alpha.delete(f"{KP}/{kp_name}", microversion="2.1").status_code == 202


def test_a_keypair_belongs_to_its_user(alpha, beta, admin, admin_alpha, kp_name):
    assert _import(admin, kp_name).status_code == 201
    try:
        # The same user in another project sees it; another user does not.
        assert admin_alpha.get(f"{KP}/{kp_name}").status_code == 200
        assert alpha.get(f"{KP}/{kp_name}").status_code == 404
        assert kp_name not in str(beta.get(KP).json())
        # ... and may import one of the same name.
        assert _import(alpha, kp_name).status_code == 201
        assert alpha.delete(f"{KP}/{kp_name}").status_code == 204
    finally:
        admin.delete(f"{KP}/{kp_name}")


def test_refusals_say_what_nova_says(alpha, kp_name):
    assert _import(alpha, kp_name).status_code == 201
    try:
        dup = _import(alpha, kp_name)
        assert dup.status_code == 409
        assert dup.json()["conflictingRequest"]["message"] == (
            f"Key pair '{kp_name}' already exists."
        )
        generate = alpha.post(KP, json={"keypair": {"name": kp_name + "x"}})
        assert generate.status_code == 400
        assert "'public_key' is a required property" in generate.text
        slash = _import(alpha, "a/b")
        assert slash.status_code == 400
        assert "does not match" in slash.text
        at = _import(alpha, "a@b", microversion="2.10")  # "@" and "." only from 2.92
        assert at.status_code == 400
        assert "does not match" in at.text
        assert _import(alpha, f"{kp_name}@x.y").status_code == 201
        spaces = _import(alpha, " ab")
        assert spaces.status_code == 400
        assert "Can not start or end with whitespace" in spaces.text
        garbage = _import(alpha, kp_name + "g", public_key="ssh-rsa AAAAnope")
        assert garbage.status_code == 400
        assert garbage.json()["badRequest"]["message"] == (
            "Keypair data is invalid: failed to generate fingerprint"
        )
    finally:
        alpha.delete(f"{KP}/{kp_name}")
        alpha.delete(f"{KP}/{kp_name}@x.y")


def test_keypair_quota_is_per_user(fresh_cloud):
    from tests.devcloud.conftest import admin_api, member_api

    cloud = fresh_cloud()
    admin, alpha = admin_api(cloud), member_api(cloud, "alpha")
    quota = admin.put(
        f"/compute/v2.1/os-quota-sets/{alpha.project_id}", json={"quota_set": {"key_pairs": 2}}
    )
    assert quota.status_code == 200, quota.text
    assert _import(alpha, "one").status_code == 201
    assert _import(alpha, "two").status_code == 201
    over = _import(alpha, "three")
    assert over.status_code == 403
    assert over.json()["forbidden"]["message"] == "Quota exceeded, too many key pairs."


def test_boot_with_key_name_records_it(alpha, beta, kp_name):
    assert _import(alpha, kp_name).status_code == 201
    try:
        server_id = alpha.create_server(f"{kp_name}-vm", key_name=kp_name)
        assert alpha.server(server_id)["key_name"] == kp_name
        listed = alpha.find_server(f"{kp_name}-vm")
        assert listed["key_name"] == kp_name
        # Deleting the pair later leaves the server's record as it was (as Nova does).
        assert alpha.delete(f"{KP}/{kp_name}").status_code == 204
        assert alpha.server(server_id)["key_name"] == kp_name
        alpha.delete(f"/compute/v2.1/servers/{server_id}")
        plain = alpha.create_server(f"{kp_name}-plain")
        assert alpha.server(plain)["key_name"] is None
        alpha.delete(f"/compute/v2.1/servers/{plain}")
    finally:
        alpha.delete(f"{KP}/{kp_name}")


def test_boot_with_unknown_or_foreign_key_name_is_400(alpha, beta, kp_name):
    assert _import(beta, kp_name).status_code == 201
    try:
        for key_name in ("nokey", kp_name):  # beta's pair is not alpha's
            resp = alpha.post(
                "/compute/v2.1/servers",
                json={"server": {
                    "name": kp_name, "imageRef": alpha.find_image("Ubuntu-22.04-LTS")["id"],
                    "flavorRef": alpha.flavor_id("de.NBI small"), "networks": "auto",
                    "key_name": key_name,
                }},
            )  # fmt: skip
            assert resp.status_code == 400
            assert resp.json()["badRequest"]["message"] == "Invalid key_name provided."
    finally:
        beta.delete(f"{KP}/{kp_name}")


def test_keypairs_page_with_limit_and_marker(alpha, kp_name):
    names = [f"{kp_name}-{i}" for i in range(3)]
    for name in names:
        assert _import(alpha, name).status_code == 201
    try:
        first = alpha.get(KP, params={"limit": 2}).json()
        assert len(first["keypairs"]) == 2
        assert first["keypairs_links"][0]["rel"] == "next"
        last = first["keypairs"][-1]["keypair"]["name"]
        rest = alpha.get(KP, params={"limit": 2, "marker": last}).json()
        assert all(k["keypair"]["name"] > last for k in rest["keypairs"])
        assert alpha.get(KP, params={"marker": "nope"}).status_code == 400
    finally:
        for name in names:
            alpha.delete(f"{KP}/{name}")


def test_the_sdk_imports_and_boots_with_a_keypair(sdk_alpha, kp_name):
    keypair = sdk_alpha.compute.create_keypair(name=kp_name, public_key=ED25519)
    try:
        assert keypair.fingerprint == ED25519_MD5
        assert sdk_alpha.compute.find_keypair(kp_name).public_key == ED25519
    finally:
        sdk_alpha.compute.delete_keypair(kp_name)
    assert sdk_alpha.compute.find_keypair(kp_name) is None
