"""Flavor create, delete and access changes: admin only, as Nova's default policy."""


def test_an_admin_creates_shares_unshares_and_deletes_a_flavor(admin, alpha):
    made = admin.post(
        "/compute/v2.1/flavors",
        json={"flavor": {"name": "fm-tmp", "ram": 512, "vcpus": 1, "disk": 5,
                         "os-flavor-access:is_public": False}},
    )  # fmt: skip
    assert made.status_code == 200, made.text
    flavor_id = made.json()["flavor"]["id"]
    try:
        taken = admin.post(
            "/compute/v2.1/flavors",
            json={"flavor": {"name": "fm-tmp", "ram": 1, "vcpus": 1, "disk": 0}},
        )
        assert taken.status_code == 409
        assert alpha.get(f"/compute/v2.1/flavors/{flavor_id}").status_code == 404
        added = admin.post(
            f"/compute/v2.1/flavors/{flavor_id}/action",
            json={"addTenantAccess": {"tenant": alpha.project_id}},
        )
        assert added.json()["flavor_access"] == [
            {"flavor_id": flavor_id, "tenant_id": alpha.project_id}
        ]
        assert alpha.get(f"/compute/v2.1/flavors/{flavor_id}").status_code == 200
        removed = admin.post(
            f"/compute/v2.1/flavors/{flavor_id}/action",
            json={"removeTenantAccess": {"tenant": alpha.project_id}},
        )
        assert removed.json()["flavor_access"] == []
        refused = alpha.delete(f"/compute/v2.1/flavors/{flavor_id}")
        assert refused.status_code == 403
        assert refused.json()["forbidden"]["message"] == (
            "Policy doesn't allow os_compute_api:os-flavor-manage:delete to be performed."
        )
    finally:
        assert admin.delete(f"/compute/v2.1/flavors/{flavor_id}").status_code == 202
    assert admin.get(f"/compute/v2.1/flavors/{flavor_id}").status_code == 404
