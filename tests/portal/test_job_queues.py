"""A kind with a queue of its own (the image copy's "transfer") gets its messages
there: when it is recorded, and when the recovery sweep hands it on;
other kinds' messages go where they always went."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from images.copy import CopyParams, ImageCopy
from portal.jobs import jobs_recover_stuck
from portal.jobs.sending import ADVANCE_TASK
from portal.models import Job
from tests.job_kinds import Ping


@pytest.fixture
def sent(monkeypatch):
    messages = []

    def send_task(name, args, countdown=0, **options):
        messages.append((name, args[0], options.get("queue", "")))

    monkeypatch.setattr("portal.jobs.sending.current_app.send_task", send_task)
    return messages


def test_a_copy_job_is_sent_to_the_transfer_queue_and_recovered_there(
    people, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = ImageCopy.create(
            actor=people["alice"], project=people["alpha"],
            params=CopyParams(source_site="devcloud2", source_image_id="i-1"),
        )  # fmt: skip
    assert sent == [(ADVANCE_TASK, job.pk, "transfer")]
    overdue = timezone.now() - timedelta(minutes=5)
    Job.objects.filter(pk=job.pk).update(due_at=overdue, heartbeat_at=overdue)
    assert jobs_recover_stuck() == [job.pk]
    assert sent[-1] == (ADVANCE_TASK, job.pk, "transfer")


def test_other_kinds_keep_the_default_queue(people, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = Ping.create(actor=people["alice"], project=people["alpha"])
    assert sent == [(ADVANCE_TASK, job.pk, "")]
    overdue = timezone.now() - timedelta(minutes=5)
    Job.objects.filter(pk=job.pk).update(due_at=overdue, heartbeat_at=overdue)
    assert jobs_recover_stuck() == [job.pk]
    assert sent[-1] == (ADVANCE_TASK, job.pk, "")
