"""Retrying the failed seats of a finished launch acts on the machines as they are
now: a seat whose machine went on to run is never replaced, the confirmation says
what is replaced, launched and left alone, and one failure is retried once."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from instances.launch import instance_launch_request
from instances.launch_rules import launch_check
from portal.models import Job
from tests.factories import make_server
from tests.instances.test_launch_access import catalog  # noqa: F401  (fixture)

NAMES = ["ws-anna", "ws-ben", "ws-cem", "ws-dora", "ws-emil"]


def finish(job, machines: dict, outcomes: dict, *, status=Job.Status.FAILED) -> Job:
    """Record `job` as ended the way the launch job does: the machine each seat got
    ({index: mirror row}), each seat's outcome when it ended, and the failed seats."""
    job.state = {
        "servers": {str(i): server.openstack_id for i, server in machines.items()},
        "outcomes": {str(i): outcome for i, outcome in outcomes.items()},
    }
    job.result = {
        "failed_seats": [i for i in range(len(job.params["names"])) if outcomes.get(i) != "active"]
    }
    job.status, job.finished_at = status, timezone.now()
    job.save()
    return job


@pytest.fixture
def launch(people, catalog, monkeypatch):  # noqa: F811
    """A workshop launch that ended while some seats were still building, as the
    mirror shows it now: anna ran at the end; ben was still building when the launch
    gave up and runs now (a participant works on it); cem is ERROR; dora's machine
    was never made; emil is still building."""
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    alice, alpha = people["alice"], people["alpha"]
    plan = launch_check(
        actor=alice, project=alpha, flavor=catalog["small"], image=catalog["ubuntu"],
        prefix="ws", count=5, participants=["Anna", "Ben", "Cem", "Dora", "Emil"],
    )  # fmt: skip
    job = instance_launch_request(actor=alice, plan=plan)
    assert job.params["names"] == NAMES

    def machine(name, status, **fields):
        return make_server(project=alpha, created_by=alice, name=name, status=status, **fields)

    machines = {
        0: machine("ws-anna", "ACTIVE"),
        1: machine("ws-ben", "ACTIVE"),
        2: machine("ws-cem", "ERROR", fault_message="No valid host was found."),
        4: machine("ws-emil", "BUILD", task_state="spawning"),
    }
    outcomes = {0: "active", 2: "failed: No valid host was found.", 3: "failed: Quota exceeded"}
    return {"job": finish(job, machines, outcomes), "machines": machines}


def retry_url(job):
    return reverse("instances:launch-retry", args=[job.pk])


def form_of(body: str) -> dict:
    """The confirmation's form as a browser would post it."""
    return {
        "idempotency_key": re.search(r'name="idempotency_key" value="(\w+)"', body).group(1),
        "seat": re.findall(r'name="seat" value="([^"]+)"', body),
    }


def retries():
    return list(Job.objects.filter(params__retry_of__isnull=False))


def test_the_confirmation_lists_what_is_replaced_launched_and_left_alone(client, people, launch):
    client.force_login(people["alice"])
    response = client.get(retry_url(launch["job"]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "1 ERROR machine will be deleted and launched again" in body
    assert "ws-cem (Cem)" in body
    assert "ERROR: No valid host was found." in body
    assert "1 seat without a machine will be launched" in body
    assert "ws-dora (Dora)" in body
    assert "no machine: Quota exceeded" in body
    assert "ws-ben (Ben): running, not replaced" in body
    assert "ws-emil (Emil): still starting, not retried" in body
    assert "ws-anna" not in body  # it never failed
    assert form_of(body)["seat"] == ["ws-cem", "ws-dora"]
    assert "Retry 2 seats" in body
    assert retries() == []  # a GET starts nothing


def test_a_retry_replaces_the_error_machine_and_never_one_that_runs_now(client, people, launch):
    client.force_login(people["alice"])
    # Even a form that names every failed seat (an old page) leaves ben and emil alone.
    form = {"idempotency_key": "k1", "seat": ["ws-ben", "ws-cem", "ws-dora", "ws-emil"]}
    response = client.post(retry_url(launch["job"]), form)
    (retry,) = retries()
    assert response.status_code == 302
    assert response.url == reverse("job-detail", args=[retry.pk])
    assert retry.params["names"] == ["ws-cem", "ws-dora"]
    assert retry.params["participants"] == ["Cem", "Dora"]
    cem = launch["machines"][2]
    assert retry.params["replaces"] == [{"id": cem.openstack_id, "name": "ws-cem"}]


def test_a_seat_that_recovered_after_the_confirmation_is_left_alone(client, people, launch):
    client.force_login(people["alice"])
    form = form_of(client.get(retry_url(launch["job"])).content.decode())
    cem = launch["machines"][2]
    cem.status, cem.fault_message = "ACTIVE", ""  # an operator reset and rebooted it
    cem.save()
    client.post(retry_url(launch["job"]), form)
    (retry,) = retries()
    assert retry.params["names"] == ["ws-dora"]
    assert retry.params["replaces"] == []

    # Nothing failed any more among what was shown: refused, with the reason, no job.
    dora = make_server(project=people["alpha"], name="ws-dora", status="ACTIVE")
    job = launch["job"]
    job.state["servers"]["3"] = dora.openstack_id
    job.save()
    Job.objects.filter(pk=retry.pk).delete()
    response = client.post(retry_url(job), {**form, "idempotency_key": "k2"})
    assert response.status_code == 409
    assert "Nothing to retry: ws-cem: running, not replaced" in response.content.decode()
    assert retries() == []


def test_the_job_page_form_posted_twice_starts_one_retry(client, people, launch):
    client.force_login(people["alice"])
    page = client.get(reverse("job-detail", args=[launch["job"].pk])).content.decode()
    assert f'href="{retry_url(launch["job"])}"' in page
    assert "Retry 2 failed seats…" in page
    form = form_of(client.get(retry_url(launch["job"])).content.decode())
    first = client.post(retry_url(launch["job"]), form)
    second = client.post(retry_url(launch["job"]), form)  # a double click, a reload
    (retry,) = retries()
    assert first.url == second.url == reverse("job-detail", args=[retry.pk])


def test_a_second_retry_of_the_same_failures_is_sent_to_the_first(client, people, launch):
    client.force_login(people["alice"])
    form = form_of(client.get(retry_url(launch["job"])).content.decode())
    client.post(retry_url(launch["job"]), form)
    (retry,) = retries()
    # Another tab (another key), or another admin of the project: refused, sent to it.
    client.force_login(people["admin"])
    response = client.post(retry_url(launch["job"]), {**form, "idempotency_key": "other-tab"})
    assert response.status_code == 302
    assert response.url == reverse("job-detail", args=[retry.pk])
    message = [str(m) for m in get_messages(response.wsgi_request)][-1]
    assert message.startswith(f"These seats were launched again already, by job #{retry.pk}")
    assert retries() == [retry]

    # The launch's page no longer offers it; it names the retry instead.
    page = client.get(reverse("job-detail", args=[launch["job"].pk])).content.decode()
    assert "Retry 2 failed seats" not in page
    assert f'Seats launched again by <a href="/jobs/{retry.pk}/">job #{retry.pk}</a>' in page
    confirm = client.get(retry_url(launch["job"])).content.decode()
    assert f"ws-cem (Cem): launched again by job #{retry.pk}" in confirm
    assert 'name="seat"' not in confirm

    # Until the retry itself has failed seats: those are retried from its page.
    finish(retry, {}, {0: "active", 1: "failed: Quota exceeded"})
    page = client.get(reverse("job-detail", args=[retry.pk])).content.decode()
    assert "Retry 1 failed seat…" in page


def test_delete_failed_deletes_only_the_error_machines(client, people, launch):
    client.force_login(people["alice"])
    url = reverse("instances:launch-failed-delete", args=[launch["job"].pk])
    body = client.get(url).content.decode()
    assert "1 ERROR machine will be deleted" in body
    assert "ws-ben (Ben): running, not replaced" in body
    form = form_of(body)
    assert form["seat"] == ["ws-cem"]
    client.post(url, {**form, "seat": ["ws-ben", "ws-cem", "ws-emil"]})  # an old page's list
    (delete,) = Job.objects.filter(kind="instances.delete")
    assert [s["name"] for s in delete.params["servers"]] == ["ws-cem"]


def test_only_the_launcher_or_a_project_admin_may_retry(client, people, launch):
    client.force_login(people["bob"])  # a member who did not launch it
    response = client.get(retry_url(launch["job"]))
    assert response.status_code == 403
    assert 'name="seat"' not in response.content.decode()
    page = client.get(reverse("job-detail", args=[launch["job"].pk])).content.decode()
    assert "Retry" not in page
    assert client.post(retry_url(launch["job"]), {"seat": ["ws-cem"]}).status_code == 403
    client.force_login(people["carol"])  # not in the project
    assert client.get(retry_url(launch["job"])).status_code == 404
    assert retries() == []


def test_a_retry_post_without_the_confirmed_seats_is_refused(client, people, launch):
    client.force_login(people["alice"])
    response = client.post(retry_url(launch["job"]), {"idempotency_key": "k"})
    assert response.status_code == 400
    assert "Choose the seats on the confirmation page." in response.content.decode()
    too_many = client.post(retry_url(launch["job"]), {"seat": [f"x{n}" for n in range(101)]})
    assert too_many.status_code == 400
    assert retries() == []
