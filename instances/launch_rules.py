"""The launch rules (compatibility, quota, networks, names); the form, the
request and the job all call them, so the job re-checks exactly what the page
checked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils.translation import gettext

from images.models import BootTest, Image
from images.selectors import boot_tests_of  # (launch_views reads it from here too)
from instances.models import Flavor, Network
from instances.naming import instance_names
from instances.participants import MAX_COUNT
from instances.selectors import networks_usable_by
from portal.access import projects_visible_to
from portal.errors import ActionRefused
from portal.models import Project, SshKey
from portal.sites import network_refs, site_networks
from portal.texts import render


def fit_problems(*, image: Image, flavor: Flavor) -> list[str]:
    """Why `image` cannot boot on `flavor` (empty when it can)."""
    problems = []
    if image.is_volume_snapshot:
        problems.append(
            gettext(
                "it was made from an instance booted from a volume: booting it makes volumes "
                "the portal cannot clean up"
            )
        )
    if image.status != "active":
        problems.append(gettext("it is %(status)s, not active") % {"status": image.status})
    if flavor.disk_gb and image.min_disk and flavor.disk_gb < image.min_disk:
        problems.append(
            gettext("needs %(need)s GB disk, the flavor has %(has)s GB")
            % {"need": image.min_disk, "has": flavor.disk_gb}
        )
    if image.min_ram and flavor.ram_mib < image.min_ram:
        problems.append(
            gettext("needs %(need)s MiB RAM, the flavor has %(has)s MiB")
            % {"need": image.min_ram, "has": flavor.ram_mib}
        )
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
    return gettext("Flavor %(flavor)s is not available in project %(project)s.") % {
        "flavor": flavor.name,
        "project": project.name,
    }


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
                    gettext(
                        "Network %(network)s, set for new machines of project %(project)s, is not "
                        "available in it; ask the portal's operators to correct the setting."
                    )
                    % {"network": ref, "project": project.name},
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
                    gettext("Network %(network)s is not available in project %(project)s.")
                    % {"network": label, "project": project.name},
                    status=400,
                )
        return list(chosen_ids)
    if len(usable) == 1:
        return [usable[0].openstack_id]
    if not usable:
        return None
    names = ", ".join(n.name or n.openstack_id for n in usable)
    raise ActionRefused(
        gettext("Choose a network: project %(project)s has several (%(networks)s).")
        % {"project": project.name, "networks": names},
        status=400,
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
    # The SSH key injected into each machine (None: launched without one).
    ssh_key: SshKey | None = None


def unbootable_check(*, image: Image, count: int, confirmed: bool) -> None:
    """A workshop (several machines) from a snapshot that did not boot in its last
    test needs an explicit "launch anyway"."""
    if count <= 1 or confirmed:
        return
    test = boot_tests_of([image]).get((image.site_id, image.openstack_id))
    if test is not None and test.outcome == BootTest.Outcome.FAILED:
        raise ActionRefused(
            gettext(
                "%(image)s did not boot in its last test (%(reason)s). Tick “Launch anyway” "
                "to start %(count)s machines from it."
            )
            % {"image": image.name, "reason": render(test.reason), "count": count},
            status=409,
        )


def launch_check(
    *, actor, project: Project, flavor: Flavor, image: Image, prefix: str, count: int,
    participants: list[str], network_ids: Sequence[str] | None = None,
) -> LaunchPlan:  # fmt: skip
    """Every launch rule; raises ActionRefused with the message for the user.
    `network_ids`: the networks chosen on the page (or carried by the job)."""
    if not projects_visible_to(actor).filter(pk=project.pk).exists():
        raise ActionRefused(gettext("You are not a member of this project."), status=403)
    if not project.site.is_reachable:
        raise ActionRefused(
            gettext("%(site)s is unreachable; try again later.")
            % {"site": project.site.display_name}
        )
    if flavor.site_id != project.site_id or image.site_id != project.site_id:
        raise ActionRefused(gettext("Flavor and image must be on the project's site."), status=400)
    if flavor.deleted_at or image.deleted_at:
        raise ActionRefused(gettext("That flavor or image no longer exists."), status=400)
    refusal = flavor_refusal(project=project, flavor=flavor)
    if refusal:
        raise ActionRefused(refusal, status=400)
    if image.is_snapshot and image.project_id != project.pk:
        raise ActionRefused(
            gettext("Snapshots can be launched only in the project that owns them."), status=400
        )
    if (
        not image.is_snapshot
        and image.visibility not in ("public", "community")
        and image.project_id != project.pk
    ):
        raise ActionRefused(gettext("This image is not available to the project."), status=400)
    problems = fit_problems(image=image, flavor=flavor)
    if problems:
        raise ActionRefused(
            gettext("%(image)s cannot boot on %(flavor)s: %(problems)s.")
            % {"image": image.name, "flavor": flavor.name, "problems": "; ".join(problems)},
            status=400,
        )
    if participants:
        count = len(participants)
    if not 1 <= count <= MAX_COUNT:
        raise ActionRefused(
            gettext("Launch between 1 and %(max)s instances at once.") % {"max": MAX_COUNT},
            status=400,
        )
    message = quota_problem(project=project, flavor=flavor, count=count)
    if message:
        raise ActionRefused(message, status=400)
    # Without a name, instances are named after what they boot.
    prefix = prefix.strip() or image.name
    names = instance_names(prefix=prefix, participants=participants, count=count)
    networks = launch_networks(project=project, chosen_ids=network_ids)
    return LaunchPlan(project, flavor, image, names, participants, prefix, networks)
