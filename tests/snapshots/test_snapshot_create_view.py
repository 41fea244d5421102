from __future__ import annotations

import pytest
from django.urls import reverse

from portal.models import Job
from tests.factories import make_server


@pytest.fixture
def vm(people):
    return make_server(project=people["alpha"], name="workbench", created_by=people["bob"])


def url(vm):
    return reverse("snapshots:snapshot-create", args=[vm.pk])


def test_it_shows_the_form_with_ram_and_the_stop_warning(client, people, vm):
    client.force_login(people["bob"])
    response = client.get(url(vm))
    assert response.status_code == 200
    body = response.content.decode()
    assert "4 GiB RAM" in body
    assert "limit 256 GiB" in body
    assert "stops workbench before the snapshot" in body
    assert response.context["form"].initial["restart"] is True


def test_a_stopped_instance_is_not_restarted_by_default(client, people, vm):
    vm.status = "SHUTOFF"
    vm.save()
    client.force_login(people["bob"])
    response = client.get(url(vm))
    assert response.context["form"].initial["restart"] is False
    assert "stops workbench" not in response.content.decode()


def test_htmx_gets_the_modal(client, people, vm):
    client.force_login(people["bob"])
    response = client.get(url(vm), headers={"HX-Request": "true"})
    assert 'role="dialog"' in response.content.decode()


def test_the_dialog_suggests_a_unique_name_of_instance_and_date(client, people, vm):
    from django.utils import timezone

    from tests.factories import make_image

    today = f"{vm.name}-{timezone.localdate():%Y-%m-%d}"
    client.force_login(people["bob"])
    assert client.get(url(vm)).context["form"]["name"].value() == today
    make_image(site=vm.site, project=vm.project, snapshot=True, name=today,
               owner_openstack_id=vm.project_openstack_id)  # fmt: skip
    assert client.get(url(vm)).context["form"]["name"].value() == f"{today}-2"


def test_it_creates_the_job_and_redirects(
    client, people, vm, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: sent.append(a))
    client.force_login(people["bob"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url(vm), {"name": "gold", "restart": "on"})
    assert response.status_code == 302
    job = Job.objects.get()
    assert job.params["name"] == "gold"
    assert job.params["restart"] is True
    assert len(sent) == 1  # handed to a worker after commit


def test_htmx_post_redirects_by_header(
    client, people, vm, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    client.force_login(people["bob"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url(vm), {"name": "gold"}, headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("instances:instance-detail", args=[vm.pk])


def test_a_bad_name_is_a_400_with_the_message_and_no_job(client, people, vm):
    client.force_login(people["bob"])
    response = client.post(url(vm), {"name": "  "})
    assert response.status_code == 400
    assert "Enter a name" in response.content.decode()
    assert Job.objects.count() == 0


def test_live_name_check(client, people, vm):
    from tests.factories import make_image

    make_image(site=vm.site, project=people["alpha"], snapshot=True, name="taken")
    client.force_login(people["bob"])
    ok = client.get(reverse("snapshots:snapshot-name-check", args=[vm.pk]), {"name": "fresh"})
    assert "available" in ok.content.decode()
    taken = client.get(reverse("snapshots:snapshot-name-check", args=[vm.pk]), {"name": "Taken"})
    assert "already has a snapshot named" in taken.content.decode()


def test_outsiders_and_missing_instances_get_404(client, people, vm):
    client.force_login(people["carol"])
    assert client.get(url(vm)).status_code == 404
    assert client.post(url(vm), {"name": "x"}).status_code == 404
    assert client.get(reverse("snapshots:snapshot-create", args=[99999])).status_code == 404


def test_a_member_on_someone_elses_instance_gets_403(client, people):
    theirs = make_server(project=people["alpha"], created_by=people["alice"])
    client.force_login(people["bob"])
    response = client.post(url(theirs), {"name": "x"})
    assert response.status_code == 403
    assert Job.objects.count() == 0


def test_it_requires_login_and_rejects_other_methods(client, people, vm):
    assert client.get(url(vm)).status_code == 302
    client.force_login(people["bob"])
    assert client.delete(url(vm)).status_code == 405


def test_the_form_opens_whatever_snapshots_already_exist(client, people, vm):
    from tests.factories import make_image

    # Opening the form checks the instance, not a made-up name.
    make_image(site=vm.site, project=people["alpha"], snapshot=True, name="placeholder")
    client.force_login(people["bob"])
    response = client.get(url(vm))
    assert response.status_code == 200
    assert response.context["refusal"] is None


def test_with_the_broker_down_the_request_still_gets_its_page(
    transactional_db, client, people, vm, monkeypatch
):
    """Redis not answering at submit: the job is recorded (the sweep sends it later),
    and the user is taken on as usual, never shown a 500."""
    from kombu.exceptions import OperationalError

    def down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr("config.celery.app.send_task", down)
    client.force_login(people["bob"])
    response = client.post(url(vm), {"name": "gold", "restart": "on"})
    assert response.status_code == 302
    assert Job.objects.get().status == Job.Status.PENDING
