"""An outsider learns nothing from an id: an object in a project the user is not in
answers exactly as an id that does not exist (404, the same page), and jobs are
seen through membership, not authorship (issue #21)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from portal.models import Job, Membership
from snapshots.models import Snapshot
from tests.factories import make_image, make_server
from workshops.models import Workshop

MISSING = 987654

# (url name, method, which of alpha's objects its id names, extra data)
PER_OBJECT = [
    ("instances:instance-detail", "get", "server", {}),
    ("instances:instance-row", "get", "server", {}),
    ("instances:instance-stop", "post", "server", {}),
    ("instances:instance-start", "post", "server", {}),
    ("snapshots:snapshot-create", "get", "server", {}),
    ("snapshots:snapshot-create", "post", "server", {"name": "x"}),
    ("snapshots:snapshot-name-check", "get", "server", {"name": "x"}),
    ("snapshots:snapshot-verify", "post", "snapshot", {}),
    ("snapshots:snapshot-project-list", "get", "project", {}),
    ("job-detail", "get", "job", {}),
    ("instances:launch-retry", "get", "job", {}),
    ("instances:launch-retry", "post", "job", {"seat": "ws-anna"}),
    ("instances:launch-failed-delete", "post", "job", {"seat": "ws-anna"}),
    ("workshops:workshop-detail", "get", "workshop", {}),
    ("workshops:workshop-csv", "get", "workshop", {}),
    ("workshops:workshop-handout", "get", "workshop", {}),
    ("workshops:workshop-retry", "get", "workshop", {}),
    ("workshops:workshop-retry", "post", "workshop", {"seat": "1", "upto": "1"}),
    ("workshops:workshop-add", "post", "workshop", {"participants": "Anna"}),
    ("workshops:workshop-teardown", "post", "workshop", {}),
]

# Project ids in a query or a form rather than in the path.
PROJECT_PARAMS = [
    ("workshops:workshop-list", "get", {}),
    ("snapshots:snapshot-delete", "get", {"selected": "1"}),
    ("snapshots:snapshot-delete", "post", {"selected": "1"}),
]


@pytest.fixture
def alphas(people):
    """One of everything in project alpha (alice's), none of it visible to carol (beta)."""
    alpha, alice = people["alpha"], people["alice"]
    server = make_server(project=alpha, created_by=alice)
    image = make_image(site=people["site"], project=alpha, snapshot=True, created_by=alice)
    job = Job.objects.create(
        kind="instances.launch", actor=alice, project=alpha, site=people["site"],
        status="failed", params={"names": ["ws-anna"]},
    )  # fmt: skip
    workshop = Workshop.objects.create(
        name="rna", project=alpha, site=people["site"], image_name="gold",
        flavor_name="small", prefix="ws", created_by=alice, launch_job=job,
    )  # fmt: skip
    return {
        "server": server, "snapshot": Snapshot.objects.get(pk=image.pk), "job": job,
        "workshop": workshop, "project": alpha,
    }  # fmt: skip


def _page(response) -> str:
    """The body without what differs between any two requests: the CSRF token."""
    body = response.content.decode()
    return re.sub(r'(csrfmiddlewaretoken" value="|"X-CSRFToken": ")[^"]+', r"\1TOKEN", body)


def _ask(client, method, url, data):
    return getattr(client, method)(url, data)


@pytest.mark.parametrize(("name", "method", "kind", "data"), PER_OBJECT)
def test_an_object_of_another_project_is_not_found_like_a_missing_one(
    client, people, alphas, name, method, kind, data
):
    foreign_id = alphas[kind].pk
    client.force_login(people["carol"])  # beta only
    foreign = _ask(client, method, reverse(name, args=[foreign_id]), data)
    missing = _ask(client, method, reverse(name, args=[MISSING]), data)
    assert foreign.status_code == missing.status_code == 404
    assert _page(foreign) == _page(missing)


@pytest.mark.parametrize(("name", "method", "data"), PROJECT_PARAMS)
def test_a_project_id_of_another_project_is_not_found_like_a_missing_one(
    client, people, name, method, data
):
    alpha = people["alpha"].pk
    client.force_login(people["carol"])
    foreign = _ask(client, method, reverse(name), {**data, "project": alpha})
    missing = _ask(client, method, reverse(name), {**data, "project": MISSING})
    assert foreign.status_code == missing.status_code == 404
    assert _page(foreign) == _page(missing)


def test_a_member_who_may_not_act_still_gets_403(client, people, alphas):
    """bob sees alice's instance (same project): refusing him tells him nothing new."""
    client.force_login(people["bob"])
    server = alphas["server"]
    assert client.get(reverse("instances:instance-detail", args=[server.pk])).status_code == 200
    assert client.post(reverse("instances:instance-stop", args=[server.pk])).status_code == 403
    workshop = alphas["workshop"]
    teardown = reverse("workshops:workshop-teardown", args=[workshop.pk])
    assert client.post(teardown).status_code == 403


def test_a_removed_member_no_longer_sees_the_jobs_they_started(client, people):
    job = Job.objects.create(
        kind="server.stop", actor=people["bob"], project=people["alpha"], site=people["site"],
        params={"name": "bobs-vm"}, status="succeeded",
    )  # fmt: skip
    client.force_login(people["bob"])
    assert job in client.get(reverse("job-list")).context["jobs"]
    assert client.get(reverse("job-detail", args=[job.pk])).status_code == 200
    Membership.objects.filter(user=people["bob"], project=people["alpha"]).delete()
    assert job not in client.get(reverse("job-list")).context["jobs"]
    assert client.get(reverse("job-detail", args=[job.pk])).status_code == 404


def test_a_job_without_a_project_is_seen_by_its_actor_and_superusers_only(client, people):
    """A bulk delete across projects records no project: no membership to follow."""
    job = Job.objects.create(
        kind="instances.delete", actor=people["bob"], project=None, status="succeeded"
    )
    for user, seen in (("bob", True), ("admin", True), ("alice", False), ("carol", False)):
        client.force_login(people[user])
        assert (job in client.get(reverse("job-list")).context["jobs"]) is seen, user
        status = client.get(reverse("job-detail", args=[job.pk])).status_code
        assert status == (200 if seen else 404), user
