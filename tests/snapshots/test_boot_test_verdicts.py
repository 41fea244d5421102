"""What a boot test's console tells, with the gateway mocked: only what the image
printed says "does not boot"; a console the cloud does not offer or never has
ready, or one that stays empty, says "not tested", with the reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from images.models import BootTest
from portal import cloud
from portal.jobs import job_advance, job_kind_get, step_run_once
from portal.models import Job
from portal.texts import english
from snapshots.verify import step_verify_console

EARLY_KERNEL = "[    0.000000] Linux version 5.15.0-97-generic (buildd@lcy02-amd64-033)\n"


@pytest.fixture
def console_job(people, settings):
    """A boot test whose instance went ACTIVE longer ago than the limit allows."""
    settings.JOB_BOOT_TEST_SECONDS = 60
    long_ago = (timezone.now() - timedelta(seconds=61)).isoformat()
    return Job.objects.create(
        kind="snapshot.verify", actor=people["alice"], project=people["alpha"],
        site=people["site"], params={"image_id": "img-1", "verify": True},
        state={"image_id": "img-1", "boot_test": {
            "flavor_id": "f-tiny", "flavor_name": "de.NBI tiny", "server_id": "s-test",
            "requested_at": long_ago, "booted_at": long_ago, "active_at": long_ago,
        }},
    )  # fmt: skip


def console_answers(monkeypatch, answer) -> None:
    """cloud.server_console_output returns `answer`, or raises it."""

    def console_output(site, *, server_id, length=60):
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(cloud, "server_console_output", console_output)


@pytest.mark.parametrize(
    ("answer", "outcome", "reason"),
    [
        ("", "skipped", "the serial console stayed empty for 60 s after ACTIVE "
                        "(the image may not write to ttyS0)"),
        (cloud.BadRequest("no console for this hypervisor"), "skipped",
         "the cloud offers no console log (no console for this hypervisor)"),
        (cloud.Conflict("Instance s-test is not ready"), "skipped",
         "the cloud showed no console log within 60 s of ACTIVE (Instance s-test is not ready)"),
        # It printed, so it would have shown a prompt: the image's verdict.
        (EARLY_KERNEL, "failed", "no login prompt within 60 s of ACTIVE"),
    ],
    ids=["empty", "not-offered", "not-ready", "printed-no-prompt"],
)  # fmt: skip
def test_the_verdict_past_the_limit_says_what_the_console_showed(
    console_job, monkeypatch, answer, outcome, reason
):
    console_answers(monkeypatch, answer)
    step_run_once(step_verify_console, console_job)
    test = console_job.state["boot_test"]
    assert (test["outcome"], english(test["reason"])) == (outcome, reason)
    label = BootTest.Outcome(outcome).label
    assert label == {"skipped": "not tested", "failed": "does not boot"}[outcome]


def test_a_silent_console_within_the_limit_outlasts_the_no_progress_limit(
    console_job, monkeypatch, settings
):
    """An unchanging console is no reason for the engine to fail the job: the test's
    own limit (JOB_BOOT_TEST_SECONDS) decides, and ends in a verdict."""
    monkeypatch.setattr("config.celery.app.send_task", lambda *a, **k: None)
    settings.JOB_NO_PROGRESS_SECONDS = 0  # any wait without progress would fail
    console_answers(monkeypatch, "")
    spec = job_kind_get("snapshot.verify")
    console_job.steps = [
        {"name": step.name, "label": step.label, "phase": "forward", "detail": "",
         "status": "done" if n < 3 else "pending", "started_at": None, "finished_at": None}
        for n, step in enumerate(spec.steps)
    ]  # fmt: skip
    console_job.step_index = 3  # verify_console
    console_job.state["boot_test"]["active_at"] = timezone.now().isoformat()
    console_job.save()
    for _ in range(2):
        job_advance(console_job.pk)
    console_job.refresh_from_db()
    assert console_job.status == Job.Status.RUNNING, console_job.error
    assert console_job.steps[3]["status"] == "running"
    assert console_job.steps[3]["runs"] == 2
