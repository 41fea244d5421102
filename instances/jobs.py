"""Job kinds for instance actions, and the steps other kinds reuse."""

from __future__ import annotations

from images.models import Image
from instances.launch import launch_check
from instances.models import Flavor, Server
from instances.services import project_quota_refresh, server_refresh
from portal import cloud
from portal.errors import ActionRefused
from portal.jobs import JOB_KEY, JobKind, Step, StepFailed, Wait, job_key, job_kind_register
from portal.mirror import CREATED_BY_KEY
from portal.models import Job


def server_of(job: Job) -> Server:
    """Targeted refresh of the job's server; a server gone from the cloud fails the step."""
    server = server_refresh(job.site, openstack_id=job.target_server_id)
    if server is None or server.is_deleted:
        raise StepFailed("the instance no longer exists")
    return server


def _power(job: Job, *, call, target: str, transition: str) -> None:
    """Ask Nova to move the server to `target`, unless it is there or on its way.

    Safe to run twice: a duplicate delivery that finds Nova answering 409
    looks again, and is content if the first delivery's request took.
    """
    server = server_of(job)
    if server.status == target or server.task_state == transition:
        return
    try:
        call(job.site.name, server_id=server.openstack_id)
    except cloud.Conflict:
        server = server_of(job)
        if server.status != target and server.task_state != transition:
            raise
    server_refresh(job.site, openstack_id=server.openstack_id)


def _wait_for(job: Job, *, target: str, progress: str) -> Wait | None:
    server = server_of(job)
    if server.status == target and not server.task_state:
        return None
    if server.status == "ERROR":
        raise StepFailed(f"the instance went to ERROR: {server.fault_message or 'no reason given'}")
    return Wait(progress=progress)


def step_stop(job: Job) -> None:
    job.state.setdefault("prior_status", server_of(job).status)
    _power(job, call=cloud.server_stop, target="SHUTOFF", transition="powering-off")
    # Recorded even when a re-run finds it already stopping: it was running
    # before this job, so the job stopped it and may have to start it again.
    if job.state["prior_status"] == "ACTIVE":
        job.state["stopped_by_portal"] = True


def step_wait_shutoff(job: Job) -> Wait | None:
    return _wait_for(job, target="SHUTOFF", progress="stopping")


def step_start(job: Job) -> None:
    _power(job, call=cloud.server_start, target="ACTIVE", transition="powering-on")


def step_wait_active(job: Job) -> Wait | None:
    return _wait_for(job, target="ACTIVE", progress="starting")


job_kind_register(
    JobKind(
        name="server.stop",
        steps=(
            Step("stop", "Stopping", step_stop),
            Step("wait", "Waiting for SHUTOFF", step_wait_shutoff),
        ),
        describe=lambda job: "Stop instance",
    )
)
job_kind_register(
    JobKind(
        name="server.start",
        steps=(
            Step("start", "Starting", step_start),
            Step("wait", "Waiting for ACTIVE", step_wait_active),
        ),
        describe=lambda job: "Start instance",
    )
)


# --- Launch ---------------------------------------------------------------------


def step_launch_check(job: Job) -> None:
    """The page's rules again, with the cloud's live quota."""
    project_quota_refresh(job.project)
    try:
        launch_check(
            actor=job.actor,
            project=job.project,
            flavor=Flavor.objects.get(pk=job.params["flavor_pk"]),
            image=Image.objects.get(pk=job.params["image_pk"]),
            prefix=job.params.get("prefix", ""),
            count=len(job.params["names"]),
            participants=job.params.get("participants", []),
        )
    except ActionRefused as refused:
        raise StepFailed(refused.message) from refused
    except (Flavor.DoesNotExist, Image.DoesNotExist) as exc:
        raise StepFailed("the flavor or image is gone") from exc


def step_launch_create(job: Job) -> None:
    """Create each server once: one already made for this job (found by name and
    its `portal_job` metadata) is adopted, not made again."""
    created = job.state.setdefault("servers", {})
    outcomes = job.state.setdefault("outcomes", {})
    participants = job.params.get("participants", [])
    project_id = job.project.openstack_id
    for index, name in enumerate(job.params["names"]):
        key = str(index)
        if key in created or key in outcomes:
            continue
        mine = [
            s for s in cloud.server_find(job.site.name, project_id=project_id, name=name)
            if s.metadata.get(JOB_KEY) == job_key(job)
        ]  # fmt: skip
        if mine:
            created[key] = mine[0].id
        else:
            metadata = {
                CREATED_BY_KEY: job.actor.username,
                JOB_KEY: job_key(job),
                "portal_index": key,
            }
            if index < len(participants):
                metadata["participant"] = participants[index][:255]
            try:
                server = cloud.server_create(
                    job.site.name, project_id=project_id, name=name,
                    flavor_id=job.params["flavor_id"], image_id=job.params["image_id"],
                    metadata=metadata,
                )  # fmt: skip
            except (cloud.BadRequest, cloud.Forbidden, cloud.Conflict) as exc:
                outcomes[key] = f"failed: {exc.message}"
                job.save(update_fields=["state"])
                continue
            created[key] = server.id
        server_refresh(job.site, openstack_id=created[key])
        job.save(update_fields=["state"])  # what exists survives a crash of this step
    return None


def step_launch_wait(job: Job) -> Wait | None:
    created = job.state.get("servers", {})
    outcomes = job.state.setdefault("outcomes", {})
    for key, server_id in created.items():
        if key in outcomes:
            continue
        server = server_refresh(job.site, openstack_id=server_id)
        if server is None or server.is_deleted:
            outcomes[key] = "failed: the instance vanished"
        elif server.status == "ACTIVE":
            outcomes[key] = "active"
        elif server.status == "ERROR":
            outcomes[key] = f"failed: {server.fault_message or 'the cloud gave no reason'}"
    total = len(job.params["names"])
    if len(outcomes) < total:
        return Wait(progress=f"{len(outcomes)} of {total} ready")
    return None


def step_launch_summary(job: Job) -> None:
    outcomes = job.state.get("outcomes", {})
    names = job.params["names"]
    active = [names[int(k)] for k, o in outcomes.items() if o == "active"]
    failed = [
        f"{names[int(k)]} ({o.removeprefix('failed: ')})"
        for k, o in outcomes.items()
        if o != "active"
    ]
    summary = f"{len(active)} active"
    if failed:
        summary += f", {len(failed)} failed: " + "; ".join(failed)
    job.result.update({"summary": summary + ".", "active": active, "failed": failed})
    project_quota_refresh(job.project)  # the new page shows the quota these now use
    if not active:
        raise StepFailed(summary)
    return None


job_kind_register(
    JobKind(
        name="instances.launch",
        steps=(
            Step("check", "Checking", step_launch_check),
            Step("create", "Creating", step_launch_create),
            Step("wait", "Booting", step_launch_wait),
            Step("summary", "Summing up", step_launch_summary),
        ),
        describe=lambda job: f"Launch {len(job.params['names'])} instance(s)",
    )
)
