"""Job kinds for instance actions (stop, start, launch, delete), and the power
steps the snapshot job reuses.

Nova refuses an action (409) while a `task_state` is set, and clears it a
little after the work it stands for is visible elsewhere (e.g. after Glance
shows a snapshot active). So a power step never acts on a busy server: it
waits, with the server's state as its progress marker, until Nova is idle.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop, ngettext

from images.models import Image
from instances.launch_rules import launch_check
from instances.models import Flavor, Server
from instances.participants import participant_parts
from instances.services import (
    SERVER_DELETE,
    networks_sync,
    project_quota_refresh,
    server_refresh,
    server_task_began,
    servers_store,
)
from portal import cloud
from portal.errors import ActionRefused
from portal.jobs import (
    JOB_KEY,
    Done,
    Kind,
    Skipped,
    Step,
    StepContext,
    StepFailed,
    Wait,
)
from portal.mirror.authorship import CREATED_BY_KEY
from portal.mirror.freshness import site_watched
from portal.mirror.rows import rows_by_object
from portal.models import SshKey
from portal.ssh_keys import keypair_ensure
from portal.texts import say, word

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
        raise StepFailed(gettext_noop("the instance no longer exists"))
    return server


def servers_read_ahead(jobs: list) -> None:
    """server_of's first read for a batch of jobs (see portal.jobs.jobs_preload), in
    one query: each job's server row at a site the watcher keeps current (elsewhere
    server_of asks the cloud, and nothing is read ahead)."""
    wanted = [job for job in jobs if job.target_server_id and site_watched(job.site)]
    if not wanted:
        return
    # In the model's order: the row server_of's first() would pick.
    found = rows_by_object(Server, [(job.site_id, job.target_server_id) for job in wanted])
    for job in wanted:
        server = found.get((job.site_id, job.target_server_id))
        if server is None:
            continue  # server_of reads it again, and fails the step if it is gone
        server.site = job.site
        if job.project is not None and server.project_id == job.project.pk:
            server.project = job.project
        job.__dict__.setdefault("batch_reads", {})["server"] = server


def server_observed(server: Server) -> list:
    """What a waiting step watches for progress."""
    return [server.status, server.task_state, server.power_state, str(server.updated_at)]


def went_to_error(fault_message: str) -> str:
    """The error of a server that went to ERROR, with Nova's fault as Nova wrote it."""
    if fault_message:
        return say(gettext_noop("the instance went to ERROR: %(fault)s"), fault=fault_message)
    return gettext_noop("the instance went to ERROR: no reason given")


def server_wait(ctx: StepContext, server: Server, progress: str) -> Wait:
    """Wait for the server to change: the watcher wakes the job when it does."""
    watch = "server" if site_watched(ctx.site) else ""
    return Wait(progress=progress, observed=server_observed(server), watch=watch)


def busy_wait(ctx: StepContext, server: Server) -> Wait:
    return server_wait(
        ctx,
        server,
        say(
            gettext_noop("waiting for %(name)s to finish %(task)s"),
            name=server.name,
            task=word(server.task_label),
        ),
    )


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
        return busy_wait(ctx, server)
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
            return busy_wait(ctx, server)
        raise
    # Until the mirror shows the transition, a later step would take the old state
    # for the outcome (e.g. SHUTOFF after a start: "it failed"). Nova's 202 says what
    # it is: the task this call set (see server_task_began), so no show call.
    task_began(ctx, server, transition)
    return None


def task_began(ctx: StepContext, server: Server, task_state: str) -> Server:
    """Nova accepted an action on the job's server: the mirror row (and what later
    steps of this run read) shows the task it set."""
    noted = server_task_began(ctx.site, server, task_state=task_state, answered_at=timezone.now())
    noted.site = ctx.site
    if ctx.project is not None and noted.project_id == ctx.project.pk:
        noted.project = ctx.project
    ctx.cache["server"] = noted
    return noted


def _wait_for(ctx: StepContext, *, target: str, progress: str) -> Wait | None:
    server = server_of(ctx)
    if server.status == target and not server.task_state:
        return None
    if server.status == "ERROR":
        raise StepFailed(went_to_error(server.fault_message))
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
        attempts = state.start_attempts
        if attempts >= 2:
            if server.fault_message:
                raise StepFailed(
                    say(
                        gettext_noop("the cloud did not start the instance, twice (%(reason)s)"),
                        reason=server.fault_message,
                    )
                )
            raise StepFailed(
                gettext_noop("the cloud did not start the instance, twice (it gave no reason)")
            )
        state.start_attempts = attempts + 1
        step_start(ctx)
        return Wait(
            progress=gettext_noop("the start failed; asking once more"), observed=[attempts]
        )
    return _wait_for(ctx, target="ACTIVE", progress="starting")


class ServerStop(Kind):
    name = "server.stop"
    State = PowerState
    steps = (
        Step("stop", gettext_noop("Stop requested"), step_stop),
        Step("wait", gettext_noop("Waiting for SHUTOFF"), step_wait_shutoff, acts=False),
    )

    @classmethod
    def title(cls, params) -> str:
        return gettext("Stop instance")


class ServerStart(Kind):
    name = "server.start"
    State = PowerState
    steps = (
        Step("start", gettext_noop("Start requested"), step_start),
        Step("wait", gettext_noop("Waiting for ACTIVE"), step_wait_active),
    )

    @classmethod
    def title(cls, params) -> str:
        return gettext("Start instance")


# --- Launch ---------------------------------------------------------------------


@dataclass
class LaunchParams:
    names: list[str]
    prefix: str = ""
    participants: list[str] = field(default_factory=list)
    flavor_id: str = ""
    flavor_pk: int | None = None
    image_pk: int | None = None
    image_id: str = ""
    # The networks chosen on the page (None: the project's or the site's).
    network_ids: list[str] | None = None
    # The SSH key (portal.SshKey) injected into every seat, and its name then (None:
    # no key). Its owner is the launching user, or a workshop's organiser.
    ssh_key_pk: int | None = None
    ssh_key_name: str = ""
    # A retry: the launch it retries, and its failed seats' machines to delete first.
    retry_of: int | None = None
    replaces: list[dict] = field(default_factory=list)


@dataclass
class LaunchState:
    # Machines of `replaces` dealt with.
    removed: list[str] = field(default_factory=list)
    # The networks as the check found them usable (None: not checked yet, or Nova's choice).
    network_ids: list[str] | None = None
    # The Nova key pair the check made sure of ("": no key asked for).
    key_name: str = ""
    # Per seat (its index, as text): its server's id, and its outcome ("active", "failed: ...").
    servers: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    # Per seat: when its create request was sent (saved before sending it).
    asked: dict[str, str] = field(default_factory=dict)
    # The first request, and the last one sent again after a cut-off one (see _launch_one).
    asking_since: str | None = None
    reasked_at: str | None = None
    extras_deleted: list[str] = field(default_factory=list)


def step_launch_remove_replaced(ctx: StepContext) -> Wait | Skipped | None:
    """A retry first deletes the machines its failed seats still hold (they use quota
    the new ones need), BATCH per run."""
    replaced = ctx.params.replaces
    if not replaced:
        return Skipped(gettext_noop("nothing to replace"))
    removed = ctx.state.removed
    todo = [item for item in replaced if item["id"] not in removed]
    for item in todo[:BATCH]:
        # Confirmed as ERROR, but looked at again: a machine that came back since (an
        # operator's reset) is the seat's machine, not one to replace.
        server = server_refresh(ctx.site, openstack_id=item["id"])
        if server is not None and not server.is_deleted and server.status != "ERROR":
            _seat_keeps(ctx, item["name"], server)
        else:
            with contextlib.suppress(cloud.NotFound):
                cloud.server_delete(ctx.site.name, server_id=item["id"])
            server_refresh(ctx.site, openstack_id=item["id"])
        removed.append(item["id"])
        ctx.checkpoint()
    if todo[BATCH:]:
        progress = say(
            gettext_noop("removed %(done)s of %(total)s"), done=len(removed), total=len(replaced)
        )
        return Wait(progress=progress, more=True)
    return None


def _seat_keeps(ctx: StepContext, name: str, server: Server) -> None:
    """The seat named `name` keeps its machine, which recovered: no new one is made."""
    if name not in ctx.params.names:
        return
    key = str(ctx.params.names.index(name))
    ctx.state.servers[key] = server.openstack_id
    if server.status == "ACTIVE":
        ctx.state.outcomes[key] = "active"


def step_launch_check(ctx: StepContext) -> None:
    """The page's rules again, with the cloud's live quota and networks: the flavor
    must be usable in the project, and the networks chosen still usable (or, with
    none chosen, still not ambiguous: Nova would refuse every seat with a 409)."""
    params: LaunchParams = ctx.params
    project_quota_refresh(ctx.project)
    networks_sync(ctx.site)
    try:
        plan = launch_check(
            actor=ctx.actor,
            project=ctx.project,
            flavor=Flavor.objects.get(pk=params.flavor_pk or 0),  # 0: none recorded
            image=Image.objects.get(pk=params.image_pk or 0),
            prefix=params.prefix,
            count=len(params.names),
            participants=params.participants,
            network_ids=params.network_ids,
        )
    except ActionRefused as refused:
        raise StepFailed(refused.message) from refused
    except (Flavor.DoesNotExist, Image.DoesNotExist) as exc:
        raise StepFailed(gettext_noop("the flavor or image is gone")) from exc
    # What the seats boot on: as checked now (a project's setting may have changed).
    ctx.state.network_ids = plan.network_ids
    ctx.state.key_name = _key_pair_ready(ctx)


def _key_pair_ready(ctx: StepContext) -> str:
    """The Nova key pair of the launch's SSH key, imported (again) if the cloud does not
    have it with this public key: a user may have deleted it there, or a cloud's
    operators. "" when the launch asked for no key. A key deleted from the profile
    since the launch was asked fails the check: no machine boots without the key its
    user expects."""
    params: LaunchParams = ctx.params
    if params.ssh_key_pk is None:
        return ""
    key = SshKey.objects.filter(pk=params.ssh_key_pk).first()
    if key is None:
        raise StepFailed(
            say(
                gettext_noop(
                    "the SSH key “%(key)s” was deleted from its owner's profile after the "
                    "launch was asked for; launch again with another key (or none)"
                ),
                key=params.ssh_key_name,
            )
        )
    try:
        return keypair_ensure(site=ctx.site.name, key=key)
    except (cloud.BadRequest, cloud.Forbidden, cloud.Conflict) as exc:
        raise StepFailed(
            say(
                gettext_noop("the cloud refused the SSH key “%(key)s”: %(message)s"),
                key=key.name,
                message=exc.message,
            )
        ) from exc


def _launch_one(ctx: StepContext, index: int, name: str) -> bool:
    """Create seat `index` once. Returns False when the seat must wait.

    The request is recorded (`asked`) before it is sent. A run that finds a seat
    asked but not recorded was cut off (a timeout, the soft limit, a crash): Nova
    may have made the server, or may make it in a moment, so it looks for the
    server by name, adopts it if it is provably this job's (made_by_job: the marker,
    the portal's account, the project, made after the job asked), and asks again only
    once JOB_CREATE_LAND_SECONDS have passed since the first request. A second
    server that lands anyway is deleted by the wait step (see _extras_delete).
    """
    state: LaunchState = ctx.state
    created, outcomes, asked = state.servers, state.outcomes, state.asked
    key = str(index)
    project_id = ctx.project.openstack_id
    if key in asked:
        mine = [
            s for s in cloud.server_find(ctx.site.name, project_id=project_id, name=name)
            if ctx.made_by_me(s, asked_at=_asking_since(ctx)) and not s.is_deleted
        ]  # fmt: skip
        if mine:
            created[key] = mine[0].id
            ctx.authorship_record(mine[0].id)
            return True
        since = (timezone.now() - datetime.fromisoformat(asked[key])).total_seconds()
        if since < settings.JOB_CREATE_LAND_SECONDS:
            return False
        state.reasked_at = timezone.now().isoformat()
    asked[key] = timezone.now().isoformat()
    ctx.checkpoint()
    metadata = {CREATED_BY_KEY: ctx.actor.username, JOB_KEY: ctx.key, "portal_index": key}
    participants = ctx.params.participants
    if index < len(participants):
        # The name only: metadata is readable by every project member through the API.
        metadata["participant"] = participant_parts(participants[index])[0][:255]
    # As checked (see step_launch_check); as asked, for a job from before the check.
    networks = state.network_ids if state.network_ids is not None else ctx.params.network_ids
    try:
        server = cloud.server_create(
            ctx.site.name, project_id=project_id, name=name,
            flavor_id=ctx.params.flavor_id, image_id=ctx.params.image_id,
            metadata=metadata, network_ids=networks, key_name=state.key_name or None,
        )  # fmt: skip
    except (cloud.BadRequest, cloud.Forbidden, cloud.Conflict) as exc:
        outcomes[key] = f"failed: {exc.message}"
        return True
    created[key] = server.id
    ctx.authorship_record(server.id)
    servers_store(ctx.site, [server], complete=False)
    return True


def step_launch_create(ctx: StepContext) -> Wait | None:
    """Create the seats in batches of BATCH per run; what exists survives a crash."""
    state: LaunchState = ctx.state
    # Before the first request: what this job may adopt or delete as its own was
    # created after it (a re-asked seat's `asked` is the later request's).
    if state.asking_since is None:
        state.asking_since = min(state.asked.values(), default=timezone.now().isoformat())
    names = ctx.params.names
    todo = [
        (index, name)
        for index, name in enumerate(names)
        if str(index) not in state.servers and str(index) not in state.outcomes
    ]
    landing = 0
    for index, name in todo[:BATCH]:
        if not _launch_one(ctx, index, name):
            landing += 1
        ctx.checkpoint()
    done = len(names) - len(todo[BATCH:]) - landing
    if todo[BATCH:]:
        progress = say(gettext_noop("created %(done)s of %(total)s"), done=done, total=len(names))
        return Wait(progress=progress, more=True)
    if landing:
        return Wait(
            progress=say(
                gettext_noop(
                    "created %(done)s of %(total)s; waiting for %(landing)s cut-off "
                    "request(s) the cloud may still carry out"
                ),
                done=done,
                total=len(names),
                landing=landing,
            )
        )
    return None


def _asking_since(ctx: StepContext) -> str | None:
    """When this job first asked Nova for a seat's server (see step_launch_create)."""
    return ctx.state.asking_since or min(ctx.state.asked.values(), default=None)


def _extras_delete(ctx: StepContext, seen: dict[str, cloud.CloudServer]) -> int:
    """Delete the servers this job made that no seat holds: a request cut off, asked
    again, and carried out both times. Returns how many. Only servers provably the
    job's (made_by_job): one that merely carries its marker may be anyone's."""
    held = set(ctx.state.servers.values())
    since = _asking_since(ctx)
    extras = [
        s for s in seen.values()
        if s.id not in held and not s.is_deleted and ctx.made_by_me(s, asked_at=since)
    ]  # fmt: skip
    deleted = ctx.state.extras_deleted
    for server in extras:
        with contextlib.suppress(cloud.NotFound):
            cloud.server_delete(ctx.site.name, server_id=server.id)
        if server.id not in deleted:
            deleted.append(server.id)
        server_refresh(ctx.site, openstack_id=server.id)
    return len(extras)


def _servers_watched(ctx: StepContext) -> dict[str, cloud.CloudServer]:
    """The project's servers changed since the job started, in one listing (not one
    call per seat): {server id: server}, stored into the mirror as well."""
    since = ctx.started_at - timedelta(minutes=1)
    servers = cloud.server_list(
        ctx.site.name, changes_since=since, project_id=ctx.project.openstack_id
    )
    servers_store(ctx.site, servers, complete=False)
    return {s.id: s for s in servers}


def step_launch_wait(ctx: StepContext) -> Wait | None:
    state: LaunchState = ctx.state
    created, outcomes = state.servers, state.outcomes
    pending = {key: server_id for key, server_id in created.items() if key not in outcomes}
    if pending:
        seen = _servers_watched(ctx)
        _extras_delete(ctx, seen)
        for key, server_id in pending.items():
            server = seen.get(server_id)
            if server is None or server.is_deleted:
                # Not in the listing: look once more by id before calling it gone.
                refreshed = server_refresh(ctx.site, openstack_id=server_id)
                if refreshed is None or refreshed.is_deleted:
                    outcomes[key] = "failed: the instance vanished"
                continue
            if server.status == "ACTIVE":
                outcomes[key] = "active"
            elif server.status == "ERROR":
                outcomes[key] = f"failed: {server.fault_message or 'the cloud gave no reason'}"
    total = len(ctx.params.names)
    if len(outcomes) < total:
        building = sorted(key for key in created if key not in outcomes)
        return Wait(
            progress=say(
                gettext_noop("%(ready)s of %(total)s ready"), ready=len(outcomes), total=total
            ),
            observed=[len(outcomes), building],
        )
    reasked = state.reasked_at
    if reasked is not None:
        # A request was asked twice: the first may still land. Look once it had the
        # time to, and delete what it made besides the seat's server.
        since = (timezone.now() - datetime.fromisoformat(reasked)).total_seconds()
        if since < settings.JOB_CREATE_LAND_SECONDS:
            return Wait(
                progress=gettext_noop("checking that no cut-off request made a second machine")
            )
        _extras_delete(ctx, _servers_watched(ctx))
        state.reasked_at = None
    return None


def _launch_summary(ctx: StepContext) -> tuple[list[str], dict]:
    """The per-seat outcomes, for the job's result: (active names, the result)."""
    outcomes = ctx.state.outcomes
    names = ctx.params.names
    active, failed, failed_seats = [], [], []
    for index, name in enumerate(names):
        outcome = outcomes.get(str(index), "failed: did not finish booting")
        if outcome == "active":
            active.append(name)
        else:
            failed.append(f"{name} ({outcome.removeprefix('failed: ')})")
            failed_seats.append(index)
    # The seats' reasons are the cloud's words (a fault message), shown as it wrote them.
    summary = (
        say(
            gettext_noop("%(active)s active, %(failed)s failed: %(which)s."),
            active=len(active),
            failed=len(failed),
            which="; ".join(failed),
        )
        if failed
        else say(gettext_noop("%(active)s active."), active=len(active))
    )
    result = {
        "summary": summary, "active": active, "failed": failed, "failed_seats": failed_seats
    }  # fmt: skip

    return active, result


def step_launch_summary(ctx: StepContext) -> Done:
    active, result = _launch_summary(ctx)
    project_quota_refresh(ctx.project)  # the new page shows the quota these now use
    if not active:
        raise StepFailed(result["summary"], result=result)
    return Done(result=result)


def undo_launch_report(ctx: StepContext) -> Done:
    """After a failure: say which seats have a machine and which do not, so the job
    page can offer to retry just those or delete their machines."""
    _, result = _launch_summary(ctx)
    return Done(result["summary"], result=result)


class InstancesLaunch(Kind):
    """Create a batch of instances (a workshop's seats), or retry a launch's failed ones."""

    name = "instances.launch"
    Params = LaunchParams
    State = LaunchState
    steps = (
        Step("replace", gettext_noop("Removing the failed machines"), step_launch_remove_replaced),
        # The report is the check's undo: once the request was checked, a failure
        # says seat by seat what exists (a failure before it has no seat to tell of).
        Step(
            "check",
            gettext_noop("Checking the request"),
            step_launch_check,
            undo=Step("report", gettext_noop("Reporting each seat"), undo_launch_report),
        ),
        Step("create", gettext_noop("Creating the instances"), step_launch_create),
        Step("wait", gettext_noop("Waiting for the instances to boot"), step_launch_wait),
        Step("summary", gettext_noop("Summing up"), step_launch_summary, acts=False),
    )

    @classmethod
    def title(cls, params: LaunchParams) -> str:
        count = len(params.names)
        return ngettext("Launch %(count)s instance", "Launch %(count)s instances", count) % {
            "count": count
        }


# --- Delete ---------------------------------------------------------------------
#
# Declared in instances.services (SERVER_DELETE): ticked ones or all matching, in
# batches, then a summary that fails when every delete failed.

InstancesDelete = SERVER_DELETE.job_kind()
