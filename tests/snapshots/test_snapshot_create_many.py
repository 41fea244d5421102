""" "Snapshot selected" on the instance overview: one name pattern, the rules of a
single snapshot asked for every chosen instance, each one's name or why it is
skipped, then one job per instance recorded at once."""

from __future__ import annotations

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from portal.models import Job
from snapshots.jobs import snapshot_notify
from tests.factories import make_image, make_server

URL = reverse("snapshots:snapshot-create-many")
TODAY = f"{timezone.localdate():%Y-%m-%d}"


@pytest.fixture
def sent(monkeypatch):
    messages = []
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: messages.append(k["args"]))
    return messages


@pytest.fixture
def room(people):
    alpha = people["alpha"]
    seats = [
        make_server(project=alpha, name=f"ws-{n:02d}", created_by=people["bob"]) for n in range(4)
    ]
    return {
        "seats": seats,
        "big": make_server(project=alpha, name="ws-big", flavor_ram_mib=512 * 1024),
        "broken": make_server(project=alpha, name="ws-broken", status="ERROR"),
        "beta": make_server(project=people["beta"], name="ws-beta"),
    }


def chosen(*servers, **more):
    return {"selected": [str(s.pk) for s in servers], "next": "/instances/?q=ws", **more}


def test_it_shows_each_name_and_each_reason_to_skip(client, people, room):
    client.force_login(people["alice"])
    response = client.get(URL, chosen(*room["seats"], room["big"], room["broken"], room["beta"]))
    assert response.status_code == 200
    rows = {row.server.name: row for row in response.context["plan"].rows}
    # beta is not alice's project: not even listed.
    assert sorted(rows) == ["ws-00", "ws-01", "ws-02", "ws-03", "ws-big", "ws-broken"]
    assert rows["ws-00"].name == f"ws-00-{TODAY}"
    assert rows["ws-00"].refusal == ""
    assert "at most 256 GiB" in rows["ws-big"].refusal
    assert rows["ws-broken"].refusal == "Cannot snapshot ws-broken while it is ERROR."
    body = response.content.decode()
    assert "4 snapshots will be made; 2 instances skipped." in body
    assert "Snapshot 4 instances" in body


def test_a_member_gets_only_the_instances_they_created(client, people, room):
    mine = make_server(project=people["alpha"], name="ws-bobs", created_by=people["bob"])
    theirs = make_server(project=people["alpha"], name="ws-alices", created_by=people["alice"])
    client.force_login(people["bob"])
    rows = {r.server.name: r for r in client.get(URL, chosen(mine, theirs)).context["plan"].rows}
    assert rows["ws-bobs"].refusal == ""
    assert rows["ws-alices"].refusal.startswith("Members may act only on instances they created")


def test_names_taken_in_the_project_or_twice_in_the_batch_are_skipped(client, people, room):
    alpha = people["alpha"]
    twin = make_server(project=alpha, name="ws-00", created_by=people["bob"])
    make_image(site=alpha.site, project=alpha, snapshot=True, name="ws-01-gold",
               owner_openstack_id=alpha.openstack_id)  # fmt: skip
    client.force_login(people["alice"])
    data = chosen(room["seats"][0], twin, room["seats"][1], pattern="{instance}-gold")
    plan = client.get(URL, data).context["plan"]
    refusals = sorted(row.refusal for row in plan.rows)
    assert refusals == [
        "", "Project alpha already has a snapshot “ws-01-gold”.",
        "“ws-00-gold” is the name of another snapshot of this batch.",
    ]  # fmt: skip


def test_it_records_one_job_per_instance_at_once_and_returns_to_the_overview(
    client, people, room, sent, django_capture_on_commit_callbacks
):
    client.force_login(people["alice"])
    data = chosen(*room["seats"], room["big"], pattern="{instance}-before-upgrade",
                  restart="1", idempotency_key="k1")  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, data)
    assert response.status_code == 302
    assert response["Location"] == "/instances/?q=ws"
    jobs = list(Job.objects.order_by("pk"))
    assert sorted(job.params["name"] for job in jobs) == [
        f"ws-0{n}-before-upgrade" for n in range(4)
    ]
    assert {job.target_server_id for job in jobs} == {s.openstack_id for s in room["seats"]}
    assert all(job.params["restart"] and job.params["batch"] for job in jobs)
    assert all(job.actor == people["alice"] and job.kind == "snapshot.create" for job in jobs)
    # Several jobs a message (advanced in turn), each job once.
    handed = [job for args in sent for job in (args[0] if isinstance(args[0], list) else [args])]
    assert sorted(job_id for job_id, _ in handed) == [job.pk for job in jobs]
    # A second click on the same form starts nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(URL, data)
    assert again.status_code == 302
    assert Job.objects.count() == 4


def test_the_cost_does_not_grow_with_the_number_of_instances(
    client, people, sent, django_capture_on_commit_callbacks
):
    alpha = people["alpha"]
    client.force_login(people["alice"])
    # A session's first page also remembers the user's language (one write, not per page).
    client.get(reverse("instances:instance-list"))

    def queries_for(count: int, prefix: str) -> tuple[int, int]:
        """(queries other than the INSERT of the jobs, those INSERTs)"""
        servers = [make_server(project=alpha, name=f"{prefix}-{n}") for n in range(count)]
        with (
            CaptureQueriesContext(connection) as ctx,
            django_capture_on_commit_callbacks(execute=True),
        ):
            client.post(URL, chosen(*servers, idempotency_key=prefix))
        inserts = sum(q["sql"].startswith('INSERT INTO "portal_job"') for q in ctx.captured_queries)
        return len(ctx.captured_queries) - inserts, inserts

    small, large = queries_for(3, "small"), queries_for(60, "large")
    assert small[0] == large[0]
    assert small[1] == 1
    assert large[1] <= 3  # as many rows per INSERT as the database takes
    assert Job.objects.count() == 63


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"selected": []}, 400, "Select at least one instance to snapshot."),
        ({"pattern": "nightly"}, 400, "The name pattern must contain {instance}"),
        ({"pattern": "{instance}\t-x"}, 200, "The name must not contain control characters"),
        ({"selected": ["12x"]}, 400, "“selected” must hold ids"),
    ],
)
def test_bad_requests_say_why_and_record_nothing(client, people, room, sent, data, status, message):
    client.force_login(people["alice"])
    payload = {**chosen(room["seats"][0]), **data, "idempotency_key": "k"}
    response = client.post(URL, payload)
    if status == 200:  # every instance skipped: the page says why, nothing recorded
        status = 409
    assert response.status_code == status
    assert message in response.content.decode()
    assert not Job.objects.exists()
    assert not sent


def test_all_matching_is_capped(client, people, room, monkeypatch):
    monkeypatch.setattr("snapshots.views.SNAPSHOT_MANY_MAX", 3)
    client.force_login(people["alice"])
    response = client.get(URL, {"all_matching": "1", "q": "ws-0", "filtered": "1"})
    assert response.status_code == 400
    assert "More than 3 instances match; snapshot at most 3 at once" in response.content.decode()
    response = client.get(URL, {"all_matching": "1", "q": "ws-big", "filtered": "1"})
    assert [row.server.name for row in response.context["plan"].rows] == ["ws-big"]


def test_a_batch_mails_failures_only(people, room):
    job = Job.objects.create(
        kind="snapshot.create", actor=people["alice"], project=people["alpha"],
        site=people["alpha"].site, status=Job.Status.SUCCEEDED,
        params={"name": "ws-00-x", "batch": True},
    )  # fmt: skip
    snapshot_notify(job)
    assert mail.outbox == []
    job.status, job.error = Job.Status.FAILED, "Uploading the image: killed"
    snapshot_notify(job)
    assert [m.subject for m in mail.outbox] == ["Snapshot “ws-00-x” failed"]
