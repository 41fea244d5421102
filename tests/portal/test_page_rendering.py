"""What the pages' cheaper rendering must keep: every row and every filter choice as
before, a change to the mirror shown on the next view, and no user's choices shown
to another (the filter widgets are remembered per distinct state, see
portal/form_rendering.py)."""

from __future__ import annotations

from django.test import override_settings
from django.urls import reverse

from portal.models import Membership, Project
from tests.factories import make_image


def _snapshots(people, n):
    for _ in range(n):
        make_image(site=people["site"], project=people["alpha"], snapshot=True,
                   created_by=people["bob"])  # fmt: skip


def test_the_snapshot_table_draws_no_template_per_row(client, people):
    # A row template cost more than half the page's CPU (snapshots.tables.SnapshotRows).
    client.force_login(people["alice"])
    _snapshots(people, 2)
    client.get(reverse("snapshots:snapshot-list"), {"per_page": "50"})  # widgets remembered
    few = client.get(reverse("snapshots:snapshot-list"), {"per_page": "50"})
    _snapshots(people, 20)
    many = client.get(reverse("snapshots:snapshot-list"), {"per_page": "50"})
    assert many.content.decode().count('name="selected"') == 22
    assert len(many.templates) == len(few.templates)


def test_each_row_form_carries_a_valid_csrf_token(people):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(people["alice"])
    _snapshots(people, 1)
    body = client.get(reverse("snapshots:snapshot-list")).content.decode()
    token = body.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    snapshot = people["alpha"].images.get()
    response = client.post(
        reverse("snapshots:snapshot-verify", args=[snapshot.pk]),
        {"csrfmiddlewaretoken": token, "next": "/snapshots/"},
    )
    assert response.status_code != 403


def _project_choices(client) -> str:
    body = client.get(reverse("instances:instance-list")).content.decode()
    return body.split('name="project"')[1].split("</select>")[0]


@override_settings(FORM_RENDERER="portal.form_rendering.RememberingRenderer")
def test_a_project_added_to_the_mirror_shows_in_the_filter_on_the_next_view(client, people):
    client.force_login(people["alice"])
    assert "gamma" not in _project_choices(client)
    gamma = Project.objects.create(site=people["site"], openstack_id="p-gamma", name="gamma")
    Membership.objects.create(user=people["alice"], project=gamma, role="member")
    assert "gamma" in _project_choices(client)
    gamma.name = "gamma-renamed"
    gamma.save()
    assert "gamma-renamed" in _project_choices(client)


@override_settings(FORM_RENDERER="portal.form_rendering.RememberingRenderer")
def test_one_user_never_sees_another_users_filter_choices(client, people):
    client.force_login(people["alice"])
    alice_sees = _project_choices(client)
    client.force_login(people["carol"])
    carol_sees = _project_choices(client)
    assert "alpha" in alice_sees
    assert "beta" not in alice_sees
    assert "beta" in carol_sees
    assert "alpha" not in carol_sees


def test_a_widget_in_the_same_state_is_drawn_from_its_template_once(client, people):
    from unittest import mock

    from django.forms.renderers import DjangoTemplates, get_default_renderer

    client.force_login(people["alice"])
    client.get(reverse("instances:instance-list"))  # each widget drawn once, remembered
    with mock.patch.object(DjangoTemplates, "render", wraps=get_default_renderer().render) as drawn:
        client.get(reverse("instances:instance-list"))
    assert not [c for c in drawn.call_args_list if c.args[0].startswith("django/forms/widgets/")]


def test_the_instance_overview_draws_no_template_per_row(client, people):
    # Row templates cost a third of the overview's CPU (instances.tables.ServerRows).
    from tests.factories import make_server

    client.force_login(people["bob"])
    make_server(project=people["alpha"], created_by=people["bob"])
    client.get(reverse("instances:instance-list"), {"per_page": "50"})  # widgets remembered
    few = client.get(reverse("instances:instance-list"), {"per_page": "50"})
    for _ in range(20):
        make_server(project=people["alpha"], created_by=people["bob"])
    many = client.get(reverse("instances:instance-list"), {"per_page": "50"})
    assert many.content.decode().count('name="selected"') == 21
    assert len(many.templates) == len(few.templates)
