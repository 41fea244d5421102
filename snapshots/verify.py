"""Boot tests: is a snapshot known to boot?

Steps shared by the snapshot job (after the snapshot is active and the instance
runs again) and by "Verify now": pick the smallest flavor that fits the
snapshot (quota checked first; no room → the test is skipped, with that
reason), boot a throwaway instance from it in the same project, wait until it is
ACTIVE and, where the cloud offers a console log, until the log shows the system
came up, then delete the instance. Every step is idempotent (the instance carries
`portal_job`), and an undo step deletes it too: it never outlives the job.
"""

from __future__ import annotations

import re
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from images.models import BootTest, Image
from images.services import image_refresh
from instances.jobs import server_observed
from instances.launch import launch_networks, quota_problem
from instances.models import Flavor
from instances.selectors import networks_usable_by
from instances.services import project_quota_refresh, server_refresh
from portal import cloud
from portal.errors import ActionRefused
from portal.jobs import JOB_KEY, SKIPPED, Done, Skipped, Wait, job_key
from portal.mirror import CREATED_BY_KEY, authorship_record
from portal.models import Job

# What a booted Linux prints when it is up (cloud-init's last line, or getty's
# prompt), and what it prints when it is not.
CAME_UP = re.compile(r"^\S+ login:|Cloud-init v\. \S+ finished", re.MULTILINE)
PANIC = re.compile(r"Kernel panic - not syncing.*", re.MULTILINE)
TAIL_LINES = 15


def _tail(text: str) -> str:
    return "\n".join(text.rstrip().splitlines()[-TAIL_LINES:])


def _image_id(job: Job) -> str:
    return job.state.get("image_id") or job.params.get("image_id", "")


def boot_test_record(job: Job, outcome: str, **fields) -> BootTest:
    """The snapshot's current verdict (one row per snapshot, the latest test wins)."""
    test, _ = BootTest.objects.update_or_create(
        site=job.site, openstack_id=_image_id(job),
        defaults={"outcome": outcome, "job": job, "checked_at": timezone.now(), **fields},
    )  # fmt: skip
    return test


def smallest_flavor_for(image: Image) -> Flavor | None:
    """The smallest public flavor of the site the image fits (disk and RAM)."""
    flavors = Flavor.objects.filter(
        site=image.site, deleted_at__isnull=True, is_public=True,
        disk_gb__gte=image.min_disk, ram_mib__gte=image.min_ram,
    )  # fmt: skip
    return flavors.order_by("ram_mib", "vcpus", "disk_gb").first()


def boot_test_networks(project) -> list[str] | None:
    """Where a test instance goes: where a launch would; with several networks and
    none configured, the first usable one (the test reads the console, never the
    network), since Nova's "auto" would be a 409."""
    try:
        return launch_networks(project=project, chosen_ids=None)
    except ActionRefused:
        usable = list(networks_usable_by(project))
        return [usable[0].openstack_id] if usable else None


def step_verify_plan(job: Job) -> Done | Skipped:
    if not job.params.get("verify"):
        return Skipped("not asked to test that it boots")
    if job.state.get("boot_test"):
        return Done(f"on {job.state['boot_test']['flavor_name']}")
    image = image_refresh(job.site, openstack_id=_image_id(job))
    if image is None or image.deleted_at is not None or image.status != "active":
        reason = "the snapshot is not active"
        boot_test_record(job, BootTest.Outcome.SKIPPED, reason=reason)
        return Skipped(reason)
    flavor = smallest_flavor_for(image)
    if flavor is None:
        reason = "no flavor of the site fits the snapshot"
        boot_test_record(job, BootTest.Outcome.SKIPPED, reason=reason)
        return Skipped(reason)
    project = project_quota_refresh(job.project)
    problem = quota_problem(project=project, flavor=flavor, count=1)
    if problem:
        reason = f"no room in the project's quota for a test instance on {flavor.name}"
        boot_test_record(job, BootTest.Outcome.SKIPPED, reason=reason, flavor_name=flavor.name)
        return Skipped(reason)
    job.state["boot_test"] = {
        "flavor_id": flavor.openstack_id,
        "flavor_name": flavor.name,
        "network_ids": boot_test_networks(project),
    }
    boot_test_record(job, BootTest.Outcome.RUNNING, flavor_name=flavor.name)
    return Done(f"on {flavor.name}")


def _test_name(job: Job) -> str:
    return f"boot-test-{job.pk}"


def step_verify_boot(job: Job) -> Wait | Done | Skipped:
    test = job.state.get("boot_test")
    if not test:
        return SKIPPED
    if "server_id" not in test:
        site, project_id = job.site.name, job.project.openstack_id
        mine = [
            s for s in cloud.server_find(site, project_id=project_id, name=_test_name(job))
            if s.metadata.get(JOB_KEY) == job_key(job)
        ]  # fmt: skip
        if mine:
            server_id = mine[0].id
        else:
            made = cloud.server_create(
                site, project_id=project_id, name=_test_name(job),
                flavor_id=test["flavor_id"], image_id=_image_id(job),
                metadata={JOB_KEY: job_key(job), CREATED_BY_KEY: job.actor.username,
                          "portal_boot_test": _image_id(job)},
                network_ids=test.get("network_ids"),
            )  # fmt: skip
            server_id = made.id
        authorship_record(site=job.site, openstack_id=server_id, user=job.actor, job=job)
        test["server_id"] = server_id
        test["booted_at"] = timezone.now().isoformat()
        job.save(update_fields=["state"])
    server = server_refresh(job.site, openstack_id=test["server_id"])
    if server is None or server.is_deleted:
        test["outcome"] = BootTest.Outcome.FAILED
        test["reason"] = "the test instance vanished while booting"
        return Done(test["reason"])
    if server.status == "ERROR":
        test["outcome"] = BootTest.Outcome.FAILED
        test["reason"] = f"the test instance went to ERROR: {server.fault_message or 'no reason'}"
        return Done(test["reason"])
    if server.status == "ACTIVE":
        test.setdefault("active_at", timezone.now().isoformat())
        return Done("ACTIVE")
    return Wait(progress="booting the test instance", observed=server_observed(server))


def _seconds_since(stamp: str) -> float:
    return (timezone.now() - datetime.fromisoformat(stamp)).total_seconds()


def step_verify_console(job: Job) -> Wait | Done | Skipped:
    """Until the console log shows the system came up (or a kernel panic), within
    JOB_BOOT_TEST_SECONDS of the instance going ACTIVE."""
    test = job.state.get("boot_test")
    if not test or "active_at" not in test or test.get("outcome"):
        return SKIPPED
    try:
        output = cloud.server_console_output(job.site.name, server_id=test["server_id"])
    except (cloud.Conflict, cloud.NotFound):
        # No console yet (Nova answers 404 while the guest is not running), or the
        # instance is gone: look at the instance itself.
        server = server_refresh(job.site, openstack_id=test["server_id"])
        if server is None or server.is_deleted:
            test["outcome"] = BootTest.Outcome.FAILED
            test["reason"] = "the test instance vanished"
            return Done(test["reason"])
        output = ""
    except (cloud.BadRequest, cloud.Forbidden) as exc:
        test["outcome"] = BootTest.Outcome.VERIFIED
        test["reason"] = f"ACTIVE; the cloud shows no console log ({exc.message})"
        test["boot_seconds"] = _seconds_since(test["booted_at"])
        return Done(test["reason"])
    panic = PANIC.search(output)
    if panic:
        test["outcome"] = BootTest.Outcome.FAILED
        test["reason"] = panic.group(0).strip()
        test["console_tail"] = _tail(output)
        return Done(f"it does not boot: {test['reason']}")
    if CAME_UP.search(output):
        test["outcome"] = BootTest.Outcome.VERIFIED
        test["boot_seconds"] = _seconds_since(test["booted_at"])
        test["console_tail"] = _tail(output)
        return Done(f"the system came up in {test['boot_seconds']:.0f} s")
    limit = settings.JOB_BOOT_TEST_SECONDS
    if _seconds_since(test["active_at"]) > limit:
        test["outcome"] = BootTest.Outcome.FAILED
        test["reason"] = f"no login prompt within {limit / 60:g} min of ACTIVE"
        test["console_tail"] = _tail(output)
        return Done(test["reason"])
    return Wait(progress="waiting for the test instance to come up", observed=len(output))


def step_verify_cleanup(job: Job) -> Wait | Done | Skipped:
    """Delete the test instance, wait until it is gone, then record the verdict.
    Also the undo step: a failed job never leaves a test instance behind."""
    test = job.state.get("boot_test")
    if not test or "server_id" not in test:
        return Skipped("no test instance was made")
    if not test.get("delete_requested"):
        try:
            cloud.server_delete(job.site.name, server_id=test["server_id"])
        except cloud.NotFound:
            pass
        test["delete_requested"] = True
        job.save(update_fields=["state"])
    server = server_refresh(job.site, openstack_id=test["server_id"])
    if server is not None and not server.is_deleted:
        return Wait(progress="deleting the test instance", observed=server_observed(server))
    # No verdict yet: the job failed or was stopped before the test could tell.
    outcome = test.get("outcome") or BootTest.Outcome.SKIPPED
    reason = test.get("reason") or ("" if test.get("outcome") else "the test was interrupted")
    boot_test_record(
        job, outcome, reason=reason, flavor_name=test["flavor_name"],
        boot_seconds=test.get("boot_seconds"), console_tail=test.get("console_tail", ""),
    )  # fmt: skip
    verdict = {
        BootTest.Outcome.VERIFIED: "the snapshot boots",
        BootTest.Outcome.FAILED: f"it does not boot ({reason})",
    }.get(outcome, f"not tested ({reason})")
    job.result["boot_test"] = verdict
    return Done(f"deleted the test instance; {verdict}")
