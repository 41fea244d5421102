"""Boot tests: is a snapshot known to boot?

Steps shared by the snapshot job (after the snapshot is active and the instance
runs again) and by "Verify now": pick the smallest flavor that fits the
snapshot (quota checked first; no room → the test is skipped, with that
reason), boot a throwaway instance from it in the same project, wait until it is
ACTIVE and until its console log shows the system came up, then delete the
instance.

Three verdicts, because only the first two say something about the image:
- "boots": a login prompt or cloud-init's "finished" line on the console;
- "does not boot": the image's fault, seen: a kernel panic, a console that
  printed but showed no login prompt within JOB_BOOT_TEST_SECONDS of ACTIVE, or a
  build Nova aborted because the hypervisor refused the image's data;
- "not tested (reason)": the test's own failure: the cloud refused the test
  instance (403 quota or policy, 400, 409), scheduling failed (No valid host) or
  the build was not ACTIVE within JOB_BOOT_TEST_SECONDS, the console stayed empty
  (an image that writes nothing to the serial port) or was never offered, the
  instance vanished.
A boot test does not fail its job: each wait carries its own deadline (a budget
for the engine, past the step's own limit), and ends in a verdict. (A site that
stops answering is the engine's outage handling, as for every step.)

The test instance is made at most once, although a create request may be cut
off (the soft time limit, a lost answer, a dead worker) and still land in Nova
afterwards (see `_create_once`); the instance carries `portal_job`. The cleanup,
also the undo step, deletes every server this job provably made (its marker, the
portal's account, after the first request: see portal.jobs.made_by_job), not only
the recorded one: no test instance outlives the job, and no stranger's server with
the same name and marker is touched.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_noop

from images.models import BootTest, Image
from images.services import boot_test_save, image_refresh
from instances.jobs import server_observed
from instances.launch_rules import launch_networks, quota_problem
from instances.models import Flavor
from instances.selectors import networks_usable_by
from instances.services import project_quota_refresh, server_refresh
from portal import cloud
from portal.errors import ActionRefused
from portal.jobs import JOB_KEY, SKIPPED, Done, Skipped, StepContext, Wait
from portal.mirror.authorship import CREATED_BY_KEY
from portal.texts import say, span, text, word

# What a booted Linux prints when it is up (cloud-init's last line, or getty's
# prompt), and what it prints when it is not.
CAME_UP = re.compile(r"^\S+ login:|Cloud-init v\. \S+ finished", re.MULTILINE)
PANIC = re.compile(r"Kernel panic - not syncing.*", re.MULTILINE)
TAIL_LINES = 15
# Nova's fault when the hypervisor refused the image itself (ImageUnacceptable, e.g.
# "Image <id> is unacceptable: Image content does not match disk_format"): the
# image's fault. Any other ERROR (No valid host, quota, a network that could not be
# allocated, a flavor too small) is the cloud's or the test's, and says nothing
# about the image.
IMAGE_REFUSED = re.compile(r"Image \S+ is unacceptable")

# A create request cut off before its answer may still land in Nova: while the
# client waits (OPENSTACK_TIMEOUT), and a little after, since Nova's API finishes a
# request whose client went away. No second request before then.
LANDING_MARGIN_SECONDS = 30.0
# The engine's budget for a boot test's wait, beyond the step's own limit: the
# step always ends in a verdict before the engine would fail the job.
BUDGET_MARGIN_SECONDS = 60.0


def _tail(text: str) -> str:
    return "\n".join(text.rstrip().splitlines()[-TAIL_LINES:])


def _now_text() -> str:
    return timezone.now().isoformat()


def _seconds_since(stamp: str) -> float:
    return (timezone.now() - datetime.fromisoformat(stamp)).total_seconds()


def _landing_seconds() -> float:
    return settings.OPENSTACK_TIMEOUT + LANDING_MARGIN_SECONDS


@dataclass
class BootTestState:
    """What the boot test steps record; the state of both kinds that run them is
    one of these."""

    # The snapshot tested (the snapshot job's image, or the one "Verify now" names).
    image_id: str | None = None
    # The test's plan and progress: flavor, network ids, request times, the test
    # instance's id, and at last its outcome and reason (see the steps below).
    boot_test: dict | None = None


def _image_id(ctx: StepContext) -> str:
    return ctx.state.image_id or ""


def boot_test_record(ctx: StepContext, outcome: str, **fields) -> BootTest:
    """The snapshot's current verdict (one row per snapshot, the latest test wins)."""
    return boot_test_save(
        site=ctx.site, openstack_id=_image_id(ctx), outcome=outcome,
        job_id=ctx.job_id, checked_at=timezone.now(), **fields,
    )  # fmt: skip


# BootTest.Outcome's labels as msgids: a worker stores words for the reader's language.
VERDICT_LABELS = {
    BootTest.Outcome.RUNNING: gettext_noop("being tested"),
    BootTest.Outcome.VERIFIED: gettext_noop("boots"),
    BootTest.Outcome.FAILED: gettext_noop("does not boot"),
    BootTest.Outcome.SKIPPED: gettext_noop("not tested"),
}


def verdict_text(outcome: str, reason: str = "") -> str:
    """The verdict as the job page and the email say it after "Boot test: "."""
    label = VERDICT_LABELS[BootTest.Outcome(outcome)]
    if reason and outcome != BootTest.Outcome.VERIFIED:
        return say(
            gettext_noop("%(verdict)s — %(reason)s"), verdict=word(label), reason=text(reason)
        )
    return label


def _not_tested(ctx: StepContext, reason: str, **fields) -> Skipped:
    """The plan found nothing to test with: the verdict now, since no instance is made."""
    boot_test_record(ctx, BootTest.Outcome.SKIPPED, reason=reason, **fields)
    return Skipped(reason, result={"boot_test": verdict_text(BootTest.Outcome.SKIPPED, reason)})


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


def step_verify_plan(ctx: StepContext) -> Done | Skipped:
    state: BootTestState = ctx.state
    if not ctx.params.verify:
        return Skipped(gettext_noop("not asked to test that it boots"))
    if state.boot_test:
        return Done(_on_flavor(state.boot_test["flavor_name"]))
    image = image_refresh(ctx.site, openstack_id=_image_id(ctx))
    if image is None or image.deleted_at is not None or image.status != "active":
        return _not_tested(ctx, gettext_noop("the snapshot is not active"))
    flavor = smallest_flavor_for(image)
    if flavor is None:
        return _not_tested(ctx, gettext_noop("no flavor of the site fits the snapshot"))
    project = project_quota_refresh(ctx.project)
    problem = quota_problem(project=project, flavor=flavor, count=1)
    if problem:
        reason = say(
            gettext_noop("no room in the project's quota for a test instance on %(flavor)s"),
            flavor=flavor.name,
        )
        return _not_tested(ctx, reason, flavor_name=flavor.name)
    state.boot_test = {
        "flavor_id": flavor.openstack_id,
        "flavor_name": flavor.name,
        "network_ids": boot_test_networks(project),
    }
    boot_test_record(ctx, BootTest.Outcome.RUNNING, flavor_name=flavor.name)
    return Done(_on_flavor(flavor.name))


def _on_flavor(flavor_name: str) -> str:
    return say(gettext_noop("on %(flavor)s"), flavor=flavor_name)


def _test_name(ctx: StepContext) -> str:
    return f"boot-test-{ctx.job_id}"


def _verdict(test: dict, outcome: str, reason: str, *, detail: str = "", **fields) -> Done:
    test.update(outcome=outcome, reason=reason, **fields)
    return Done(detail or verdict_text(outcome, reason))


def _own_test_servers(ctx: StepContext) -> list[cloud.CloudServer]:
    """The servers this job's boot test made, oldest first: by name, then only those
    provably the job's (made_by_job: its marker, the portal's account, the project,
    made after the first request). A server someone else made with the same name
    and marker is neither adopted nor deleted."""
    site, project_id = ctx.site.name, ctx.project.openstack_id
    found = cloud.server_find(site, project_id=project_id, name=_test_name(ctx))
    asked_at = (ctx.state.boot_test or {}).get("requested_at")
    mine = [s for s in found if ctx.made_by_me(s, asked_at=asked_at) and not s.is_deleted]
    return sorted(mine, key=lambda s: (str(s.created_at), s.id))


def _unanswered_at(test: dict) -> str | None:
    """When the last create request whose answer never came was sent, if it may
    still be the one that makes a server."""
    if "asked_at" in test:
        return test["asked_at"]
    return None if "server_id" in test else test.get("cut_off_at")


def _build_wait(test: dict, doing: str, observed=None) -> Wait | Done:
    """Wait for the test instance until JOB_BOOT_TEST_SECONDS after the first create
    request; a build slower than that tells nothing about the image."""
    limit = settings.JOB_BOOT_TEST_SECONDS
    if _seconds_since(test["requested_at"]) > limit:
        reason = say(
            gettext_noop("the test instance was not ACTIVE within %(limit)s (%(doing)s)"),
            limit=span(limit),
            doing=text(doing),
        )
        return _verdict(test, BootTest.Outcome.SKIPPED, reason)
    return Wait(
        progress=gettext_noop("booting the test instance"),
        observed=observed,
        budget=limit + BUDGET_MARGIN_SECONDS,
        over_budget=say(
            gettext_noop("the test instance was not ACTIVE within %(limit)s"), limit=span(limit)
        ),
    )


def _create_once(ctx: StepContext, test: dict) -> str | Wait | Done:
    """The test instance's id, from at most one create request that lands.

    The intent (`asked_at`) is saved before each request and cleared with its
    answer. A run that finds it still set knows its request was cut off: Nova may
    have made the server, or may make it still. It adopts a server this job provably
    made (see `_own_test_servers`); with none, it waits until the request can no longer land
    (`_landing_seconds`) before it asks again. Anything that lands later anyway is
    deleted by the cleanup."""
    if "asked_at" in test:
        test["cut_off_at"] = test.pop("asked_at")
    if "cut_off_at" in test:
        mine = _own_test_servers(ctx)
        if mine:
            return mine[0].id  # any other is deleted by the cleanup
        if _seconds_since(test["cut_off_at"]) < _landing_seconds():
            return _build_wait(test, gettext_noop("a cut-off request for it may still land"))
    test["asked_at"] = _now_text()
    ctx.checkpoint()
    try:
        made = cloud.server_create(
            ctx.site.name, project_id=ctx.project.openstack_id, name=_test_name(ctx),
            flavor_id=test["flavor_id"], image_id=_image_id(ctx),
            metadata={JOB_KEY: ctx.key, CREATED_BY_KEY: ctx.actor.username,
                      "portal_boot_test": _image_id(ctx)},
            network_ids=test.get("network_ids"),
        )  # fmt: skip
    except cloud.Unavailable:
        raise  # no answer: the request may have landed, the next run looks for it
    except cloud.CloudError as refused:  # 403 quota or policy, 400, 409: nothing made
        del test["asked_at"]
        reason = say(
            gettext_noop("the cloud refused to create a test instance: %(message)s"),
            message=refused.message,
        )
        return _verdict(test, BootTest.Outcome.SKIPPED, reason)
    del test["asked_at"]
    return made.id


def step_verify_boot(ctx: StepContext) -> Wait | Done | Skipped:
    test = ctx.state.boot_test
    if not test or test.get("outcome"):
        return SKIPPED
    # The build's deadline runs from the first request (booted_at: a job from before).
    test.setdefault("requested_at", test.get("booted_at") or _now_text())
    if "server_id" not in test:
        made = _create_once(ctx, test)
        if not isinstance(made, str):
            return made
        ctx.authorship_record(made)
        test["server_id"] = made
        test["booted_at"] = _now_text()
        ctx.checkpoint()
    server = server_refresh(ctx.site, openstack_id=test["server_id"])
    if server is None or server.is_deleted:
        vanished = gettext_noop("the test instance vanished while booting")
        return _verdict(test, BootTest.Outcome.SKIPPED, vanished)
    if server.status == "ERROR":
        reason = (
            say(
                gettext_noop("the test instance went to ERROR: %(fault)s"),
                fault=server.fault_message,
            )
            if server.fault_message
            else gettext_noop("the test instance went to ERROR: no reason given")
        )
        if IMAGE_REFUSED.search(server.fault_message):
            return _verdict(test, BootTest.Outcome.FAILED, reason)
        return _verdict(test, BootTest.Outcome.SKIPPED, reason)
    if server.status == "ACTIVE":
        test.setdefault("active_at", _now_text())
        return Done(gettext_noop("ACTIVE"))
    doing = f"{server.status}, {server.task_state}" if server.task_state else server.status
    return _build_wait(test, doing, observed=server_observed(server))


def step_verify_console(ctx: StepContext) -> Wait | Done | Skipped:
    """Until the console log shows the system came up (or a kernel panic), within
    JOB_BOOT_TEST_SECONDS of the instance going ACTIVE."""
    test = ctx.state.boot_test
    if not test or "active_at" not in test or test.get("outcome"):
        return SKIPPED
    try:
        output = cloud.server_console_output(ctx.site.name, server_id=test["server_id"])
        test["console_answered"] = True
    except (cloud.BadRequest, cloud.Forbidden) as exc:
        reason = say(
            gettext_noop("the cloud offers no console log (%(message)s)"), message=exc.message
        )
        return _verdict(test, BootTest.Outcome.SKIPPED, reason)
    except (cloud.Conflict, cloud.NotFound) as exc:
        # No console yet (Nova answers 404 while the guest is not running, 409 before
        # it has a host), or the instance is gone.
        if isinstance(exc, cloud.NotFound):
            server = server_refresh(ctx.site, openstack_id=test["server_id"])
            if server is None or server.is_deleted:
                vanished = gettext_noop("the test instance vanished")
                return _verdict(test, BootTest.Outcome.SKIPPED, vanished)
        test["console_problem"] = exc.message
        output = ""
    panic = PANIC.search(output)
    if panic:
        return _verdict(
            test, BootTest.Outcome.FAILED, panic.group(0).strip(), console_tail=_tail(output)
        )
    if CAME_UP.search(output):
        seconds = _seconds_since(test["booted_at"])
        return _verdict(
            test, BootTest.Outcome.VERIFIED, "", boot_seconds=seconds,
            console_tail=_tail(output),
            detail=say(gettext_noop("the system came up in %(seconds)s s"), seconds=round(seconds)),
        )  # fmt: skip
    test["console_printed"] = test.get("console_printed") or bool(output.strip())
    limit = settings.JOB_BOOT_TEST_SECONDS
    if _seconds_since(test["active_at"]) > limit:
        if test["console_printed"]:  # it printed, so it would have shown a prompt
            reason = say(
                gettext_noop("no login prompt within %(limit)s of ACTIVE"), limit=span(limit)
            )
            return _verdict(test, BootTest.Outcome.FAILED, reason, console_tail=_tail(output))
        if not test.get("console_answered"):
            reason = say(
                gettext_noop(
                    "the cloud showed no console log within %(limit)s of ACTIVE (%(problem)s)"
                ),
                limit=span(limit),
                problem=test.get("console_problem") or word(gettext_noop("no answer")),
            )
        else:
            reason = say(
                gettext_noop(
                    "the serial console stayed empty for %(limit)s after ACTIVE "
                    "(the image may not write to ttyS0)"
                ),
                limit=span(limit),
            )
        return _verdict(test, BootTest.Outcome.SKIPPED, reason)
    return Wait(
        progress=gettext_noop("waiting for the test instance to come up"),
        observed=len(output),
        budget=limit + BUDGET_MARGIN_SECONDS,
        over_budget=say(gettext_noop("no verdict within %(limit)s of ACTIVE"), limit=span(limit)),
    )


def step_verify_cleanup(ctx: StepContext) -> Wait | Done | Skipped:
    """Delete every test instance of this job (the recorded one, and any a cut-off
    request made), wait until they are gone, then record the verdict. Also the undo
    step: a failed job never leaves a test instance behind."""
    test = ctx.state.boot_test
    if not test or not ("requested_at" in test or "server_id" in test):
        return Skipped(gettext_noop("no test instance was made"))
    if "deleting" not in test:
        unanswered = _unanswered_at(test)
        if unanswered and _seconds_since(unanswered) < _landing_seconds():
            # List only once a cut-off request can no longer make a server.
            return Wait(
                progress=gettext_noop(
                    "waiting until a cut-off request for a test instance can no longer land"
                ),
                budget=_landing_seconds() + BUDGET_MARGIN_SECONDS,
            )
        ids = {server.id for server in _own_test_servers(ctx)}
        ids.update([test["server_id"]] if "server_id" in test else [])
        for server_id in sorted(ids):
            with contextlib.suppress(cloud.NotFound):
                cloud.server_delete(ctx.site.name, server_id=server_id)
        test["deleting"] = sorted(ids)
        ctx.checkpoint()
    for server_id in test["deleting"]:
        server = server_refresh(ctx.site, openstack_id=server_id)
        if server is not None and not server.is_deleted:
            return Wait(
                progress=gettext_noop("deleting the test instance"),
                observed=server_observed(server),
            )
    # No verdict yet: the job failed or was stopped before the test could tell.
    outcome = test.get("outcome") or BootTest.Outcome.SKIPPED
    interrupted = gettext_noop("the test was interrupted")
    reason = test.get("reason") or ("" if test.get("outcome") else interrupted)
    boot_test_record(
        ctx, outcome, reason=reason, flavor_name=test["flavor_name"],
        boot_seconds=test.get("boot_seconds"), console_tail=test.get("console_tail", ""),
    )  # fmt: skip
    verdict = verdict_text(outcome, reason)
    count = len(test["deleting"])
    if count > 1:
        deleted = say(gettext_noop("deleted %(count)s test instances"), count=count)
    elif count:
        deleted = gettext_noop("deleted the test instance")
    else:
        deleted = gettext_noop("no test instance was made")
    detail = say(
        gettext_noop("%(deleted)s; boot test: %(verdict)s"),
        deleted=text(deleted),
        verdict=text(verdict),
    )
    return Done(detail, result={"boot_test": verdict})
