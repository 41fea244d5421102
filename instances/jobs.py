"""Job kinds for instance actions, and the steps other kinds reuse."""

from __future__ import annotations

from instances.models import Server
from instances.services import server_refresh
from portal import cloud
from portal.jobs import JobKind, Step, StepFailed, Wait, job_kind_register
from portal.models import Job


def server_of(job: Job) -> Server:
    """Targeted refresh of the job's server; a server gone from the cloud fails the step."""
    server = server_refresh(job.site, openstack_id=job.target_server_id)
    if server is None or server.is_deleted:
        raise StepFailed("the instance no longer exists")
    return server


def step_stop(job: Job) -> None:
    """Ask Nova to stop the server, unless it is off or already stopping (safe to re-run)."""
    server = server_of(job)
    job.state.setdefault("prior_status", server.status)
    if server.status == "SHUTOFF" or server.task_state == "powering-off":
        return None
    try:
        cloud.server_stop(job.site.name, server_id=server.openstack_id)
    except cloud.Conflict:
        # A duplicate delivery may have stopped it a moment ago: look again.
        server = server_of(job)
        if server.status != "SHUTOFF" and server.task_state != "powering-off":
            raise
    job.state["stopped_by_portal"] = True
    server_refresh(job.site, openstack_id=server.openstack_id)
    return None


def step_wait_shutoff(job: Job) -> Wait | None:
    server = server_of(job)
    if server.status == "SHUTOFF" and not server.task_state:
        return None
    if server.status == "ERROR":
        raise StepFailed(f"the instance went to ERROR: {server.fault_message or 'no reason given'}")
    return Wait(progress="stopping")


def step_start(job: Job) -> None:
    server = server_of(job)
    if server.status == "ACTIVE" or server.task_state == "powering-on":
        return None
    try:
        cloud.server_start(job.site.name, server_id=server.openstack_id)
    except cloud.Conflict:
        server = server_of(job)
        if server.status != "ACTIVE" and server.task_state != "powering-on":
            raise
    server_refresh(job.site, openstack_id=server.openstack_id)
    return None


def step_wait_active(job: Job) -> Wait | None:
    server = server_of(job)
    if server.status == "ACTIVE" and not server.task_state:
        return None
    if server.status == "ERROR":
        raise StepFailed(f"the instance went to ERROR: {server.fault_message or 'no reason given'}")
    return Wait(progress="starting")


job_kind_register(
    JobKind(
        name="server.stop",
        steps=(
            Step("stop", "Stopping", step_stop),
            Step("wait", "Waiting for SHUTOFF", step_wait_shutoff),
        ),
    )
)
job_kind_register(
    JobKind(
        name="server.start",
        steps=(
            Step("start", "Starting", step_start),
            Step("wait", "Waiting for ACTIVE", step_wait_active),
        ),
    )
)
