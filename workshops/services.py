"""Workshop writes: created from a launch with participants; retry failed seats,
add late participants, tear down. Reads: one row per seat, with its machine."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import get_object_or_404

from images.selectors import image_catalog_property
from instances.launch import (
    LaunchPlan,
    instance_launch_request,
    instance_names,
    launch_check,
    launch_retry_request,
    participant_parts,
)
from instances.models import Flavor, Server
from instances.selectors import flavors_usable_by
from instances.services import server_delete_request
from portal.access import can_act_on, can_see, in_visible_projects
from portal.errors import ActionRefused
from portal.models import Job
from workshops.models import Seat, Workshop

# Image property with a URL template for the service participants use, e.g.
# "https://{ip}:8787/" for RStudio or "https://{ip}/guacamole/" for Guacamole.
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
            },
        )  # fmt: skip
        if created:
            _add_seats(workshop, job, plan.participants, plan.names, start=0)
    return workshop


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
    """The workshop, or 404; 403 unless the user is in its project."""
    workshop = get_object_or_404(
        Workshop.objects.select_related("project", "site", "created_by", "image"), pk=workshop_id
    )
    if not can_see(user, workshop.project):
        raise PermissionDenied
    return workshop


def workshop_list(*, user):
    return in_visible_projects(Workshop.objects.select_related("project", "site"), user)


def workshop_may_act(user, workshop: Workshop) -> bool:
    """As for the machines it holds: its launcher, or a project admin."""
    return can_act_on(user, project=workshop.project, created_by_id=workshop.created_by_id)


def _check_may_act(user, workshop: Workshop) -> None:
    if not workshop_may_act(user, workshop):
        raise ActionRefused(
            "Only whoever launched this workshop, or a project admin, may do that.", status=403
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
    # From the public catalog image the workshop's image is or descends from: never
    # a value a snapshot only inherited or a member set (see image_catalog_property).
    template = image_catalog_property(workshop.image, ACCESS_URL_PROPERTY) if workshop.image else ""
    rows = []
    for seat in seats:
        server = servers.get(seat.server_openstack_id)
        row = SeatRow(seat, server, "")
        if template and row.ip and row.status == "ACTIVE":
            row.access_url = template.replace("{ip}", row.ip).replace("{name}", server.name)
        rows.append(row)
    return rows


def workshop_csv(workshop: Workshop) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["participant", "email", "machine", "status", "ip", "access"])
    for row in seat_rows(workshop):
        writer.writerow(
            [row.seat.participant, row.seat.email, row.seat.machine_name, row.status, row.ip,
             row.access_url]
        )  # fmt: skip
    return out.getvalue()


def workshop_retry(*, workshop: Workshop, actor, idempotency_key: str = "") -> list[Job]:
    """Launch again the seats whose machine failed (per launch job that made them);
    the seats then follow the new job."""
    _check_may_act(actor, workshop)
    failed = [row.seat for row in seat_rows(workshop) if row.failed]
    if not failed:
        raise ActionRefused("Every seat has a machine.", status=400)
    jobs = []
    for job in {seat.job for seat in failed if seat.job is not None}:
        retry = launch_retry_request(
            job=job, actor=actor,
            idempotency_key=f"{idempotency_key}-{job.pk}" if idempotency_key else "",
        )  # fmt: skip
        # The retry launches the failed seats of `job` in order: re-point them.
        for index, seat_index in enumerate(job.result.get("failed_seats", [])):
            Seat.objects.filter(workshop=workshop, job=job, job_index=seat_index).update(
                job=retry, job_index=index
            )
        jobs.append(retry)
    return jobs


def workshop_add(*, workshop: Workshop, actor, participants: list[str], idempotency_key: str = ""):
    """Late participants: one more launch, with names that do not clash with the seats'."""
    _check_may_act(actor, workshop)
    seats = list(workshop.seats.all())
    everyone = [f"{s.participant}" for s in seats] + participants
    if workshop.image is None:
        raise ActionRefused("The workshop's snapshot no longer exists.", status=409)
    # The flavor of that name the project may use (launch_check refuses any other).
    flavor = (
        flavors_usable_by(workshop.project).filter(name=workshop.flavor_name).first()
        or Flavor.objects.filter(
            site=workshop.site, name=workshop.flavor_name, deleted_at__isnull=True
        ).first()
    )
    if flavor is None:
        raise ActionRefused("The workshop's flavor no longer exists.", status=409)
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
        raise ActionRefused("The workshop holds no machines any more.", status=400)
    job, plan = server_delete_request(servers=servers, actor=actor, idempotency_key=idempotency_key)
    if job is None:
        reasons = "; ".join(f"{s.name}: {reason}" for s, reason in plan.skipped)
        raise ActionRefused(f"Nothing to delete: {reasons}.", status=409)
    workshop.teardown_job = job
    workshop.save(update_fields=["teardown_job"])
    return job
