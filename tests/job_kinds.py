"""A trivial job kind for tests of the engine's wiring: registered here, never in
production code. The test worker imports this module (`celery worker --include`)."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from portal import cloud
from portal.jobs import JobKind, Step, Wait, job_kind_register
from portal.models import Job


def _ping_wait(job: Job) -> Wait | None:
    """Waits (without holding the worker) until `wait_seconds` after it first ran."""
    first = job.state.setdefault("ping_first_seen", timezone.now().isoformat())
    elapsed = (timezone.now() - datetime.fromisoformat(first)).total_seconds()
    if elapsed < float(job.params.get("wait_seconds", 0)):
        return Wait(progress=f"waiting ({elapsed:.1f}s)")
    return None


def _ping_reply(job: Job) -> None:
    job.result["reply"] = f"pong {job.params.get('message', '')}".strip()


job_kind_register(
    JobKind(
        name="ping",
        steps=(Step("wait", "Waiting", _ping_wait), Step("reply", "Replying", _ping_reply)),
        describe=lambda job: "Ping",
    )
)


def _list_servers(job: Job) -> None:
    """One cloud call at the job's site (for tests of sites that hang)."""
    cloud.server_list(job.site.name)


job_kind_register(
    JobKind(
        name="test.list_servers",
        steps=(Step("list", "Listing the servers", _list_servers),),
        describe=lambda job: "List servers",
    )
)
