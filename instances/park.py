"""Park a machine and resume it later ("continue your work later"), with Nova's shelve.

Park: check → stop (if running, as every snapshot does) → shelve → wait until
Nova has offloaded it (SHELVED_OFFLOADED) and its "<name>-shelved" image is
active → parked → optionally a boot test of that image (snapshots.park). The machine keeps its name, IP, flavor and metadata, and frees
its host's vCPUs and RAM. Undo: a park that fails after shelving unshelves (and
stops it again if it was off before); one that fails after stopping starts it
again if it was running.

Resume: check → unshelve → wait ACTIVE. When the machine's flavor is gone (or no
longer usable in the project), or the user chooses another, Nova cannot unshelve
onto it: the job boots a new server from the shelved image on the chosen flavor,
with the same name and metadata, waits until it is ACTIVE, and only then deletes
the parked server (which deletes the shelved image). Its IP changes then. Undo:
delete the new server, keep the parked one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from images.models import Image
from images.services import image_refresh
from instances.jobs import (
    PowerState,
    busy_wait,
    server_observed,
    server_of,
    server_wait,
    step_start,
    step_stop,
    step_wait_active,
    step_wait_shutoff,
    went_to_error,
)
from instances.launch_rules import flavor_refusal, launch_networks
from instances.models import Flavor, Server
from instances.selectors import flavors_usable_by
from instances.services import project_quota_refresh, server_action_check, server_refresh
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
    job_create,
    jobs_create,
)
from portal.mirror.authorship import CREATED_BY_KEY
from portal.mirror.freshness import site_watched
from portal.models import Project
from portal.sites import site_shelve_refusal
from portal.ssh_keys import keypair_ensure, ssh_key_of_keypair
from portal.texts import say, span, word

# Nova's task states while it shelves (snapshot, upload, offload) and unshelves.
SHELVE_TASKS = {
    "shelving", "shelving_image_pending_upload", "shelving_image_uploading",
    "shelving_offloading",
}  # fmt: skip
UNSHELVE_TASKS = {"unshelving", "spawning"}
PARKABLE = ("ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED")


def frees_text(server: Server) -> str:
    """What a parked machine frees on the site's hosts, from its flavor."""
    return gettext("%(vcpus)s vCPUs and %(ram)s GiB RAM") % {
        "vcpus": server.flavor_vcpus,
        "ram": f"{server.flavor_ram_mib / 1024:g}",
    }


# --- Rules (the pages and the jobs ask the same) ------------------------------


def park_refusal(server: Server) -> str:
    """Why this machine cannot be parked whoever asks, or "" (the site's policy,
    its state, a volume-backed disk)."""
    site_refusal = site_shelve_refusal(server.site.name)
    if site_refusal:
        return site_refusal
    if server.is_parked:
        return gettext("%(server)s is parked already.") % {"server": server.name}
    if server.boots_from_volume:
        return gettext(
            "%(server)s boots from a volume: parking keeps a disk as an image, and "
            "this one has none."
        ) % {"server": server.name}
    if server.status not in PARKABLE:
        return gettext("Cannot park %(server)s while it is %(status)s.") % {
            "server": server.name,
            "status": server.status,
        }
    return ""


def server_park_check(*, server: Server, actor, busy: set[int] | None = None) -> None:
    """Raise ActionRefused unless `actor` may park `server` now."""
    server_action_check(server=server, actor=actor, action="park", busy=busy)
    refusal = park_refusal(server)
    if refusal:
        # The site's policy is a refusal of the request itself, whoever asks.
        status = 403 if site_shelve_refusal(server.site.name) else 409
        raise ActionRefused(refusal, status=status)


def server_resume_check(*, server: Server, actor, busy: set[int] | None = None) -> None:
    server_action_check(server=server, actor=actor, action="resume", busy=busy)
    if not server.is_parked:
        raise ActionRefused(gettext("%(server)s is not parked.") % {"server": server.name})


def parked_flavor(server: Server) -> Flavor | None:
    """The flavor the machine was parked on, if the project may still boot it."""
    flavor = Flavor.objects.filter(
        site_id=server.site_id, name=server.flavor_name, deleted_at__isnull=True
    ).first()
    if flavor is None or server.project is None or not flavor.usable_in(server.project):
        return None
    return flavor


def resume_quota_problem(server: Server) -> str:
    """Why the project's quota cannot hold the machine again, or "".

    Nova 34 counts quota from its database by default: a parked (offloaded) machine
    still uses its cores and RAM there, and an unshelve needs nothing more. A site
    counting usage from placement frees them, and unshelve is refused (403) when
    the quota is full by then. The mirror tells which: the cloud's usage counts the
    parked machines or not."""
    project = server.project
    if project is None or project.quota_cores is None or project.used_cores is None:
        return ""  # never synced: Nova decides, and the job says why
    live = Server.objects.filter(project=project, deleted_at__isnull=True).exclude(status="DELETED")
    all_cores = sum(live.values_list("flavor_vcpus", flat=True))
    if project.used_cores >= all_cores:
        return ""  # the cloud still counts the parked machines: resuming adds nothing
    short = []
    for need, limit, used, unit in (
        (server.flavor_vcpus, project.quota_cores, project.used_cores, "vCPUs"),
        (server.flavor_ram_mib, project.quota_ram_mib, project.used_ram_mib, "MiB RAM"),
    ):
        if limit is not None and limit >= 0 and used is not None and used + need > limit:
            short.append(f"{need:,} {unit} (free: {max(limit - used, 0):,})")
    if not short:
        return ""
    return (
        f"Project {project.name}'s quota cannot hold it again on {server.flavor_name}: it "
        f"needs {', '.join(short)}. Choose a smaller flavor, or free some quota."
    )


def resume_flavor_problem(server: Server) -> str:
    """Why the machine cannot come back on its own flavor, or "" when it can: the
    flavor is gone (deleted, or no longer usable in the project), or over quota."""
    if parked_flavor(server) is None:
        return (
            f"Its flavor {server.flavor_name} is no longer available in this project: "
            "choose another one."
        )
    return resume_quota_problem(server)


def resume_flavor_choices(server: Server):
    """Flavors a resume may boot the shelved disk on: usable in the project, and
    at least as big as the disk (Nova sets the shelved image's min_disk to the old
    flavor's disk) and the image's min RAM."""
    if server.project is None:
        return Flavor.objects.none()
    flavors = flavors_usable_by(server.project)
    if server.flavor_disk_gb:
        flavors = flavors.exclude(disk_gb__gt=0, disk_gb__lt=server.flavor_disk_gb)
    return flavors.order_by("ram_mib", "vcpus", "name")


def server_park_request(*, server: Server, actor, verify: bool = False, idempotency_key: str = ""):
    """Check, then record a park; `verify`: boot a test instance from the saved disk
    before calling it parked (as a snapshot's boot test)."""
    server_park_check(server=server, actor=actor)
    return job_create(
        kind=PARK_KIND, actor=actor, project=server.project, site=server.site,
        params={"verify": bool(verify)}, target_server_id=server.openstack_id,
        idempotency_key=idempotency_key,
    )  # fmt: skip


def server_resume_request(
    *, server: Server, actor, flavor: Flavor | None = None, idempotency_key: str = ""
):
    """Check, then record a resume: on its own flavor (unshelve), or on `flavor` (a
    new server from the shelved disk); without a flavor where its own is gone, refuse."""
    server_resume_check(server=server, actor=actor)
    if server.project is None:
        raise ActionRefused(
            gettext("%(server)s belongs to no project the portal knows.") % {"server": server.name}
        )
    if flavor is not None:
        if flavor.site_id != server.site_id or flavor.deleted_at is not None:
            raise ActionRefused(gettext("That flavor is not offered at this site."))
        refusal = flavor_refusal(project=server.project, flavor=flavor)
        if refusal:
            raise ActionRefused(refusal)
        if not resume_flavor_choices(server).filter(pk=flavor.pk).exists():
            raise ActionRefused(
                gettext("Flavor %(flavor)s is too small for %(server)s's disk (%(disk)s GB).")
                % {"flavor": flavor.name, "server": server.name, "disk": server.flavor_disk_gb}
            )
    elif resume_flavor_problem(server):
        raise ActionRefused(resume_flavor_problem(server))
    params = ResumeParams(
        flavor_pk=flavor.pk if flavor else None,
        flavor_id=flavor.openstack_id if flavor else "",
        flavor_name=flavor.name if flavor else "",
    )
    return ServerResume.create(
        actor=actor, project=server.project, site=server.site,
        target_server_id=server.openstack_id, params=params, idempotency_key=idempotency_key,
    )  # fmt: skip


# --- Many at once (the overview's selection, a workshop's seats) ----------------------

# At most this many machines per bulk park or resume (one job each, one INSERT).
PARK_MANY_MAX = 200


@dataclass
class PlannedPark:
    server: Server
    refusal: str  # "": it will be parked (or resumed)


def park_many_plan(*, servers, actor, action: str) -> list[PlannedPark]:
    """For each machine: parked / resumed, or why it is skipped (the rules of the
    single action; a resume whose flavor is gone is done from the machine's page)."""
    from portal.jobs import busy_pks

    busy = busy_pks(servers, target="server")
    rows = []
    for server in servers:
        try:
            if action == "park":
                server_park_check(server=server, actor=actor, busy=busy)
            else:
                server_resume_check(server=server, actor=actor, busy=busy)
                problem = resume_flavor_problem(server)
                if problem:
                    raise ActionRefused(
                        gettext("%(problem)s (resume it from its own page)") % {"problem": problem}
                    )
        except ActionRefused as refused:
            rows.append(PlannedPark(server, refused.message))
        else:
            rows.append(PlannedPark(server, ""))
    return rows


def park_many_request(*, servers, actor, action: str, idempotency_key: str = ""):
    """Plan, then record one park (or resume) job per machine that passes, at once.
    Returns (jobs, plan)."""
    plan = park_many_plan(servers=servers, actor=actor, action=action)
    chosen = [row.server for row in plan if not row.refusal]
    if not chosen:
        return [], plan
    params: object = {"verify": False} if action == "park" else ResumeParams()
    targets: list[dict] = [
        {"project": server.project, "site": server.site,
         "target_server_id": server.openstack_id, "params": params}
        for server in chosen
    ]  # fmt: skip
    if action == "park":
        made = jobs_create(
            kind=PARK_KIND, actor=actor, targets=targets, idempotency_key=idempotency_key
        )
        return made, plan
    made = ServerResume.create_many(actor=actor, targets=targets, idempotency_key=idempotency_key)
    return made, plan


# --- Park ----------------------------------------------------------------------


@dataclass
class ParkState(PowerState):
    # Saved just before the job asked Nova to shelve: a re-run knows it may have.
    shelve_asked: bool = False
    # The shelved image (also the boot test's image: see snapshots.verify).
    image_id: str | None = None
    # The undo asked Nova to unshelve, and to stop a machine that was off before.
    unshelve_asked: bool = False
    stopped_again: bool = False
    undo_start_asked: bool = False


def _refused(ctx: StepContext, server: Server) -> None:
    try:
        server_park_check(server=server, actor=ctx.actor, busy=set())
    except ActionRefused as refused:
        raise StepFailed(refused.message) from refused


def step_park_check(ctx: StepContext) -> None:
    """The page's rules again (the site, the user's rights, the lock, the state)."""
    server = server_of(ctx)
    state: ParkState = ctx.state
    if state.shelve_asked:
        return None  # a re-run after the shelve: the machine is parked by now
    _refused(ctx, server)
    if state.prior_status is None:
        state.prior_status = server.status
    return None


def step_park_stop(ctx: StepContext) -> Wait | Skipped | None:
    if ctx.state.prior_status != "ACTIVE" and not ctx.state.stopped_by_portal:
        return Skipped(gettext_noop("the instance was not running"))
    return step_stop(ctx)


def step_park_wait_stopped(ctx: StepContext) -> Wait | Skipped | None:
    if not ctx.state.stopped_by_portal:
        return Skipped(gettext_noop("the instance was not running"))
    return step_wait_shutoff(ctx)


def step_shelve(ctx: StepContext) -> Wait | None:
    """Ask Nova to shelve, once: a re-run finds Nova shelving (or done) and is content."""
    state: ParkState = ctx.state
    server = server_of(ctx)
    if server.is_parked or server.task_state in SHELVE_TASKS:
        if state.shelve_asked:
            return None
        raise StepFailed(
            say(gettext_noop("%(name)s is being parked by someone else."), name=server.name)
        )
    if server.task_state:
        return busy_wait(ctx, server)
    if server.locked:
        raise StepFailed(server.lock_refusal)
    state.shelve_asked = True
    ctx.checkpoint()
    try:
        cloud.server_shelve(
            ctx.site.name, server_id=server.openstack_id, project_id=server.project_openstack_id
        )
    except cloud.Forbidden as exc:
        raise StepFailed(
            say(
                gettext_noop("%(site)s does not allow parking (shelving) machines: %(message)s"),
                site=ctx.site.display_name,
                message=exc.message,
            )
        ) from exc
    except cloud.Conflict:
        server = server_of(ctx, acted=True)
        if server.is_parked or server.task_state in SHELVE_TASKS:
            return None  # a duplicate delivery's request took
        raise
    server_of(ctx, acted=True)
    return None


def _not_shelved(server: Server) -> str:
    """Nova gave up shelving: the server's status, and Nova's fault if it gave one."""
    if server.fault_message:
        return say(
            gettext_noop("Nova did not shelve the instance; it is %(status)s (%(fault)s)"),
            status=server.status,
            fault=server.fault_message,
        )
    return say(
        gettext_noop("Nova did not shelve the instance; it is %(status)s"), status=server.status
    )


def _nova_is(server: Server, otherwise: str) -> str:
    """What Nova is doing to the server, as a progress line ("Nova is stopping")."""
    return say(gettext_noop("Nova is %(task)s"), task=word(server.task_label or otherwise))


def _new_server_error(fault_message: str) -> str:
    if fault_message:
        return say(gettext_noop("the new server went to ERROR: %(fault)s"), fault=fault_message)
    return gettext_noop("the new server went to ERROR: no reason given")


def _shelve_budget(server: Server) -> float:
    """Seconds Nova may take to snapshot, upload and offload (as a snapshot's upload)."""
    per_gb = settings.JOB_UPLOAD_SECONDS_PER_GB * server.flavor_disk_gb
    return max(settings.JOB_UPLOAD_MIN_SECONDS, per_gb)


def step_park_wait(ctx: StepContext) -> Wait | Done:
    """Parked only once Nova offloaded the machine AND its shelved image is active."""
    state: ParkState = ctx.state
    server = server_of(ctx)
    if server.status == "ERROR":
        raise StepFailed(went_to_error(server.fault_message))
    if server.status != "SHELVED_OFFLOADED" or server.task_state:
        if not server.task_state and server.status not in ("SHELVED",):
            raise StepFailed(_not_shelved(server))
        budget = _shelve_budget(server)
        return Wait(
            progress=_nova_is(server, gettext_noop("parking the instance")),
            observed=server_observed(server),
            watch="server" if site_watched(ctx.site) else "",
            budget=budget,
            over_budget=say(
                gettext_noop("Nova was still %(task)s after %(budget)s"),
                task=word(server.task_label),
                budget=span(budget),
            ),
        )
    image = cloud.server_shelved_image(
        ctx.site.name, server_id=server.openstack_id, server_name=server.name,
        project_id=server.project_openstack_id,
    )  # fmt: skip
    if image is None:
        raise StepFailed(
            gettext_noop("Nova offloaded the instance, but its shelved image is missing")
        )
    if image.status in ("killed", "deleted", "deactivated"):
        raise StepFailed(
            say(
                gettext_noop("the shelved image is %(status)s: the disk was not saved"),
                status=image.status,
            )
        )
    if image.status != "active":
        progress = say(gettext_noop("the shelved image is %(status)s"), status=image.status)
        return Wait(progress=progress, observed=[image.status])
    state.image_id = image.id
    # The saved disk shows among the project's snapshots at once (as the job's own).
    image_refresh(ctx.site, openstack_id=image.id, made_for=ctx.project, made_by=ctx.actor)
    if ctx.project is not None:
        project_quota_refresh(ctx.project)  # what the cloud counts now
    summary = say(
        gettext_noop(
            "%(name)s is parked: it frees %(vcpus)s vCPUs and %(ram)s GiB RAM on the site's hosts."
        ),
        name=server.name,
        vcpus=server.flavor_vcpus,
        ram=round(server.flavor_ram_mib / 1024, 2),
    )
    result = {
        "summary": summary, "vcpus": server.flavor_vcpus, "ram_mib": server.flavor_ram_mib,
        "flavor": server.flavor_name, "image_id": image.id,
        "parked_at": timezone.now().isoformat(),
    }  # fmt: skip
    return Done(summary, result=result)


def undo_unshelve(ctx: StepContext) -> Wait | Skipped | None:
    """Bring a shelved machine back (Nova refuses while it still shelves: wait)."""
    state: ParkState = ctx.state
    if not state.shelve_asked:
        return Skipped(gettext_noop("nothing was shelved"))
    server = server_of(ctx)
    if server.task_state:
        return server_wait(
            ctx,
            server,
            say(gettext_noop("waiting for Nova to finish %(task)s"), task=word(server.task_label)),
        )
    if server.is_parked:
        if not state.unshelve_asked:
            state.unshelve_asked = True
            ctx.checkpoint()
            cloud.server_unshelve(
                ctx.site.name, server_id=server.openstack_id,
                project_id=server.project_openstack_id,
            )  # fmt: skip
            server = server_of(ctx, acted=True)
        return server_wait(ctx, server, "unshelving")
    if not state.unshelve_asked:
        return Skipped(gettext_noop("Nova did not shelve the instance"))
    was_off = state.prior_status not in ("ACTIVE", None)
    if server.status == "ACTIVE" and was_off and not state.stopped_again:
        # It was off before the park: off again, as it was.
        state.stopped_again = True
        ctx.checkpoint()
        with contextlib.suppress(cloud.Conflict):
            cloud.server_stop(ctx.site.name, server_id=server.openstack_id)
        server_of(ctx, acted=True)
    return None


def undo_restart(ctx: StepContext) -> Wait | Skipped | None:
    """Start the machine again if this job stopped it."""
    state: ParkState = ctx.state
    if not state.stopped_by_portal:
        return Skipped(gettext_noop("the job did not stop the instance"))
    server = server_of(ctx)
    if server.status == "ACTIVE" and not server.task_state:
        return None
    if server.is_parked:
        return Skipped(gettext_noop("the instance is still parked"))
    if not state.undo_start_asked:
        outcome = step_start(ctx)
        if outcome is not None:
            return outcome
        state.undo_start_asked = True
    return step_wait_active(ctx)


# The park job's steps. The kind (snapshots.park.ServerPark) adds the optional boot
# test of the saved disk, which lives above this app; the pages here record the job
# by its name (PARK_KIND), as the engine knows kinds by name.
PARK_KIND = "server.park"
PARK_STEPS = (
    Step("check", gettext_noop("Checking the request"), step_park_check, acts=False),
    Step(
        "stop",
        gettext_noop("Stopping the instance"),
        step_park_stop,
        undo=Step("undo_restart", gettext_noop("Starting the instance again"), undo_restart),
    ),
    Step("wait_stopped", gettext_noop("Waiting for SHUTOFF"), step_park_wait_stopped, acts=False),
    Step(
        "shelve",
        gettext_noop("Shelving (Nova saves the disk as an image)"),
        step_shelve,
        undo=Step("undo_unshelve", gettext_noop("Unshelving the instance"), undo_unshelve),
    ),
    Step("wait", gettext_noop("Waiting until parked"), step_park_wait, acts=False),
)


# --- Resume --------------------------------------------------------------------


@dataclass
class ResumeParams:
    # Another flavor (a new server from the shelved image); none: unshelve.
    flavor_pk: int | None = None
    flavor_id: str = ""
    flavor_name: str = ""


@dataclass
class ResumeState(PowerState):
    unshelve_asked: bool = False
    # The new-flavor path: the shelved image, the new server, and when it was asked.
    image_id: str = ""
    new_server_id: str = ""
    boot_asked_at: str | None = None
    old_deleted: bool = False
    old_addresses: list[str] | None = None


def step_resume_check(ctx: StepContext) -> None:
    state: ResumeState = ctx.state
    if state.unshelve_asked or state.boot_asked_at:
        return None  # a re-run after the request
    server = server_of(ctx)
    try:
        server_resume_check(server=server, actor=ctx.actor, busy=set())
    except ActionRefused as refused:
        raise StepFailed(refused.message) from refused
    state.old_addresses = list(server.addresses or [])
    if not ctx.params.flavor_id:
        if resume_flavor_problem(server):
            raise StepFailed(resume_flavor_problem(server))
        return None
    image = cloud.server_shelved_image(
        ctx.site.name, server_id=server.openstack_id, server_name=server.name,
        project_id=server.project_openstack_id,
    )  # fmt: skip
    if image is None or image.status != "active":
        raise StepFailed(
            gettext_noop("the shelved image of this instance is missing or not active")
        )
    state.image_id = image.id
    return None


def step_unshelve(ctx: StepContext) -> Wait | Skipped | None:
    state: ResumeState = ctx.state
    if ctx.params.flavor_id:
        return Skipped(gettext_noop("resuming on another flavor"))
    server = server_of(ctx)
    if server.task_state in UNSHELVE_TASKS or (server.status == "ACTIVE" and state.unshelve_asked):
        return None
    if server.task_state:
        return busy_wait(ctx, server)
    if server.locked:
        raise StepFailed(server.lock_refusal)
    state.unshelve_asked = True
    ctx.checkpoint()
    try:
        cloud.server_unshelve(
            ctx.site.name, server_id=server.openstack_id, project_id=server.project_openstack_id
        )
    except cloud.Forbidden as exc:
        raise StepFailed(
            say(
                gettext_noop(
                    "the cloud refused to resume %(name)s (%(message)s); resume it on "
                    "another flavor, or free some quota"
                ),
                name=server.name,
                message=exc.message,
            )
        ) from exc
    except cloud.Conflict:
        server = server_of(ctx, acted=True)
        if server.task_state in UNSHELVE_TASKS or server.status == "ACTIVE":
            return None
        raise
    server_of(ctx, acted=True)
    return None


def step_resume_wait(ctx: StepContext) -> Wait | Skipped | None:
    if ctx.params.flavor_id:
        return Skipped(gettext_noop("resuming on another flavor"))
    server = server_of(ctx)
    if server.status == "ACTIVE" and not server.task_state:
        return None
    if server.status == "ERROR":
        raise StepFailed(went_to_error(server.fault_message))
    return server_wait(ctx, server, _nova_is(server, gettext_noop("resuming the instance")))


def _project(ctx: StepContext) -> Project:
    if ctx.project is None:
        raise StepFailed(gettext_noop("the instance belongs to no project the portal knows"))
    return ctx.project


def _own_new_server(ctx: StepContext, name: str) -> cloud.CloudServer | None:
    found = cloud.server_find(ctx.site.name, project_id=_project(ctx).openstack_id, name=name)
    mine = [
        s for s in found
        if s.id != ctx.target_server_id and not s.is_deleted
        and ctx.made_by_me(s, asked_at=ctx.state.boot_asked_at)
    ]  # fmt: skip
    return mine[0] if mine else None


def step_reboot_on_flavor(ctx: StepContext) -> Skipped | None:
    """Boot a new server from the shelved image on the chosen flavor, same name and
    metadata; a re-run after a cut-off request adopts the server it made (marker)."""
    state: ResumeState = ctx.state
    if not ctx.params.flavor_id:
        return Skipped(gettext_noop("resuming on its own flavor"))
    if state.new_server_id:
        return None
    server = server_of(ctx)
    if state.boot_asked_at is not None:
        existing = _own_new_server(ctx, server.name)
        if existing is not None:
            state.new_server_id = existing.id
            ctx.authorship_record(existing.id)
            return None
    state.boot_asked_at = timezone.now().isoformat()
    ctx.checkpoint()
    metadata = {k: v for k, v in (server.metadata or {}).items() if k != JOB_KEY}
    metadata[JOB_KEY] = ctx.key
    if ctx.actor is not None:
        metadata[CREATED_BY_KEY] = ctx.actor.username
    project = _project(ctx)
    try:
        created = cloud.server_create(
            ctx.site.name, project_id=project.openstack_id, name=server.name,
            flavor_id=ctx.params.flavor_id, image_id=state.image_id, metadata=metadata,
            network_ids=launch_networks(project=project, chosen_ids=None),
            key_name=_key_pair_kept(ctx, server),
        )  # fmt: skip
    except (cloud.BadRequest, cloud.Forbidden, cloud.Conflict) as exc:
        raise StepFailed(
            say(gettext_noop("the cloud refused the new server: %(message)s"), message=exc.message)
        ) from exc
    state.new_server_id = created.id
    ctx.authorship_record(created.id)
    server_refresh(ctx.site, openstack_id=created.id)
    return None


def _key_pair_kept(ctx: StepContext, server: Server) -> str | None:
    """The parked machine's key pair for its successor: a portal key pair is imported
    again if the cloud lost it; another one only if this account can still use it."""
    if not server.key_name:
        return None
    key = ssh_key_of_keypair(server.key_name)
    if key is not None:
        return keypair_ensure(site=ctx.site.name, key=key)
    try:
        cloud.keypair_get(ctx.site.name, name=server.key_name)
    except cloud.NotFound:
        return None  # not the portal's, and gone: the summary says the key is missing
    return server.key_name


def _shelved_images_refresh(ctx: StepContext, server_id: str) -> None:
    """Nova deletes a parked machine's saved disk once it runs again (or with it): the
    mirror learns it now, not at the next full sync (Glance lists no deleted images)."""
    rows = Image.objects.filter(
        site=ctx.site, source_server_openstack_id=server_id, name__endswith="-shelved",
        deleted_at__isnull=True,
    )  # fmt: skip
    for openstack_id in rows.values_list("openstack_id", flat=True)[:10]:
        image_refresh(ctx.site, openstack_id=openstack_id)


def step_new_server_wait(ctx: StepContext) -> Wait | Skipped | None:
    state: ResumeState = ctx.state
    if not ctx.params.flavor_id:
        return Skipped(gettext_noop("resuming on its own flavor"))
    new = server_refresh(ctx.site, openstack_id=state.new_server_id)
    if new is None or new.is_deleted:
        raise StepFailed(gettext_noop("the new server vanished"))
    if new.status == "ERROR":
        raise StepFailed(_new_server_error(new.fault_message))
    if new.status != "ACTIVE" or new.task_state:
        progress = say(gettext_noop("booting on %(flavor)s"), flavor=ctx.params.flavor_name)
        return Wait(progress=progress, observed=server_observed(new))
    return None


def step_old_delete(ctx: StepContext) -> Skipped | None:
    """Delete the parked server, only now that its successor runs (Nova deletes the
    shelved image with it)."""
    state: ResumeState = ctx.state
    if not ctx.params.flavor_id:
        return Skipped(gettext_noop("resuming on its own flavor"))
    if not state.old_deleted:
        with contextlib.suppress(cloud.NotFound):
            cloud.server_delete(ctx.site.name, server_id=ctx.target_server_id)
        state.old_deleted = True
        ctx.checkpoint()
    server_refresh(ctx.site, openstack_id=ctx.target_server_id)
    return None


def step_resume_done(ctx: StepContext) -> Done:
    state: ResumeState = ctx.state
    if ctx.project is not None:
        project_quota_refresh(ctx.project)
    _shelved_images_refresh(ctx, ctx.target_server_id)
    if not ctx.params.flavor_id:
        server = server_of(ctx, acted=True)
        summary = say(
            gettext_noop("%(name)s runs again, on %(flavor)s."),
            name=server.name,
            flavor=server.flavor_name,
        )
        return Done(summary, result={"summary": summary, "server_id": server.openstack_id})
    new = Server.objects.filter(site=ctx.site, openstack_id=state.new_server_id).first()
    ips = (
        ", ".join(new.addresses) if new is not None and new.addresses else word(gettext_noop("new"))
    )
    old = ", ".join(state.old_addresses or []) or word(gettext_noop("none"))
    summary = say(
        gettext_noop(
            "%(name)s runs again, on %(flavor)s, as a new server: its IP changed "
            "from %(old)s to %(new)s."
        ),
        name=new.name if new is not None else word(gettext_noop("the instance")),
        flavor=ctx.params.flavor_name,
        old=old,
        new=ips,
    )

    result = {"summary": summary, "server_id": state.new_server_id, "new_server_pk": new.pk
              if new is not None else None}  # fmt: skip
    return Done(summary, result=result)


def undo_new_server(ctx: StepContext) -> Skipped | None:
    """Delete the new server; the parked one stays as it was."""
    state: ResumeState = ctx.state
    if not state.new_server_id:
        if state.boot_asked_at is None:
            return Skipped(gettext_noop("no new server was made"))
        found = _own_new_server(ctx, server_of(ctx).name)
        if found is None:
            return Skipped(gettext_noop("no new server was made"))
        state.new_server_id = found.id
    with contextlib.suppress(cloud.NotFound):
        cloud.server_delete(ctx.site.name, server_id=state.new_server_id)
    server_refresh(ctx.site, openstack_id=state.new_server_id)
    return None


class ServerResume(Kind):
    """Unshelve; or, on another flavor, a new server from the shelved disk."""

    name = "server.resume"
    Params = ResumeParams
    State = ResumeState
    steps = (
        Step("check", gettext_noop("Checking the request"), step_resume_check, acts=False),
        Step("unshelve", gettext_noop("Unshelving"), step_unshelve),
        Step("wait", gettext_noop("Waiting for ACTIVE"), step_resume_wait, acts=False),
        Step(
            "boot",
            gettext_noop("Booting the saved disk on the chosen flavor"),
            step_reboot_on_flavor,
            undo=Step("undo_boot", gettext_noop("Deleting the new server"), undo_new_server),
        ),
        Step(
            "boot_wait",
            gettext_noop("Waiting for the new server"),
            step_new_server_wait,
            acts=False,
        ),
        Step("old_delete", gettext_noop("Deleting the parked server"), step_old_delete),
        Step("done", gettext_noop("Summing up"), step_resume_done, acts=False),
    )

    @classmethod
    def title(cls, params: ResumeParams) -> str:
        if params.flavor_name:
            return gettext("Resume instance on %(flavor)s") % {"flavor": params.flavor_name}
        return gettext("Resume instance")
