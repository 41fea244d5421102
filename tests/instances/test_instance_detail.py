from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.models import Job
from tests.factories import make_image, make_server


@pytest.fixture
def vm(people):
    base = make_image(site=people["site"], name="Ubuntu-22.04-LTS")
    return make_server(
        project=people["alpha"], name="workbench", created_by=people["bob"],
        image_openstack_id=base.openstack_id, metadata={"purpose": "course"},
    )  # fmt: skip


def url(server):
    return reverse("instances:instance-detail", args=[server.pk])


def test_it_shows_general_information(client, people, vm):
    client.force_login(people["bob"])
    response = client.get(url(vm))
    assert response.status_code == 200
    body = response.content.decode()
    for text in [
        "workbench", "alpha", "Bielefeld", vm.openstack_id, 'data-copy="' + vm.openstack_id,
        "bob", "de.NBI small: 2 vCPUs, 4 GiB RAM, 50 GB disk", "Ubuntu-22.04-LTS",
        "purpose=course", "Create snapshot",
    ]:  # fmt: skip
        assert text in body, text


def test_it_lists_snapshots_and_the_event_log(client, people, vm):
    make_image(site=vm.site, project=people["alpha"], snapshot=True, name="workbench-gold",
               source_server_openstack_id=vm.openstack_id)  # fmt: skip
    Job.objects.create(kind="snapshot.create", actor=people["alice"], project=people["alpha"],
                       site=vm.site, target_server_id=vm.openstack_id, status="failed",
                       error="Uploading: the cloud could not save the snapshot",
                       params={"name": "x"})  # fmt: skip
    client.force_login(people["bob"])
    body = client.get(url(vm)).content.decode()
    assert "workbench-gold" in body
    assert "Create snapshot “x”" in body
    assert "could not save the snapshot" in body
    assert "alice" in body


def test_a_running_job_is_shown_and_the_page_polls(client, people, vm):
    Job.objects.create(kind="snapshot.create", actor=people["bob"], project=people["alpha"],
                       site=vm.site, target_server_id=vm.openstack_id, status="running",
                       progress="uploading", params={"name": "y"},
                       steps=[{"name": "upload", "label": "Uploading", "status": "running",
                               "started_at": None, "finished_at": None, "detail": ""}])  # fmt: skip
    client.force_login(people["bob"])
    body = client.get(url(vm)).content.decode()
    assert "Running:" in body
    assert "uploading" in body
    assert "?part=live" in body
    assert reverse("snapshots:snapshot-create", args=[vm.pk]) not in body  # busy: no actions
    live = client.get(url(vm), {"part": "live"}, headers={"HX-Request": "true"})
    assert 'id="instance-live"' in live.content.decode()


def test_a_vanished_instance_shows_as_deleted(client, people, vm):
    vm.deleted_at = timezone.now()
    vm.save()
    client.force_login(people["alice"])
    response = client.get(url(vm))
    assert response.status_code == 200
    assert "no longer exists in the cloud" in response.content.decode()
    assert "Create snapshot" not in response.content.decode()


def test_access(client, people, vm):
    assert client.get(url(vm)).status_code == 302
    client.force_login(people["carol"])
    assert client.get(url(vm)).status_code == 404
    assert client.get(reverse("instances:instance-detail", args=[99999])).status_code == 404
    client.force_login(people["admin"])
    assert client.get(url(vm)).status_code == 200
    assert client.post(url(vm)).status_code == 405


def test_stop_and_start_are_post_only_and_checked(
    client, people, vm, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    stop = reverse("instances:instance-stop", args=[vm.pk])
    client.force_login(people["bob"])
    assert client.get(stop).status_code == 405
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(stop)
    assert response.status_code == 302
    assert Job.objects.get().kind == "server.stop"
    # Starting a running instance is refused with a message, no job.
    response = client.post(reverse("instances:instance-start", args=[vm.pk]))
    assert response.status_code == 409
    assert Job.objects.count() == 1
    # Someone else's instance: 403 for a member.
    theirs = make_server(project=people["alpha"], created_by=people["alice"])
    assert client.post(reverse("instances:instance-stop", args=[theirs.pk])).status_code == 403


def test_next_must_stay_on_this_site(
    client, people, vm, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    client.force_login(people["bob"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("instances:instance-stop", args=[vm.pk]), {"next": "https://evil.example/"}
        )
    assert response["Location"] == url(vm)
