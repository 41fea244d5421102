"""Mails are written in the language the user last used the portal in: a worker sees
no request, so the portal keeps that language (portal.preferences) as they browse."""

from __future__ import annotations

from django.core import mail
from django.urls import reverse

from portal.models import Job, Preference
from snapshots.jobs import snapshot_notify


def failed_snapshot_job(people) -> Job:
    return Job.objects.create(
        kind="snapshot.create", actor=people["alice"], project=people["alpha"],
        site=people["alpha"].site, status=Job.Status.FAILED, error="Uploading the image: killed",
        params={"name": "course-ready"},
    )  # fmt: skip


def test_a_user_browsing_in_german_gets_the_mail_in_german(client, people):
    client.force_login(people["alice"])
    client.get(reverse("instances:instance-list"), HTTP_ACCEPT_LANGUAGE="de")
    snapshot_notify(failed_snapshot_job(people))
    (message,) = mail.outbox
    assert "fehlgeschlagen" in message.subject
    assert "course-ready" in message.subject


def test_the_switch_back_to_english_is_remembered_too(client, people):
    client.force_login(people["alice"])
    client.get(reverse("instances:instance-list"), HTTP_ACCEPT_LANGUAGE="de")
    client.cookies["django_language"] = "en"
    client.get(reverse("instances:instance-list"), HTTP_ACCEPT_LANGUAGE="de")
    snapshot_notify(failed_snapshot_job(people))
    assert [m.subject for m in mail.outbox] == ["Snapshot “course-ready” failed"]


def test_a_user_who_never_came_gets_english_and_browsing_writes_once(client, people):
    snapshot_notify(failed_snapshot_job(people))
    assert [m.subject for m in mail.outbox] == ["Snapshot “course-ready” failed"]
    client.force_login(people["alice"])
    for _ in range(3):
        client.get(reverse("instances:instance-list"), HTTP_ACCEPT_LANGUAGE="de")
    assert list(Preference.objects.filter(user=people["alice"]).values_list("key", "value")) == [
        ("language", "de")
    ]
