"""Workshop writes: created from a launch with participants; retry failed seats,
add late participants, tear down. Reads: one row per seat, with its machine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext

from images.selectors import image_catalog_property
from instances.launch import instance_launch_request
from instances.launch_retry import (
    LAUNCH,
    REPLACE,
    AlreadyRetried,
    SeatCheck,
    launch_retry_plan,
    launch_retry_request,
)
from instances.launch_rules import LaunchPlan, launch_check
from instances.models import Flavor, Server
from instances.naming import instance_names
from instances.park import park_many_request
from instances.participants import participant_parts
from instances.selectors import flavors_usable_by
from instances.services import server_delete_request
from portal.access import can_act_on, get_visible_or_404, in_visible_projects
from portal.csvsafe import csv_document
from portal.errors import ActionRefused
from portal.jobs import job_repeated
from portal.models import Job, SshKey
from portal.sites import site_shelve_refusal
from portal.ssh_keys import ssh_key_default
from workshops.access_links import MAX_LENGTH, access_template_problem, access_url
from workshops.models import Seat, Workshop

# Image property with a URL template for the service participants use, e.g.
# "https://{ip}:8787/" for RStudio or "https://{ip}/guacamole/" for Guacamole.
# Only a proposal: the workshop's organiser confirms it (workshop_access_url_set).
ACCESS_URL_PROPERTY = "portal_access_url"


def workshop_from_launch(job: Job, plan: LaunchPlan) -> Workshop:
    """The launch listener: a launch with participants becomes a workshop."""
    with transaction.atomic():
        workshop, created = Workshop.objects.get_or_create(
            launch_job=job,
            defaults={
                "name": plan.prefix, "project": plan.project, "site": plan.project.site,
                "image": plan.image, "image_name": plan.image.name,
                "flavor_name": plan.flavor.name, "prefix": plan.prefix, "created_by": job.actor,
                "access_url_template": _access_url_proposal(plan.image),
            },
        )  # fmt: skip
        if created:
            _add_seats(workshop, job, plan.participants, plan.names, start=0)
    return workshop


def _access_url_proposal(image) -> str:
    # From the public catalog image the workshop's image is or descends from: never
    # a value a snapshot only inherited or a member set (see image_catalog_property).
    proposal = image_catalog_property(image, ACCESS_URL_PROPERTY).strip()
    return proposal if len(proposal) <= MAX_LENGTH else ""


def _add_seats(workshop, job, participants, names, *, start: int) -> None:
    seats = []
    for index, (line, name) in enumerate(zip(participants, names, strict=True)):
        participant, email = participant_parts(line)
        seats.append(
            Seat(
                workshop=workshop, position=start + index, participant=participant[:255],
                email=email[:254], machine_name=name, job=job, job_index=index,
            )
        )  # fmt: skip
    Seat.objects.bulk_create(seats)


def workshop_get_for_user(user, workshop_id: int) -> Workshop:
    """The workshop, or 404 if there is none or the user is not in its project."""
    return get_visible_or_404(
        Workshop.objects.select_related("project", "site", "created_by", "image"), user,
        pk=workshop_id,
    )  # fmt: skip


def workshop_list(*, user):
    return in_visible_projects(Workshop.objects.select_related("project", "site"), user)


def workshop_may_act(user, workshop: Workshop) -> bool:
    """As for the machines it holds: its launcher, or a project admin."""
    return can_act_on(user, project=workshop.project, created_by_id=workshop.created_by_id)


def _check_may_act(user, workshop: Workshop) -> None:
    if not workshop_may_act(user, workshop):
        raise ActionRefused(
            gettext("Only whoever launched this workshop, or a project admin, may do that."),
            status=403,
        )


@dataclass
class SeatRow:
    seat: Seat
    server: Server | None
    access_url: str

    @property
    def status(self) -> str:
        if self.server is None:
            return "no machine" if self.seat.job and self.seat.job.is_finished else "launching"
        return "DELETED" if self.server.is_deleted else self.server.status

    @property
    def ip(self) -> str:
        return self.server.addresses[0] if self.server and self.server.addresses else ""

    @property
    def failed(self) -> bool:
        return self.status in ("ERROR", "no machine")


def seat_rows(workshop: Workshop) -> list[SeatRow]:
    """One row per seat with its machine from the mirror (one query for all)."""
    seats = list(workshop.seats.select_related("job"))
    ids = {s.server_openstack_id for s in seats if s.server_openstack_id}
    servers = {
        s.openstack_id: s for s in Server.objects.filter(site=workshop.site, openstack_id__in=ids)
    }
    # No link until the organiser confirmed one; participants get the IP address then.
    template = workshop.access_url_template if workshop.access_url_confirmed else ""
    rows = []
    for seat in seats:
        server = servers.get(seat.server_openstack_id)
        row = SeatRow(seat, server, "")
        if template and row.ip and row.status == "ACTIVE":
            row.access_url = access_url(template, ip=row.ip, name=server.name)
        rows.append(row)
    return rows


def workshop_access_url_set(*, workshop: Workshop, actor, template: str) -> None:
    """Confirm (or change) the participants' access link; empty: no link."""
    _check_may_act(actor, workshop)
    template = template.strip()
    problem = access_template_problem(template) if template else ""
    if problem:
        raise ActionRefused(problem, status=400)
    workshop.access_url_template = template
    workshop.access_url_confirmed_at = timezone.now() if template else None
    workshop.access_url_confirmed_by = actor if template else None
    workshop.save(
        update_fields=["access_url_template", "access_url_confirmed_at", "access_url_confirmed_by"]
    )


MAX_INSTRUCTIONS = 4000


def workshop_instructions_set(*, workshop: Workshop, actor, text: str) -> None:
    """The organiser's instructions for the handout (empty: none)."""
    _check_may_act(actor, workshop)
    text = text.strip().replace("\r\n", "\n")
    if len(text) > MAX_INSTRUCTIONS:
        raise ActionRefused(
            gettext(
                "The instructions may be at most %(max)s characters long (these are %(length)s)."
            )
            % {
                "max": number_format(MAX_INSTRUCTIONS, force_grouping=True),
                "length": number_format(len(text), force_grouping=True),
            },
            status=400,
        )
    workshop.instructions = text
    workshop.save(update_fields=["instructions"])


def workshop_csv(workshop: Workshop) -> str:
    header = ["participant", "email", "machine", "status", "ip", "access"]
    rows = [
        [row.seat.participant, row.seat.email, row.seat.machine_name, row.status, row.ip,
         row.access_url]
        for row in seat_rows(workshop)
    ]  # fmt: skip
    return csv_document([header, *rows])


@dataclass(frozen=True)
class WorkshopRetryPlan:
    """What "Retry failed seats" does now, seat by seat (see launch_retry_plan):
    each seat looked at with its check. `upto`: the newest launch the seats followed
    when the plan was made; a confirmation posted later leaves alone a seat that
    follows a newer one (a retry started meanwhile)."""

    rows: list[tuple[Seat, SeatCheck]]
    upto: int

    @property
    def retried(self) -> list[SeatCheck]:
        return [check for _, check in self.rows if check.action]

    @property
    def replace(self) -> list[SeatCheck]:
        return [check for _, check in self.rows if check.action == REPLACE]

    @property
    def launch(self) -> list[SeatCheck]:
        return [check for _, check in self.rows if check.action == LAUNCH]

    @property
    def kept(self) -> list[SeatCheck]:
        return [check for _, check in self.rows if not check.action]

    @property
    def retried_seats(self) -> list[Seat]:
        return [seat for seat, check in self.rows if check.action]


def workshop_retry_plan(*, workshop: Workshop, actor) -> WorkshopRetryPlan:
    """The failed seats of the workshop as its machines are now, per launch that
    made them (a seat of a launch still running is left to it)."""
    _check_may_act(actor, workshop)
    if workshop.teardown_job_id is not None:
        raise ActionRefused(
            gettext("This workshop was torn down: its seats are not launched again.")
        )
    seats = list(workshop.seats.select_related("job"))
    launches = {seat.job_id: seat.job for seat in seats if seat.job and seat.job.is_finished}
    checks = {}
    for job in launches.values():
        for check in launch_retry_plan(job=job, actor=actor).seats:
            checks[(job.pk, check.index)] = check
    rows = [
        (seat, checks[(seat.job_id, seat.job_index)])
        for seat in seats
        if (seat.job_id, seat.job_index) in checks
    ]
    return WorkshopRetryPlan(rows, upto=max((s.job_id for s in seats if s.job_id), default=0))


def seats_follow_retry(launch: Job, retry: Job) -> None:
    """The retry listener: the seats a retry launches again follow it (the retry's
    seat i is the launch's seat of the same machine name), whichever page started it."""
    index_of = {name: index for index, name in enumerate(launch.params["names"])}
    for index, name in enumerate(retry.params["names"]):
        Seat.objects.filter(job=launch, job_index=index_of[name]).update(job=retry, job_index=index)


def _nothing_to_retry(workshop: Workshop, plan: WorkshopRetryPlan, seat_ids, upto: int):
    """Why none of the seats the confirmation showed is retried now. Seats that
    follow a newer launch since (a retry started meanwhile) send the user to it."""
    moved = (
        Seat.objects.filter(workshop=workshop, pk__in=seat_ids, job_id__gt=upto)
        .select_related("job")
        .order_by("-job_id")
        .first()
    )
    if moved is not None:
        return AlreadyRetried(
            gettext("These seats were launched again already, by job #%(job)s.")
            % {"job": moved.job_id},
            job=moved.job,
        )
    reasons = "; ".join(f"{c.name}: {c.reason}" for seat, c in plan.rows if seat.pk in seat_ids)
    return ActionRefused(
        gettext("Nothing to retry: %(reasons)s.")
        % {"reasons": reasons or gettext("the seats shown are not failed now")},
        status=409,
    )


def workshop_retry(
    *, workshop: Workshop, actor, seat_ids=None, upto: int | None = None, idempotency_key: str = ""
) -> list[Job]:
    """Launch again the failed seats that still have no running machine (one retry
    per launch that made them; the seats then follow it). `seat_ids` and `upto`:
    what the confirmation showed (None: every seat the plan retries now)."""
    with transaction.atomic():
        # Two requests (two tabs, two people) take turns; the second sees the first's jobs.
        Workshop.objects.select_for_update().filter(pk=workshop.pk).values_list("pk").first()
        repeated = job_repeated(actor=actor, key=idempotency_key)
        if repeated is not None:
            return [repeated]  # the same form again: its jobs exist already
        plan = workshop_retry_plan(workshop=workshop, actor=actor)
        chosen: dict[int, list[SeatCheck]] = {}
        launches = {}
        for seat, check in plan.rows:
            if not check.action:
                continue
            if seat_ids is not None and (seat.pk not in seat_ids or seat.job_id > (upto or 0)):
                continue
            chosen.setdefault(seat.job_id, []).append(check)
            launches[seat.job_id] = seat.job
        if not chosen:
            if seat_ids is None:
                raise ActionRefused(gettext("Every seat has a machine, or is being launched."))
            raise _nothing_to_retry(workshop, plan, set(seat_ids), upto or 0)
        jobs = []
        for n, job_id in enumerate(sorted(chosen)):
            # The form's key on the first job (a repeated POST finds it), derived ones after.
            key = idempotency_key if n == 0 or not idempotency_key else f"{idempotency_key}-{n}"
            names = [check.name for check in chosen[job_id]]
            jobs.append(
                launch_retry_request(
                    job=launches[job_id], actor=actor, names=names, idempotency_key=key
                )
            )
    return jobs


def _organiser_key(workshop: Workshop, launched: dict) -> SshKey | None:
    """The SSH key late participants get: the one the first seats got while the
    organiser keeps it, else the organiser's default; none when the workshop was
    launched without a key."""
    if launched.get("ssh_key_pk") is None or workshop.created_by is None:
        return None
    kept = SshKey.objects.filter(pk=launched["ssh_key_pk"], user=workshop.created_by).first()
    return kept or ssh_key_default(workshop.created_by)


def workshop_add(*, workshop: Workshop, actor, participants: list[str], idempotency_key: str = ""):
    """Late participants: one more launch, with names that do not clash with the seats'."""
    _check_may_act(actor, workshop)
    seats = list(workshop.seats.all())
    everyone = [f"{s.participant}" for s in seats] + participants
    if workshop.image is None:
        raise ActionRefused(gettext("The workshop's snapshot no longer exists."), status=409)
    # The flavor of that name the project may use (launch_check refuses any other).
    flavor = (
        flavors_usable_by(workshop.project).filter(name=workshop.flavor_name).first()
        or Flavor.objects.filter(
            site=workshop.site, name=workshop.flavor_name, deleted_at__isnull=True
        ).first()
    )
    if flavor is None:
        raise ActionRefused(gettext("The workshop's flavor no longer exists."), status=409)
    # The late machines join the networks the first ones did.
    launched = workshop.launch_job.params if workshop.launch_job else {}
    plan = launch_check(
        actor=actor, project=workshop.project, flavor=flavor, image=workshop.image,
        prefix=workshop.prefix, count=len(participants), participants=participants,
        network_ids=launched.get("network_ids"),
    )  # fmt: skip
    names = instance_names(prefix=workshop.prefix, participants=everyone, count=len(everyone))
    plan = LaunchPlan(
        plan.project,
        plan.flavor,
        plan.image,
        names[len(seats) :],
        participants,
        plan.prefix,
        plan.network_ids,
        ssh_key=_organiser_key(workshop, launched),
    )
    job = instance_launch_request(
        actor=actor, plan=plan, idempotency_key=idempotency_key, notify=False
    )
    if not Seat.objects.filter(workshop=workshop, job=job).exists():  # not a repeated POST
        _add_seats(workshop, job, participants, plan.names, start=len(seats))
    return job


def workshop_teardown(*, workshop: Workshop, actor, idempotency_key: str = ""):
    """Delete every machine of the workshop as one job (per-machine progress, a summary)."""
    _check_may_act(actor, workshop)
    servers = [
        row.server for row in seat_rows(workshop) if row.server and not row.server.is_deleted
    ]
    if not servers:
        raise ActionRefused(gettext("The workshop holds no machines any more."), status=400)
    job, plan = server_delete_request(servers=servers, actor=actor, idempotency_key=idempotency_key)
    if job is None:
        reasons = "; ".join(f"{s.name}: {reason}" for s, reason in plan.skipped)
        raise ActionRefused(
            gettext("Nothing to delete: %(reasons)s.") % {"reasons": reasons}, status=409
        )
    workshop.teardown_job = job
    workshop.save(update_fields=["teardown_job"])
    return job


# Workshops whose emails one run deletes: the task runs again within the hour.
EMAIL_PURGE_BATCH = 200


def workshop_emails_purge(*, now=None) -> int:
    """Delete the participants' emails of workshops whose teardown finished more than
    PORTAL_WORKSHOP_EMAIL_DAYS ago, from the seats and from the launches' participant
    lines (kept as names; a retry needs no more). Returns how many workshops.

    Any teardown counts, also one that failed: the workshop is over, and its emails
    must not stay for ever because one machine would not go."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.PORTAL_WORKSHOP_EMAIL_DAYS)
    due = list(
        Workshop.objects.filter(teardown_job__finished_at__lt=cutoff)
        .filter(pk__in=Seat.objects.exclude(email="").values("workshop_id"))
        .order_by("pk")[:EMAIL_PURGE_BATCH]
    )
    for workshop in due:
        with transaction.atomic():
            for job in _launches_of(workshop):
                lines = job.params.get("participants") or []
                names = [participant_parts(line)[0] for line in lines]
                if names != lines:
                    job.params["participants"] = names
                    job.save(update_fields=["params"])
            workshop.seats.exclude(email="").update(email="")
    return len(due)


def _launches_of(workshop: Workshop) -> list[Job]:
    """Every launch that made the workshop's seats: its first launch, the late
    additions, the retries, and the launches those retried."""
    ids = {workshop.launch_job_id, *workshop.seats.values_list("job_id", flat=True)} - {None}
    jobs: dict[int, Job] = {}
    while ids:
        found = list(Job.objects.filter(pk__in=ids))
        jobs.update((job.pk, job) for job in found)
        ids = {job.params.get("retry_of") for job in found} - set(jobs) - {None}
    return list(jobs.values())


def workshop_park(*, workshop: Workshop, actor, action: str, idempotency_key: str = "") -> list:
    """Park (or resume) every seat's machine: "park the whole workshop until
    tomorrow". One job per machine; a seat whose machine cannot is skipped."""
    _check_may_act(actor, workshop)
    refusal = site_shelve_refusal(workshop.site.name)
    if action == "park" and refusal:
        raise ActionRefused(refusal, status=403)
    ids = [s.server_openstack_id for s in workshop.seats.all() if s.server_openstack_id]
    servers = list(
        Server.objects.filter(site=workshop.site, openstack_id__in=ids, deleted_at__isnull=True)
        .select_related("project", "site", "created_by")
        .order_by("name")
    )
    jobs, plan = park_many_request(
        servers=servers, actor=actor, action=action, idempotency_key=idempotency_key
    )
    if not jobs:
        reasons = sorted({row.refusal for row in plan if row.refusal})
        if action == "park":
            nothing = gettext("No machine of this workshop to park")
        else:
            nothing = gettext("No machine of this workshop to resume")
        raise ActionRefused(nothing + (f": {'; '.join(reasons[:3])}" if reasons else "."))
    return jobs
