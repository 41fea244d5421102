"""Job kinds for instance actions (stop, start, launch, delete), and the power
steps the snapshot job reuses.

Nova refuses an action (409) while a `task_state` is set, and clears it a
little after the work it stands for is visible elsewhere (e.g. after Glance
shows a snapshot active). So a power step never acts on a busy server: it
waits, with the server's state as its progress marker, until Nova is idle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from images.models import Image
from instances.launch import launch_check, participant_parts
from instances.models import Flavor, Server
from instances.services import (
    networks_sync,
    project_quota_refresh,
    server_delete_batch,
    server_refresh,
    servers_store,
)
from portal import cloud
from portal.bulk import delete_finish, delete_step, matching_title
from portal.errors import ActionRefused
from portal.jobs import (
    JOB_KEY,
    Done,
    JobKind,
    Kind,
    Skipped,
    Step,
    StepContext,
    StepFailed,
    Wait,
    job_key,
    job_kind_register,
    made_by_job,
)
from portal.mirror import CREATED_BY_KEY, authorship_record, site_watched
from portal.models import Job

# Servers created, or deleted, per task run: each is one or two HTTP calls, and a
# run must end well inside the task's soft time limit even on a slow cloud.
BATCH = 10


@dataclass
class PowerState:
    """What the power steps record. The snapshot job's state is one of these too:
    its undo starts the instance again only if `stopped_by_portal`."""

    # The server's status when the job first looked (None: not looked yet).
    prior_status: str | None = None
    # Saved just before this job asked Nova to stop it: a re-run after a cut-off
    # request knows the stop may have been this job's.
    stop_asked: bool = False
    # This job's stop took (asked by it, and Nova is stopping or stopped the server).
    stopped_by_portal: bool = False
    # Starts asked so far by the wait for ACTIVE (one more after a dropped start).
    start_attempts: int = 1


def server_of(ctx: StepContext, *, acted: bool = False) -> Server:
    """The job's server as the cloud shows it now; a server gone fails the step.

    While the site's status watcher keeps the mirror current, that is the mirror
    row: no cloud call. Otherwise, and right after the job acted on the server
    (`acted`), a targeted refresh. Read once per run: later steps of the same run
    reuse it until the job acts again.
    """
    read = ctx.cache.get("server")
    server = None if acted else read
    if server is None:
        if not acted and site_watched(ctx.site):
            server = Server.objects.filter(site=ctx.site, openstack_id=ctx.target_server_id).first()
        else:
            server = server_refresh(ctx.site, openstack_id=ctx.target_server_id, row=read)
        if server is not None:  # the rows the job loaded already, not loaded again
            server.site = ctx.site
            if ctx.project is not None and server.project_id == ctx.project.pk:
                server.project = ctx.project
        ctx.cache["server"] = server
    if server is None or server.is_deleted:
        raise StepFailed("the instance no longer exists")
    return server


def server_observed(server: Server) -> list:
    """What a waiting step watches for progress."""
    return [server.status, server.task_state, server.power_state, str(server.updated_at)]


def server_wait(ctx: StepContext, server: Server, progress: str) -> Wait:
    """Wait for the server to change: the watcher wakes the job when it does."""
    watch = "server" if site_watched(ctx.site) else ""
    return Wait(progress=progress, observed=server_observed(server), watch=watch)


def _busy(ctx: StepContext, server: Server) -> Wait:
    return server_wait(ctx, server, f"waiting for {server.name} to finish {server.task_label}")


def _power(ctx: StepContext, *, call, target: str, transition: str, asked: str = "") -> Wait | None:
    """Ask Nova to move the server to `target`, unless it is there or on its way.

    Waits while another task runs on the server (Nova would answer 409). Safe to
    run twice: a duplicate delivery that finds Nova answering 409 looks again,
    and is content if the first delivery's request took. `asked`: a state field
    saved just before the request, so a re-run after a cut-off request knows it
    may have been this job's.
    """
    server = server_of(ctx)
    if server.status == target or server.task_state == transition:
        return None
    if server.task_state:
        return _busy(ctx, server)
    if server.locked:
        raise StepFailed(server.lock_refusal)
    if asked:
        setattr(ctx.state, asked, True)
        ctx.checkpoint()
    try:
        call(ctx.site.name, server_id=server.openstack_id)
    except cloud.Conflict:
        server = server_of(ctx, acted=True)
        if server.status == target or server.task_state == transition:
            return None
        if server.task_state:
            return _busy(ctx, server)
        raise
    # Read back at once: until the mirror shows the transition, a later step would
    # take the old state for the outcome (e.g. SHUTOFF after a start: "it failed").
    server_of(ctx, acted=True)
    return None


def _wait_for(ctx: StepContext, *, target: str, progress: str) -> Wait | None:
    server = server_of(ctx)
    if server.status == target and not server.task_state:
        return None
    if server.status == "ERROR":
        raise StepFailed(f"the instance went to ERROR: {server.fault_message or 'no reason given'}")
    return server_wait(ctx, server, progress)


def step_stop(ctx: StepContext) -> Wait | None:
    """Stop the server. "Stopped by the portal" (so undo starts it again) only once
    this job's stop was asked and the server is stopping or stopped: a server the
    user stopped before the job got to it stays off afterwards."""
    state: PowerState = ctx.state
    server = server_of(ctx)
    if state.prior_status is None:
        state.prior_status = server.status
    if state.prior_status != "ACTIVE":
        return None
    stopping = server.status == "SHUTOFF" or server.task_state == "powering-off"
    if stopping and not state.stop_asked:
        return None  # someone else stopped it: not this job's to start again
    outcome = _power(
        ctx, call=cloud.server_stop, target="SHUTOFF", transition="powering-off", asked="stop_asked"
    )
    if outcome is None:
        # Asked by this job (now, or by a run cut off after asking), and Nova took it.
        state.stopped_by_portal = True
    return outcome


def step_wait_shutoff(ctx: StepContext) -> Wait | None:
    return _wait_for(ctx, target="SHUTOFF", progress="stopping")


def step_start(ctx: StepContext) -> Wait | None:
    return _power(ctx, call=cloud.server_start, target="ACTIVE", transition="powering-on")


def step_wait_active(ctx: StepContext) -> Wait | None:
    """Wait for ACTIVE. A server back at SHUTOFF with no task means Nova could not
    start it: ask once more (starts fail for passing reasons, e.g. a busy host),
    then give up."""
    state: PowerState = ctx.state
    server = server_of(ctx)
    if server.status == "SHUTOFF" and not server.task_state:
        reason = server.fault_message or "the cloud gave no reason"
        attempts = state.start_attempts
        if attempts >= 2:
            raise StepFailed(f"the cloud did not start the instance, twice ({reason})")
        state.start_attempts = attempts + 1
        step_start(ctx)
        return Wait(progress="the start failed; asking once more", observed=[attempts])
    return _wait_for(ctx, target="ACTIVE", progress="starting")


class ServerStop(Kind):
    name = "server.stop"
    State = PowerState
    steps = (
        Step("stop", "Stop requested", step_stop),
        Step("wait", "Waiting for SHUTOFF", step_wait_shutoff, acts=False),
    )

    @classmethod
    def title(cls, params) -> str:
        return "Stop instance"


class ServerStart(Kind):
    name = "server.start"
    State = PowerState
    steps = (
        Step("start", "Start requested", step_start),
        Step("wait", "Waiting for ACTIVE", step_wait_active),
    )

    @classmethod
    def title(cls, params) -> str:
        return "Start instance"


# --- Launch ---------------------------------------------------------------------


def step_launch_remove_replaced(job: Job) -> Wait | Skipped | None:
    """A retry first deletes the machines its failed seats still hold (they use quota
    the new ones need), BATCH per run."""
    replaced = job.params.get("replaces", [])
    if not replaced:
        return Skipped("nothing to replace")
    removed = job.state.setdefault("removed", [])
    todo = [item for item in replaced if item["id"] not in removed]
    for item in todo[:BATCH]:
        # Confirmed as ERROR, but looked at again: a machine that came back since (an
        # operator's reset) is the seat's machine, not one to replace.
        server = server_refresh(job.site, openstack_id=item["id"])
        if server is not None and not server.is_deleted and server.status != "ERROR":
            _seat_keeps(job, item["name"], server)
        else:
            try:
                cloud.server_delete(job.site.name, server_id=item["id"])
            except cloud.NotFound:
                pass
            server_refresh(job.site, openstack_id=item["id"])
        removed.append(item["id"])
        job.save(update_fields=["state"])
    if todo[BATCH:]:
        return Wait(progress=f"removed {len(removed)} of {len(replaced)}", more=True)
    return None


def _seat_keeps(job: Job, name: str, server: Server) -> None:
    """The seat named `name` keeps its machine, which recovered: no new one is made."""
    if name not in job.params["names"]:
        return
    key = str(job.params["names"].index(name))
    job.state.setdefault("servers", {})[key] = server.openstack_id
    if server.status == "ACTIVE":
        job.state.setdefault("outcomes", {})[key] = "active"


def step_launch_check(job: Job) -> None:
    """The page's rules again, with the cloud's live quota and networks: the flavor
    must be usable in the project, and the networks chosen still usable (or, with
    none chosen, still not ambiguous: Nova would refuse every seat with a 409)."""
    project_quota_refresh(job.project)
    networks_sync(job.site)
    try:
        plan = launch_check(
            actor=job.actor,
            project=job.project,
            flavor=Flavor.objects.get(pk=job.params["flavor_pk"]),
            image=Image.objects.get(pk=job.params["image_pk"]),
            prefix=job.params.get("prefix", ""),
            count=len(job.params["names"]),
            participants=job.params.get("participants", []),
            network_ids=job.params.get("network_ids"),
        )
    except ActionRefused as refused:
        raise StepFailed(refused.message) from refused
    except (Flavor.DoesNotExist, Image.DoesNotExist) as exc:
        raise StepFailed("the flavor or image is gone") from exc
    # What the seats boot on: as checked now (a project's setting may have changed).
    job.state["network_ids"] = plan.network_ids


def _launch_one(job: Job, index: int, name: str) -> bool:
    """Create seat `index` once. Returns False when the seat must wait.

    The request is recorded (`asked`) before it is sent. A run that finds a seat
    asked but not recorded was cut off (a timeout, the soft limit, a crash): Nova
    may have made the server, or may make it in a moment, so it looks for the
    server by name, adopts it if it is provably this job's (made_by_job: the marker,
    the portal's account, the project, made after the job asked), and asks again only
    once JOB_CREATE_LAND_SECONDS have passed since the first request. A second
    server that lands anyway is deleted by the wait step (see _extras_delete).
    """
    created = job.state["servers"]
    outcomes = job.state["outcomes"]
    asked = job.state.setdefault("asked", {})
    key = str(index)
    project_id = job.project.openstack_id
    if key in asked:
        mine = [
            s for s in cloud.server_find(job.site.name, project_id=project_id, name=name)
            if made_by_job(job, s, asked_at=_asking_since(job)) and not s.is_deleted
        ]  # fmt: skip
        if mine:
            created[key] = mine[0].id
            authorship_record(site=job.site, openstack_id=mine[0].id, user=job.actor, job=job)
            return True
        since = (timezone.now() - datetime.fromisoformat(asked[key])).total_seconds()
        if since < settings.JOB_CREATE_LAND_SECONDS:
            return False
        job.state["reasked_at"] = timezone.now().isoformat()
    asked[key] = timezone.now().isoformat()
    job.save(update_fields=["state"])
    metadata = {CREATED_BY_KEY: job.actor.username, JOB_KEY: job_key(job), "portal_index": key}
    participants = job.params.get("participants", [])
    if index < len(participants):
        # The name only: metadata is readable by every project member through the API.
        metadata["participant"] = participant_parts(participants[index])[0][:255]
    networks = job.state.get("network_ids", job.params.get("network_ids"))
    try:
        server = cloud.server_create(
            job.site.name, project_id=project_id, name=name,
            flavor_id=job.params["flavor_id"], image_id=job.params["image_id"],
            metadata=metadata, network_ids=networks,
        )  # fmt: skip
    except (cloud.BadRequest, cloud.Forbidden, cloud.Conflict) as exc:
        outcomes[key] = f"failed: {exc.message}"
        return True
    created[key] = server.id
    authorship_record(site=job.site, openstack_id=server.id, user=job.actor, job=job)
    servers_store(job.site, [server], complete=False)
    return True


def step_launch_create(job: Job) -> Wait | None:
    """Create the seats in batches of BATCH per run; what exists survives a crash."""
    job.state.setdefault("servers", {})
    job.state.setdefault("outcomes", {})
    # Before the first request: what this job may adopt or delete as its own was
    # created after it (a re-asked seat's `asked` is the later request's).
    asked = job.state.get("asked", {})
    job.state.setdefault("asking_since", min(asked.values(), default=timezone.now().isoformat()))
    names = job.params["names"]
    todo = [
        (index, name)
        for index, name in enumerate(names)
        if str(index) not in job.state["servers"] and str(index) not in job.state["outcomes"]
    ]
    landing = 0
    for index, name in todo[:BATCH]:
        if not _launch_one(job, index, name):
            landing += 1
        job.save(update_fields=["state"])
    done = len(names) - len(todo[BATCH:]) - landing
    if todo[BATCH:]:
        return Wait(progress=f"created {done} of {len(names)}", more=True)
    if landing:
        return Wait(
            progress=f"created {done} of {len(names)}; waiting for {landing} cut-off "
            "request(s) the cloud may still carry out"
        )
    return None


def _asking_since(job: Job) -> str | None:
    """When this job first asked Nova for a seat's server (see step_launch_create)."""
    return job.state.get("asking_since") or min(job.state.get("asked", {}).values(), default=None)


def _extras_delete(job: Job, seen: dict[str, cloud.CloudServer]) -> int:
    """Delete the servers this job made that no seat holds: a request cut off, asked
    again, and carried out both times. Returns how many. Only servers provably the
    job's (made_by_job): one that merely carries its marker may be anyone's."""
    held = set(job.state.get("servers", {}).values())
    since = _asking_since(job)
    extras = [
        s for s in seen.values()
        if s.id not in held and not s.is_deleted and made_by_job(job, s, asked_at=since)
    ]  # fmt: skip
    deleted = job.state.setdefault("extras_deleted", [])
    for server in extras:
        try:
            cloud.server_delete(job.site.name, server_id=server.id)
        except cloud.NotFound:
            pass
        if server.id not in deleted:
            deleted.append(server.id)
        server_refresh(job.site, openstack_id=server.id)
    return len(extras)


def _servers_watched(job: Job) -> dict[str, cloud.CloudServer]:
    """The project's servers changed since the job started, in one listing (not one
    call per seat): {server id: server}, stored into the mirror as well."""
    since = (job.started_at or job.created_at) - timedelta(minutes=1)
    servers = cloud.server_list(
        job.site.name, changes_since=since, project_id=job.project.openstack_id
    )
    servers_store(job.site, servers, complete=False)
    return {s.id: s for s in servers}


def step_launch_wait(job: Job) -> Wait | None:
    created = job.state.get("servers", {})
    outcomes = job.state.setdefault("outcomes", {})
    pending = {key: server_id for key, server_id in created.items() if key not in outcomes}
    if pending:
        seen = _servers_watched(job)
        _extras_delete(job, seen)
        for key, server_id in pending.items():
            server = seen.get(server_id)
            if server is None or server.is_deleted:
                # Not in the listing: look once more by id before calling it gone.
                refreshed = server_refresh(job.site, openstack_id=server_id)
                if refreshed is None or refreshed.is_deleted:
                    outcomes[key] = "failed: the instance vanished"
                continue
            if server.status == "ACTIVE":
                outcomes[key] = "active"
            elif server.status == "ERROR":
                outcomes[key] = f"failed: {server.fault_message or 'the cloud gave no reason'}"
    total = len(job.params["names"])
    if len(outcomes) < total:
        building = sorted(key for key in created if key not in outcomes)
        return Wait(
            progress=f"{len(outcomes)} of {total} ready", observed=[len(outcomes), building]
        )
    reasked = job.state.get("reasked_at")
    if reasked is not None:
        # A request was asked twice: the first may still land. Look once it had the
        # time to, and delete what it made besides the seat's server.
        since = (timezone.now() - datetime.fromisoformat(reasked)).total_seconds()
        if since < settings.JOB_CREATE_LAND_SECONDS:
            return Wait(progress="checking that no cut-off request made a second machine")
        _extras_delete(job, _servers_watched(job))
        job.state.pop("reasked_at")
    return None


def _launch_summary(job: Job) -> tuple[list[str], list[str]]:
    """Record per-seat outcomes in job.result; returns (active names, failed lines)."""
    outcomes = job.state.get("outcomes", {})
    names = job.params["names"]
    active, failed, failed_seats = [], [], []
    for index, name in enumerate(names):
        outcome = outcomes.get(str(index), "failed: did not finish booting")
        if outcome == "active":
            active.append(name)
        else:
            failed.append(f"{name} ({outcome.removeprefix('failed: ')})")
            failed_seats.append(index)
    summary = f"{len(active)} active"
    if failed:
        summary += f", {len(failed)} failed: " + "; ".join(failed)
    job.result.update(
        {"summary": summary + ".", "active": active, "failed": failed, "failed_seats": failed_seats}
    )
    return active, failed


def step_launch_summary(job: Job) -> None:
    active, failed = _launch_summary(job)
    project_quota_refresh(job.project)  # the new page shows the quota these now use
    if not active:
        raise StepFailed(job.result["summary"])
    return None


def undo_launch_report(job: Job) -> Done:
    """After a failure: say which seats have a machine and which do not, so the job
    page can offer to retry just those or delete their machines."""
    _launch_summary(job)
    return Done(job.result["summary"])


job_kind_register(
    JobKind(
        name="instances.launch",
        steps=(
            Step("replace", "Removing the failed machines", step_launch_remove_replaced),
            Step("check", "Checking the request", step_launch_check),
            Step("create", "Creating the instances", step_launch_create),
            Step("wait", "Waiting for the instances to boot", step_launch_wait),
            Step("summary", "Summing up", step_launch_summary, acts=False),
        ),
        undo=(Step("report", "Reporting each seat", undo_launch_report),),
        describe=lambda job: f"Launch {len(job.params['names'])} instance(s)",
    )
)


# --- Delete ---------------------------------------------------------------------


def _delete_unless_locked(site: str, server_id: str) -> None:
    """Delete a ticked server, unless the mirror says it is locked (since the
    confirmation): Nova lets the portal's admin token delete a locked server, the
    portal does not. ("All matching" batches skip locked rows by their refusals.)"""
    locked = Server.objects.filter(site__name=site, openstack_id=server_id, locked=True)
    name = locked.values_list("name", flat=True).first()
    if name is not None:
        raise cloud.Conflict(f"{name} is locked")
    cloud.server_delete(site, server_id=server_id)


def step_delete_servers(job: Job) -> Wait | None:
    """Delete BATCH servers per run: the listed ones, or the next ones the job's
    filter matches (see portal.bulk.delete_step)."""
    return delete_step(
        job, key="servers", batch=BATCH,
        delete=lambda site, server_id: cloud.server_delete(site, server_id=server_id),
        listed_delete=_delete_unless_locked,
        refresh=lambda site, server_id: server_refresh(site, openstack_id=server_id),
        rows_after=lambda after, size: server_delete_batch(job, after, size),
    )  # fmt: skip


def step_delete_servers_summary(job: Job) -> None:
    """Sum up, and fail when every delete failed (portal.bulk.delete_finish)."""
    if job.project_id:
        project_quota_refresh(job.project)  # the quota the deleted ones freed
    delete_finish(job, key="servers")


def _describe_delete(job: Job) -> str:
    if "matching" in job.params:
        return matching_title(job, "instances")
    return f"Delete {len(job.params['servers'])} instance(s)"


job_kind_register(
    JobKind(
        name="instances.delete",
        steps=(
            Step("delete", "Deleting the instances", step_delete_servers),
            Step("summary", "Summing up", step_delete_servers_summary, acts=False),
        ),
        describe=_describe_delete,
    )
)
