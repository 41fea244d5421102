"""What an attacker with a login, and an operator, would try (issue: bounded inputs,
throttled logins, authorship we own). Each test says what happens on each bad input."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from instances.models import Server
from instances.naming import instance_names
from instances.participants import MAX_COUNT
from instances.services import servers_store
from portal import cloud
from portal.mirror.authorship import authorship_record
from portal.models import Job
from tests.factories import make_image, make_server
from tests.instances.test_instance_new import catalog  # noqa: F401  (fixture)

NEW = reverse("instances:instance-new")


# --- 1. Work that grows with a value is bounded first -------------------------------


def test_a_huge_count_previews_at_most_the_maximum(client, people, catalog):  # noqa: F811
    client.force_login(people["alice"])
    response = client.get(NEW, {"count": "1000000000000", "name": "ws"})
    assert response.status_code == 200
    assert response.context["count"] == MAX_COUNT
    assert len(response.context["names"]) == MAX_COUNT


def test_thousands_of_participants_are_cut_with_a_warning(client, people, catalog):  # noqa: F811
    client.force_login(people["alice"])
    response = client.get(NEW, {"participants": "\n".join(["Anna"] * 5000)})
    assert response.status_code == 200
    assert len(response.context["names"]) == MAX_COUNT
    assert f"At most {MAX_COUNT} participants" in response.content.decode()


def test_repeated_participants_get_numbered_names_in_one_pass():
    names = instance_names(prefix="ws", participants=["Anna"] * MAX_COUNT, count=MAX_COUNT)
    assert names[:3] == ["ws-anna", "ws-anna-2", "ws-anna-3"]
    assert names[-1] == "ws-anna-100"
    assert len(set(names)) == MAX_COUNT
    # A literal "Anna 2" after the numbering took "ws-anna-2" still gets a name of its own.
    names = instance_names(prefix="ws", participants=["Anna", "Anna", "Anna 2"], count=3)
    assert names == ["ws-anna", "ws-anna-2", "ws-anna-2-2"]


def test_a_post_with_too_many_participants_is_refused_without_a_job(
    client,
    people,
    catalog,  # noqa: F811
):
    client.force_login(people["alice"])
    data = {
        "project": people["alpha"].pk, "flavor": catalog["flavors"]["small"].pk,
        "image": catalog["images"]["gold"].pk, "count": "1",
        "participants": "\n".join(f"P{n}" for n in range(MAX_COUNT + 1)),
    }  # fmt: skip
    response = client.post(NEW, data)
    assert response.status_code == 400
    assert f"between 1 and {MAX_COUNT}" in response.content.decode()
    assert not Job.objects.exists()


# --- 2. Crafted numbers are a 400 or 404 with a message, never a 500 -------------------


@pytest.mark.parametrize("value", ["²", "-1", "1e3", " 12a", "99999999999999999999", "0x10"])
def test_crafted_ids_on_the_launch_page_are_a_400(client, people, catalog, value):  # noqa: F811
    client.force_login(people["alice"])
    for name in ("project", "image", "flavor"):
        response = client.get(NEW, {name: value})
        assert response.status_code == 400, (name, value)
        assert f"“{name}” must be an id" in response.content.decode()


def test_crafted_ids_in_the_snapshot_delete_form_are_a_400(client, people):
    client.force_login(people["alice"])
    url = reverse("snapshots:snapshot-delete")
    for value in ("²", "99999999999999999999", "-3"):
        response = client.post(url, {"selected": [value]})
        assert response.status_code == 400
        assert "“selected” must hold ids" in response.content.decode()
    response = client.post(url, {"selected": [str(n) for n in range(1, 502)]})
    assert response.status_code == 400
    assert "select all matching" in response.content.decode()
    assert not Job.objects.exists()


def test_a_nul_character_in_any_parameter_is_a_400(client, people, catalog):  # noqa: F811
    """PostgreSQL text cannot hold NUL: a search box passed to a query raw was a 500."""
    client.force_login(people["alice"])
    response = client.get(NEW, {"flavor_q": "a\x00"})
    assert response.status_code == 400
    assert "“flavor_q” contains a NUL character." in response.content.decode()
    response = client.post(reverse("snapshots:snapshot-create-many"), {"pattern": "\x00"})
    assert response.status_code == 400
    assert not Job.objects.exists()
    assert client.get(NEW, {"flavor_q": "small"}).status_code == 200


def test_a_crafted_job_banner_id_is_a_400(client, people):
    client.force_login(people["alice"])
    url = reverse("snapshots:snapshot-list")
    assert client.get(url, {"job": "²"}).status_code == 400
    assert client.get(url, {"job": "123"}).status_code == 200  # a stale id: no banner


def test_the_row_poll_index_is_bounded(client, people):
    # A row in transition asks for itself again, later each time (the delay it prints).
    vm = make_server(project=people["alpha"], created_by=people["bob"], status="BUILD")
    client.force_login(people["bob"])
    url = reverse("instances:instance-row", args=[vm.pk])
    assert 'hx-trigger="load delay:2s"' in client.get(url, {"poll": "-5"}).content.decode()
    assert (
        'hx-trigger="load delay:30s"'
        in client.get(url, {"poll": "99999999999999"}).content.decode()
    )
    assert client.get(url, {"poll": "²"}).status_code == 400


@pytest.mark.parametrize(
    "path",
    ["/instances/99999999999999999999/", "/jobs/99999999999999999999/",
     "/snapshots/project/99999999999999999999/", "/instances/launches/99999999999999999999/retry/"],
)  # fmt: skip
def test_ids_too_big_for_the_database_are_a_404(client, people, path):
    client.force_login(people["alice"])
    assert client.get(path).status_code == 404


# --- 3. Login throttling (django-axes) ------------------------------------------


def test_five_wrong_passwords_lock_the_login_until_an_admin_unlocks_it(client, people, settings):
    login = reverse("login")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post(login, {"username": "bob", "password": "wrong"})
        assert response.status_code == 200  # the form again, with its error
    response = client.post(login, {"username": "bob", "password": "wrong"})
    assert response.status_code == 429  # the fifth: locked, and told so
    response = client.post(login, {"username": "bob", "password": "bob"})
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # Another user from the same address is not locked out by bob's attempts.
    assert client.post(login, {"username": "carol", "password": "carol"}).status_code == 302
    client.logout()

    admin_client = type(client)()
    admin_client.force_login(people["admin"])
    changelist = reverse("admin:auth_user_changelist")
    response = admin_client.post(
        changelist, {"action": "unlock_logins", "_selected_action": [people["bob"].pk]}
    )
    assert response.status_code == 302
    assert client.post(login, {"username": "bob", "password": "bob"}).status_code == 302


# --- 4. Authorship is the portal's record, not cloud metadata ----------------------


def _cloud_server(server: Server, **metadata) -> cloud.CloudServer:
    return cloud.CloudServer(
        id=server.openstack_id, name=server.name, status="ACTIVE", task_state=None,
        vm_state="active", power_state=1, project_id=server.project_openstack_id, user_id="u",
        flavor_name="de.NBI small", flavor_vcpus=2, flavor_ram_mib=4096, flavor_disk_gb=50,
        image_id="", addresses=(), metadata=metadata, created_at=None, updated_at=None,
    )  # fmt: skip


def test_cloud_metadata_naming_a_member_gives_them_nothing(client, people):
    """Someone with cloud credentials writes portal_user=bob on a server the portal
    did not make: bob (a member) still may not stop it."""
    site = people["site"]
    vm = make_server(project=people["alpha"])
    servers_store(site, [_cloud_server(vm, portal_user="bob")], complete=False)
    vm.refresh_from_db()
    assert vm.created_by is None
    assert vm.created_by_hint == "bob"
    client.force_login(people["bob"])
    response = client.post(reverse("instances:instance-stop", args=[vm.pk]))
    assert response.status_code == 403
    page = client.get(reverse("instances:instance-detail", args=[vm.pk])).content.decode()
    assert "names “bob”; not verified" in page


def test_changing_the_metadata_of_what_the_portal_made_changes_nothing(client, people):
    site = people["site"]
    vm = make_server(project=people["alpha"])
    authorship_record(site=site, openstack_id=vm.openstack_id, user=people["bob"])
    servers_store(site, [_cloud_server(vm, portal_user="carol")], complete=False)
    vm.refresh_from_db()
    assert vm.created_by == people["bob"]
    snapshot = make_image(site=site, project=people["alpha"], snapshot=True)
    authorship_record(site=site, openstack_id=snapshot.openstack_id, user=people["bob"])
    authorship_record(site=site, openstack_id=snapshot.openstack_id, user=people["carol"])
    from portal.models import Authorship

    assert Authorship.objects.get(openstack_id=snapshot.openstack_id).user == people["bob"]


# --- 5, 6. No secrets in URLs, no writes on GET -------------------------------------


def _get_forms(html: str) -> list[str]:
    return re.findall(r"<form[^>]*method=\"get\".*?</form>", html, flags=re.S)


def test_no_get_form_carries_the_csrf_token(client, people, catalog):  # noqa: F811
    make_image(site=people["site"], project=people["alpha"], snapshot=True)
    client.force_login(people["alice"])
    for url in (NEW, reverse("instances:instance-list"), reverse("snapshots:snapshot-list"),
                reverse("images:image-list")):  # fmt: skip
        html = client.get(url).content.decode()
        assert all("csrfmiddlewaretoken" not in form for form in _get_forms(html)), url
    html = client.get(NEW).content.decode()
    assert 'hx-params="not csrfmiddlewaretoken,idempotency_key"' in html  # the preview's GET
    assert '<form id="launch-form" method="post"' in html


def test_the_launch_preview_without_javascript_posts_and_launches_nothing(
    client,
    people,
    catalog,  # noqa: F811
):
    client.force_login(people["alice"])
    data = {"project": people["alpha"].pk, "flavor": catalog["flavors"]["small"].pk,
            "image": catalog["images"]["gold"].pk, "count": "3", "preview": "1"}  # fmt: skip
    response = client.post(NEW, data)
    assert response.status_code == 200
    assert len(response.context["names"]) == 3
    assert not Job.objects.exists()


# --- 7, 9. Production settings ------------------------------------------------------


def test_pages_carry_a_content_security_policy(client, people):
    client.force_login(people["alice"])
    policy = client.get(reverse("instances:instance-list"))["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert "unsafe-inline" not in policy


def test_templates_have_no_inline_scripts_handlers_or_styles():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "templates"
    offenders = []
    for path in root.rglob("*.html"):
        text = path.read_text()
        if path.name == "500.html":
            continue  # a static page with no script or style at all
        for pattern in (r"<script(?![^>]*\bsrc=)", r"\son[a-z]+=", r"\sstyle=", "javascript:"):
            if re.search(pattern, text):
                offenders.append(f"{path.name}: {pattern}")
    assert offenders == []
