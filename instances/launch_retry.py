"""Retrying the failed seats of a finished launch, and deleting their ERROR machines.

A retry acts on the present, never on what the launch saw when it ended: a seat
that was still building when the launch gave up may be running now, with a
participant working on it. So the seats are read from the mirror at the moment
of asking, shown in a confirmation, and read again when the confirmation is
posted; a seat is retried only when both times its machine is ERROR or gone.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from django.db import transaction
from django.utils.translation import gettext

from instances.jobs import InstancesLaunch
from instances.launch_rules import flavor_refusal, launch_networks
from instances.models import Flavor, Server
from instances.participants import participant_parts
from instances.services import server_delete_request
from portal.access import can_act_on
from portal.errors import ActionRefused
from portal.jobs import job_repeated
from portal.models import Job

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
        raise ActionRefused(gettext("Only a finished launch has failed seats."), status=400)
    if not can_act_on(actor, project=job.project, created_by_id=job.actor_id):
        raise ActionRefused(
            gettext("Only whoever launched these machines, or a project admin, may do that."),
            status=403,
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
        raise ActionRefused(gettext("Choose the seats on the confirmation page."), status=400)
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
        gettext("Nothing to retry: %(reasons)s.")
        % {"reasons": reasons or gettext("none of these seats failed")},
        status=409,
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
            raise ActionRefused(gettext("The launch's flavor no longer exists."), status=409)
        refusal = flavor_refusal(project=job.project, flavor=flavor)
        if refusal:
            raise ActionRefused(refusal, status=409)
        networks = launch_networks(project=job.project, chosen_ids=job.params.get("network_ids"))
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
        raise ActionRefused(
            gettext("None of these failed seats holds an ERROR machine now."), status=409
        )
    delete, checked = server_delete_request(
        servers=[seat.server for seat in chosen], actor=actor, idempotency_key=idempotency_key
    )
    if delete is None:
        reasons = "; ".join(f"{server.name}: {reason}" for server, reason in checked.skipped)
        raise ActionRefused(
            gettext("Nothing to delete: %(reasons)s.") % {"reasons": reasons}, status=409
        )
    return delete
