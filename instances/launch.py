"""Launching instances from an image or a snapshot, one or a workshop's worth.

The rules (compatibility, quota, names) live here; the form, the request and
the job all call them, so the job re-checks exactly what the page checked.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet

from images.models import BootTest, Image
from instances.models import Flavor, Network, Server
from instances.selectors import networks_usable_by
from instances.services import server_delete_request
from portal.access import can_act_on, projects_visible_to
from portal.errors import ActionRefused
from portal.jobs import job_repeated
from portal.models import Job, Project
from portal.sites import network_refs, site_networks

MAX_NAME = 63
MAX_COUNT = 100

# German letters first, so "Müller" becomes "mueller", not "muller"; then the
# Latin letters Unicode does not decompose into a base letter plus accent.
_SPELLED = str.maketrans(
    {
        "ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss",
        "Ł": "L", "ł": "l", "Ø": "O", "ø": "o", "Đ": "D", "đ": "d", "Æ": "AE", "æ": "ae",
        "Œ": "OE", "œ": "oe", "ı": "i", "Þ": "Th", "þ": "th",
    }
)  # fmt: skip


def hostname_part(text: str) -> str:
    """Letters, digits and dashes only: transliterated, lower case, no edge dashes."""
    ascii_text = unicodedata.normalize("NFKD", text.translate(_SPELLED))
    ascii_text = ascii_text.encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def instance_names(*, prefix: str, participants: list[str], count: int) -> list[str]:
    """Final instance names: prefix + participant (or a number), ≤63 characters, unique.

    One instance keeps the prefix as its name. Collisions (two "Anna"s, or
    names cut at 63 characters) get -2, -3… so nothing is silently merged.
    Linear in the number of names: each base name remembers its next suffix.
    Callers bound `count` and `participants` (MAX_COUNT) before calling.
    """
    base = hostname_part(prefix) or "vm"
    if count == 1 and not participants:
        return [base[:MAX_NAME]]
    labels = [participant_parts(p)[0] for p in participants] or [
        str(i) for i in range(1, count + 1)
    ]
    names: list[str] = []
    used: set[str] = set()
    next_suffix: dict[str, int] = {}
    for label in labels:
        part = hostname_part(label) or "participant"
        candidate = f"{base}-{part}"[:MAX_NAME].rstrip("-")
        unique = candidate
        if unique in used:
            n = next_suffix.get(candidate, 2)
            while unique in used:
                suffix = f"-{n}"
                unique = candidate[: MAX_NAME - len(suffix)].rstrip("-") + suffix
                n += 1
            next_suffix[candidate] = n
        used.add(unique)
        names.append(unique)
    return names


_EMAIL = re.compile(r"\s*<\s*([^<>\s]+@[^<>\s]+)\s*>\s*$")


def participant_parts(line: str) -> tuple[str, str]:
    """("Anna Example", "anna@example.org") from "Anna Example <anna@example.org>";
    the email is optional."""
    found = _EMAIL.search(line)
    if not found:
        return line.strip(), ""
    return line[: found.start()].strip() or found.group(1), found.group(1)


def participants_from(text: str, *, limit: int = MAX_COUNT + 1) -> list[str]:
    """One participant per line; blank lines ignored; at most `limit` (one more than
    allowed, so a caller can tell "too many" without reading a million lines)."""
    found = []
    for line in (text or "").splitlines():
        line = line.strip()
        if line:
            found.append(line)
            if len(found) >= limit:
                break
    return found


def fit_problems(*, image: Image, flavor: Flavor) -> list[str]:
    """Why `image` cannot boot on `flavor` (empty when it can)."""
    problems = []
    if image.is_volume_snapshot:
        problems.append(
            "it was made from an instance booted from a volume: booting it makes volumes "
            "the portal cannot clean up"
        )
    if image.status != "active":
        problems.append(f"it is {image.status}, not active")
    if flavor.disk_gb and image.min_disk and flavor.disk_gb < image.min_disk:
        problems.append(f"needs {image.min_disk} GB disk, the flavor has {flavor.disk_gb} GB")
    if image.min_ram and flavor.ram_mib < image.min_ram:
        problems.append(f"needs {image.min_ram} MiB RAM, the flavor has {flavor.ram_mib} MiB")
    return problems


def quota_problem(*, project: Project, flavor: Flavor, count: int) -> str:
    """A message when the batch does not fit the project's mirrored quota, else ""."""
    if project.quota_instances is None:
        return ""  # never synced: the cloud will enforce it, the job re-checks live
    need = {"instances": count, "vCPUs": count * flavor.vcpus, "MiB RAM": count * flavor.ram_mib}
    quota = {
        "instances": (project.quota_instances, project.used_instances),
        "vCPUs": (project.quota_cores, project.used_cores),
        "MiB RAM": (project.quota_ram_mib, project.used_ram_mib),
    }
    # Nova reports an unlimited quota as -1: nothing to fit into.
    free = {
        k: limit - used for k, (limit, used) in quota.items() if limit is not None and limit >= 0
    }
    short = [f"{need[k]:,} {k} (free: {max(free[k], 0):,})" for k in free if need[k] > free[k]]
    if not short:
        return ""
    return (
        f"This launch does not fit project {project.name}'s quota: it needs "
        + ", ".join(short)
        + ". Launch fewer instances, pick a smaller flavor, or ask for more quota."
    )


def flavor_refusal(*, project: Project, flavor: Flavor) -> str:
    """Why the project's servers cannot run on `flavor` (a private flavor without
    the project on its access list), or ""."""
    if flavor.usable_in(project):
        return ""
    return f"Flavor {flavor.name} is not available in project {project.name}."


def configured_networks(project: Project) -> list[str]:
    """The networks (names or ids) set for the project's new machines: the
    project's own setting, else its site's PORTAL_SITE_NETWORKS; [] when neither."""
    return network_refs(project.network_ids) or site_networks(project.site.name)


def network_question(project: Project) -> QuerySet[Network]:
    """The networks the launch page must offer (the project may use several and
    nothing says which one), or none when it need not ask."""
    usable = networks_usable_by(project)
    if configured_networks(project) or usable.count() < 2:
        return usable.none()
    return usable


def launch_networks(*, project: Project, chosen_ids: Sequence[str] | None) -> list[str] | None:
    """The ids of the networks the project's new machines join; None for Nova's
    "auto" (the project may use no network the portal knows of: Nova may allocate
    one). In order: the configured networks (project, then site); the ones chosen
    (on the page, or carried by a job); the project's only usable network, by id.
    Several and none chosen: refused, since Nova would answer each machine with
    409 "Multiple possible networks found"."""
    usable = list(networks_usable_by(project))
    configured = configured_networks(project)
    if configured:
        ids = []
        for ref in configured:
            found = next((n for n in usable if n.openstack_id == ref), None) or next(
                (n for n in usable if n.name == ref), None
            )
            if found is None:
                raise ActionRefused(
                    f"Network {ref}, set for new machines of project {project.name}, is not "
                    "available in it; ask the portal's operators to correct the setting.",
                    status=409,
                )
            ids.append(found.openstack_id)
        return ids
    if chosen_ids:
        by_id = {n.openstack_id: n for n in usable}
        for network_id in chosen_ids:
            if network_id not in by_id:
                known = Network.objects.filter(site_id=project.site_id, openstack_id=network_id)
                label = next((n.name for n in known if n.name), network_id)
                raise ActionRefused(
                    f"Network {label} is not available in project {project.name}.", status=400
                )
        return list(chosen_ids)
    if len(usable) == 1:
        return [usable[0].openstack_id]
    if not usable:
        return None
    names = ", ".join(n.name or n.openstack_id for n in usable)
    raise ActionRefused(
        f"Choose a network: project {project.name} has several ({names}).", status=400
    )


@dataclass(frozen=True)
class LaunchPlan:
    project: Project
    flavor: Flavor
    image: Image
    names: list[str]
    participants: list[str]
    prefix: str
    # The networks the machines join (ids); None: Nova's "auto".
    network_ids: list[str] | None = None


def boot_tests_of(images) -> dict[tuple[int, str], BootTest]:
    """{(site id, image id): latest boot test} for the images given, in one query."""
    ids = {image.openstack_id for image in images}
    return {(t.site_id, t.openstack_id): t for t in BootTest.objects.filter(openstack_id__in=ids)}


def unbootable_check(*, image: Image, count: int, confirmed: bool) -> None:
    """A workshop (several machines) from a snapshot that did not boot in its last
    test needs an explicit "launch anyway"."""
    if count <= 1 or confirmed:
        return
    test = boot_tests_of([image]).get((image.site_id, image.openstack_id))
    if test is not None and test.outcome == BootTest.Outcome.FAILED:
        raise ActionRefused(
            f"{image.name} did not boot in its last test ({test.reason}). Tick “Launch anyway” "
            f"to start {count} machines from it.",
            status=409,
        )


def launch_check(
    *, actor, project: Project, flavor: Flavor, image: Image, prefix: str, count: int,
    participants: list[str], network_ids: Sequence[str] | None = None,
) -> LaunchPlan:  # fmt: skip
    """Every launch rule; raises ActionRefused with the message for the user.
    `network_ids`: the networks chosen on the page (or carried by the job)."""
    if not projects_visible_to(actor).filter(pk=project.pk).exists():
        raise ActionRefused("You are not a member of this project.", status=403)
    if not project.site.is_reachable:
        raise ActionRefused(f"{project.site.display_name} is unreachable; try again later.")
    if flavor.site_id != project.site_id or image.site_id != project.site_id:
        raise ActionRefused("Flavor and image must be on the project's site.", status=400)
    if flavor.deleted_at or image.deleted_at:
        raise ActionRefused("That flavor or image no longer exists.", status=400)
    refusal = flavor_refusal(project=project, flavor=flavor)
    if refusal:
        raise ActionRefused(refusal, status=400)
    if image.is_snapshot and image.project_id != project.pk:
        raise ActionRefused(
            "Snapshots can be launched only in the project that owns them.", status=400
        )
    if (
        not image.is_snapshot
        and image.visibility not in ("public", "community")
        and image.project_id != project.pk
    ):
        raise ActionRefused("This image is not available to the project.", status=400)
    problems = fit_problems(image=image, flavor=flavor)
    if problems:
        raise ActionRefused(
            f"{image.name} cannot boot on {flavor.name}: " + "; ".join(problems) + ".", status=400
        )
    if participants:
        count = len(participants)
    if not 1 <= count <= MAX_COUNT:
        raise ActionRefused(f"Launch between 1 and {MAX_COUNT} instances at once.", status=400)
    message = quota_problem(project=project, flavor=flavor, count=count)
    if message:
        raise ActionRefused(message, status=400)
    # Without a name, instances are named after what they boot.
    prefix = prefix.strip() or image.name
    names = instance_names(prefix=prefix, participants=participants, count=count)
    networks = launch_networks(project=project, chosen_ids=network_ids)
    return LaunchPlan(project, flavor, image, names, participants, prefix, networks)


# Called with (job, plan) after a launch with participants was recorded; the
# workshops app registers here (instances cannot import it: it sits above).
launch_listeners: list = []


def instance_launch_request(
    *, actor, plan: LaunchPlan, idempotency_key: str = "", notify: bool = True
) -> Job:
    """Record the launch job; with participants, tell the listeners (unless the
    caller is the workshop itself, adding seats)."""
    job = _launch_job(actor=actor, plan=plan, idempotency_key=idempotency_key)
    if plan.participants and notify:
        for listener in launch_listeners:
            listener(job, plan)
    return job


def _launch_job(*, actor, plan: LaunchPlan, idempotency_key: str) -> Job:
    # At call time: the job kind's steps import this module's checks.
    from instances.jobs import InstancesLaunch

    return InstancesLaunch.create(
        actor=actor,
        idempotency_key=idempotency_key,
        project=plan.project,
        site=plan.project.site,
        target_image_id=plan.image.openstack_id,
        params=InstancesLaunch.Params(
            prefix=plan.prefix,
            names=plan.names,
            participants=plan.participants,
            flavor_id=plan.flavor.openstack_id,
            flavor_pk=plan.flavor.pk,
            image_pk=plan.image.pk,
            image_id=plan.image.openstack_id,
            network_ids=plan.network_ids,
        ),
    )


# --- Retrying the failed seats of a finished launch --------------------------------
#
# A retry acts on the present, never on what the launch saw when it ended: a seat
# that was still building when the launch gave up may be running now, with a
# participant working on it. So the seats are read from the mirror at the moment
# of asking, shown in a confirmation, and read again when the confirmation is
# posted; a seat is retried only when both times its machine is ERROR or gone.

REPLACE = "replace"  # its ERROR machine is deleted, then the seat launched again
LAUNCH = "launch"  # it has no machine (never made, or deleted): launched again

# Why a seat that holds a machine in this state is left alone.
_KEPT = {
    "BUILD": "still starting, not retried",
    "ACTIVE": "running, not replaced",
    "SHUTOFF": "stopped, not failed: start it from its page",
}


@dataclass(frozen=True)
class SeatCheck:
    """One seat of a finished launch as the mirror shows it now, and what a retry
    does with it: REPLACE, LAUNCH, or "" (left alone; `reason` says why)."""

    index: int
    name: str
    participant: str
    server: Server | None
    action: str
    reason: str
    retried_by: int | None = None  # the retry job started for this seat already


@dataclass(frozen=True)
class RetryPlan:
    """The seats of `job` that failed or whose machine is ERROR now, each checked;
    `retries`: the retries already started for seats of this launch."""

    job: Job
    seats: list[SeatCheck]
    retries: list[Job]

    @property
    def retried(self) -> list[SeatCheck]:
        return [seat for seat in self.seats if seat.action]

    @property
    def replace(self) -> list[SeatCheck]:
        return [seat for seat in self.seats if seat.action == REPLACE]

    @property
    def launch(self) -> list[SeatCheck]:
        return [seat for seat in self.seats if seat.action == LAUNCH]

    @property
    def kept(self) -> list[SeatCheck]:
        return [seat for seat in self.seats if not seat.action]


class AlreadyRetried(ActionRefused):
    """The seats asked for are being (or were) launched again by `job`: a second
    click from another tab, or a second person, is sent there instead."""

    def __init__(self, message: str, *, job: Job):
        super().__init__(message, status=409)
        self.job = job


# Called with (launch job, retry job) when a retry of some of its seats was
# recorded; the workshops app registers here to move its seats to the retry.
retry_listeners: list = []


def _check_followup(job: Job, actor) -> None:
    if job.kind != "instances.launch" or not job.is_finished:
        raise ActionRefused("Only a finished launch has failed seats.", status=400)
    if not can_act_on(actor, project=job.project, created_by_id=job.actor_id):
        raise ActionRefused(
            "Only whoever launched these machines, or a project admin, may do that.", status=403
        )


def launch_retries(job: Job) -> list[Job]:
    """The retries started for seats of `job`, oldest first."""
    return list(
        Job.objects.filter(
            kind="instances.launch", site=job.site_id, created_at__gte=job.created_at,
            params__retry_of=job.pk,
        ).order_by("pk")
    )  # fmt: skip


def _seat_action(job: Job, index: int, server: Server | None) -> tuple[str, str]:
    """(action, reason) for seat `index` of `job`, whose machine the mirror shows as `server`."""
    if server is None or server.is_deleted:
        if str(index) in job.state.get("servers", {}):
            return LAUNCH, "its machine is gone"
        outcome = job.state.get("outcomes", {}).get(str(index), "").removeprefix("failed: ")
        return LAUNCH, f"no machine: {outcome or 'never created'}"
    if server.status != "ERROR":
        return "", _KEPT.get(server.status, f"{server.status}, not retried")
    if server.locked:
        locked = f" ({server.locked_reason})" if server.locked_reason else ""
        return "", f"ERROR, but locked{locked}: the portal does not delete it"
    if server.task_state:
        return "", f"ERROR, and Nova is busy ({server.task_label}): try again when that ends"
    return REPLACE, f"ERROR: {server.fault_message or 'the cloud gave no reason'}"


def _seat_check(job: Job, index: int, server: Server | None, retried_by: int | None) -> SeatCheck:
    participants = job.params.get("participants", [])
    participant = participant_parts(participants[index])[0] if index < len(participants) else ""
    if retried_by is not None:
        action, reason = "", f"launched again by job #{retried_by}"
    else:
        action, reason = _seat_action(job, index, server)
    name = job.params["names"][index]
    return SeatCheck(index, name, participant, server, action, reason, retried_by)


def launch_retry_plan(*, job: Job, actor) -> RetryPlan:
    """What retrying the failed seats of `job` would do now, seat by seat, from the
    mirror: a seat whose machine is ERROR is replaced, one without a machine is
    launched; one whose machine builds, runs or is stopped is left alone, and so
    is one a retry was started for already (its own failures are retried from that
    retry). The seats looked at: those the launch recorded as failed, and those
    whose machine went ERROR since (a seat that ran and was deleted since is not a
    failure of the launch)."""
    _check_followup(job, actor)
    held = job.state.get("servers", {})
    rows = {
        row.openstack_id: row
        for row in Server.objects.filter(site=job.site_id, openstack_id__in=list(held.values()))
    }
    retries = launch_retries(job)
    # Seat names are unique within a launch, and a retry carries the names it launches.
    retried_by = {name: retry.pk for retry in retries for name in retry.params.get("names", [])}
    failed = set(job.result.get("failed_seats", []))
    seats = []
    for index, name in enumerate(job.params["names"]):
        server = rows.get(held.get(str(index), ""))
        if index in failed or (server is not None and server.status == "ERROR"):
            seats.append(_seat_check(job, index, server, retried_by.get(name)))
    return RetryPlan(job, seats, retries)


def launch_followups(job: Job, actor) -> RetryPlan | None:
    """What the page of `job` offers after it: the retry plan of a finished launch
    `actor` may act on, else None."""
    try:
        return launch_retry_plan(job=job, actor=actor)
    except ActionRefused:
        return None


def _lock(job: Job) -> None:
    """Hold `job`'s row until the transaction ends: two requests for its seats (two
    tabs, two people) take turns, and the second sees the first one's job.
    (On SQLite every write transaction starts IMMEDIATE, which does the same.)"""
    Job.objects.select_for_update().filter(pk=job.pk).values_list("pk", flat=True).first()


def _confirmed(plan: RetryPlan, names: Collection[str] | None, *, chosen: list[SeatCheck]):
    """Refuse when none of the seats the confirmation showed (`names`) is left to
    act on, saying why; seats launched again meanwhile send the user to that job."""
    if chosen:
        return
    if not names:
        raise ActionRefused("Choose the seats on the confirmation page.", status=400)
    shown = [seat for seat in plan.seats if seat.name in names]
    if shown and all(seat.retried_by for seat in shown):
        latest = max(seat.retried_by for seat in shown)
        raise AlreadyRetried(
            f"These seats were launched again already, by job #{latest}; its own failed "
            "seats can be retried from its page.",
            job=next(retry for retry in plan.retries if retry.pk == latest),
        )
    reasons = "; ".join(f"{seat.name}: {seat.reason}" for seat in shown)
    raise ActionRefused(
        "Nothing to retry: " + (reasons or "none of these seats failed") + ".", status=409
    )


def launch_retry_request(
    *, job: Job, actor, names: Collection[str] | None = None, idempotency_key: str = ""
) -> Job:
    """A new launch of the failed seats of `job` that still have no running machine
    (see launch_retry_plan), with their names and participants; their ERROR
    machines are deleted first. `names`: the seats the confirmation showed (None:
    every seat the plan retries now)."""
    with transaction.atomic():
        _lock(job)
        repeated = job_repeated(actor=actor, key=idempotency_key)
        if repeated is not None:
            return repeated  # the same form again: its job exists already
        plan = launch_retry_plan(job=job, actor=actor)
        names = set(names) if names is not None else None
        chosen = [seat for seat in plan.retried if names is None or seat.name in names]
        _confirmed(plan, names, chosen=chosen)
        participants = job.params.get("participants", [])
        # The same flavor and networks as the launch, if the project may still use them
        # (the new job checks again before it creates anything).
        flavor = Flavor.objects.filter(pk=job.params.get("flavor_pk")).first()
        if flavor is None or flavor.deleted_at:
            raise ActionRefused("The launch's flavor no longer exists.", status=409)
        refusal = flavor_refusal(project=job.project, flavor=flavor)
        if refusal:
            raise ActionRefused(refusal, status=409)
        networks = launch_networks(project=job.project, chosen_ids=job.params.get("network_ids"))
        from instances.jobs import InstancesLaunch  # at call time, as above

        retry = InstancesLaunch.create(
            actor=actor,
            idempotency_key=idempotency_key,
            project=job.project,
            site=job.site,
            target_image_id=job.params["image_id"],
            params=InstancesLaunch.Params(
                **{
                    **job.params,
                    "names": [seat.name for seat in chosen],
                    "participants": [
                        participants[seat.index]
                        for seat in chosen
                        if seat.index < len(participants)
                    ],
                    "network_ids": networks,
                    "retry_of": job.pk,
                    "replaces": [
                        {"id": seat.server.openstack_id, "name": seat.server.name}
                        for seat in chosen
                        if seat.action == REPLACE
                    ],
                }
            ),
        )
        for listener in retry_listeners:
            listener(job, retry)
    return retry


def launch_failed_delete_request(
    *, job: Job, actor, names: Collection[str] | None = None, idempotency_key: str = ""
) -> Job:
    """Delete the ERROR machines the failed seats of `job` hold now (they use quota),
    never a machine that builds or runs. `names`: the seats the confirmation showed
    (None: every one). The delete's own rules apply (locked, being deleted...)."""
    plan = launch_retry_plan(job=job, actor=actor)
    names = set(names) if names is not None else None
    chosen = [seat for seat in plan.replace if names is None or seat.name in names]
    if not chosen:
        raise ActionRefused("None of these failed seats holds an ERROR machine now.", status=409)
    delete, checked = server_delete_request(
        servers=[seat.server for seat in chosen], actor=actor, idempotency_key=idempotency_key
    )
    if delete is None:
        reasons = "; ".join(f"{server.name}: {reason}" for server, reason in checked.skipped)
        raise ActionRefused(f"Nothing to delete: {reasons}.", status=409)
    return delete
