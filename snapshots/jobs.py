"""The stop-then-snapshot job and the delete job.

Create: check → stop (if running) → wait for SHUTOFF → snapshot → upload →
wait until Nova is idle → restart (if it ran before and the user asked) →
wait for ACTIVE. The image carries `portal_job=job-<id>` in its properties: a
re-run of the snapshot step looks for that image first, so a duplicate
delivery never makes a second snapshot.

If a step fails, the undo steps run (see portal/jobs.py): remove this job's
unfinished image (found by its `portal_job` property when its id was never
recorded), wait until Nova's task on the server has ended, and start the
instance again if this job stopped it and the user asked for it to run. A job
never ends "failed" with an instance it stopped left stopped, unless the cloud
refuses to start it: then the first line of the error says so.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.utils import timezone, translation
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
    task_began,
)
from instances.models import Server
from instances.services import server_refresh
from portal import cloud
from portal.access import can_act_on
from portal.errors import ActionRefused
from portal.jobs import (
    JOB_KEY,
    SKIPPED,
    Done,
    Kind,
    Skipped,
    Step,
    StepContext,
    StepFailed,
    Wait,
    undo_details,
)
from portal.mirror.authorship import CREATED_BY_KEY
from portal.mirror.freshness import site_watched
from portal.mirror.rows import rows_by_object
from portal.models import Job
from portal.preferences import language_of
from portal.texts import render, say, span, text, word
from snapshots.forms import clean_snapshot_name
from snapshots.services import (
    SNAPSHOT_DELETE,
    snapshot_create_check,
    snapshot_names_taken_by_jobs,
)
from snapshots.verify import (
    BootTestState,
    step_verify_boot,
    step_verify_cleanup,
    step_verify_console,
    step_verify_plan,
)

log = logging.getLogger(__name__)

# Nova's tasks on a server while it snapshots the disk and uploads the image.
SNAPSHOT_TASKS = {
    "image_snapshot_pending", "image_snapshot", "image_pending_upload", "image_uploading",
}  # fmt: skip

# After the snapshot, when asked: boot a throwaway instance from it (see verify.py).
# Once a test is planned, a failure deletes every test instance the job made.
BOOT_TEST_STEPS = (
    Step(
        "verify_plan",
        gettext_noop("Choosing a flavor for the boot test"),
        step_verify_plan,
        undo=Step(
            "undo_boot_test", gettext_noop("Deleting the test instance"), step_verify_cleanup
        ),
    ),
    Step("verify_boot", gettext_noop("Booting a test instance"), step_verify_boot),
    Step(
        "verify_console",
        gettext_noop("Waiting for the test instance to come up"),
        step_verify_console,
        acts=False,
    ),
    Step("verify_cleanup", gettext_noop("Deleting the test instance"), step_verify_cleanup),
)


@dataclass
class SnapshotParams:
    name: str
    # The name casefolded: two unfinished jobs never make two snapshots of one name.
    name_key: str = ""
    description: str = ""
    # Start the instance again afterwards if this job stopped it.
    restart: bool = False
    # Boot a test instance from the snapshot (see verify.py).
    verify: bool = False
    # One of many (snapshot_create_many_request): only a failure is mailed.
    batch: bool = False


@dataclass
class SnapshotState(PowerState, BootTestState):
    """The power steps' record (stopped_by_portal: the undo starts it again), the
    boot test's, and the snapshot's own."""

    # Saved just before the job asked Nova for the snapshot, and when: a re-run (or
    # the undo) after a cut-off request looks for the image it may have made.
    snapshot_asked: bool = False
    snapshot_asked_at: str | None = None
    # The undo asked Nova to start the instance again: its wait for ACTIVE runs.
    undo_start_requested: bool = False
    # The first line of the error while the instance this job stopped is not
    # running again (see SnapshotCreate.error_headline). True: a job from before.
    left_stopped: str | bool = ""
    may_be_stopped: str | bool = ""


def step_check(ctx: StepContext) -> None:
    """The same rules as the form, again: no path around the form skips them."""
    server = server_of(ctx)
    try:
        snapshot_create_check(
            server=server,
            actor=ctx.actor,
            name=ctx.params.name,
            exclude_job_id=ctx.job_id,
            name_taken=ctx.cache.get("name_taken"),
        )
    except ActionRefused as refused:
        raise StepFailed(refused.message) from refused
    if ctx.state.prior_status is None:
        ctx.state.prior_status = server.status
    return None


def names_read_ahead(jobs: list[Job]) -> None:
    """step_check's name rule for a batch's snapshot jobs at their check (see
    portal.jobs.jobs_preload): two queries for all of them, not two each. Only for
    a job whose server the batch read ahead (servers_read_ahead, registered first);
    any other asks in its step, as alone."""
    checking = []
    for job in jobs:
        server = job.__dict__.get("batch_reads", {}).get("server")
        if job.kind != SnapshotCreate.name or job.step_index != 0 or server is None:
            continue
        try:
            name = clean_snapshot_name(job.params.get("name", ""))
        except ValidationError:
            continue  # the step refuses it, with the form's message
        checking.append((job, server, name))
    if not checking:
        return
    taken = snapshot_names_taken_by_jobs([(server, name, job.pk) for job, server, name in checking])
    for (job, _, _), is_taken in zip(checking, taken, strict=True):
        job.__dict__["batch_reads"]["name_taken"] = is_taken


def images_read_ahead(jobs: list[Job]) -> None:
    """_image_of's read for a batch of snapshot jobs at their upload step (see
    portal.jobs.jobs_preload), in one query, not one each: the run that Nova's task
    ending wakes reads the image. Only at a site the watcher keeps current
    (elsewhere _image_of asks Glance, and nothing is read ahead)."""
    wanted = []
    for job in jobs:
        if job.kind != SnapshotCreate.name or job.step_index >= len(job.steps):
            continue
        image_id = job.state.get("image_id")
        at_upload = job.steps[job.step_index]["name"] == "upload"
        if at_upload and image_id and job.site is not None and site_watched(job.site):
            wanted.append((job, image_id))
    if not wanted:
        return
    found = rows_by_object(Image, [(job.site_id, image_id) for job, image_id in wanted])
    for job, image_id in wanted:
        image = found.get((job.site_id, image_id))
        if image is not None:  # else _image_of reads it again, and tells it is gone
            job.__dict__.setdefault("batch_reads", {})["image"] = image


def step_stop_if_running(ctx: StepContext) -> Skipped | None:
    if ctx.state.prior_status != "ACTIVE" and not ctx.state.stopped_by_portal:
        return Skipped(gettext_noop("the instance was not running"))
    return step_stop(ctx)


def step_wait_stopped(ctx: StepContext) -> Wait | Skipped | None:
    if not ctx.state.stopped_by_portal:
        return Skipped(gettext_noop("the instance was not running"))
    return step_wait_shutoff(ctx)


def _find_own_image(ctx: StepContext) -> cloud.CloudImage | None:
    """The image this job asked Nova for, found by its `portal_job` property.

    Nova copies a base image's properties into every snapshot, so a snapshot of a
    machine booted from this job's image carries the same marker: only an image
    of this job's own server (`instance_uuid`, which Nova sets) is the job's. And
    only one owned by the job's project (Nova makes it the project's) and made
    after the job asked (made_by_job): another project's image with the marker
    is never adopted, nor deleted by the undo."""
    found = cloud.image_find_by_property(
        ctx.site.name, key=JOB_KEY, value=ctx.key, owner=ctx.project.openstack_id
    )
    asked_at = ctx.state.snapshot_asked_at
    own = [
        i for i in found
        if i.properties.get("instance_uuid") == ctx.target_server_id
        and ctx.made_by_me(i, asked_at=asked_at)
    ]  # fmt: skip
    return own[0] if own else None


def _image_of(ctx: StepContext, *, acted: bool = False) -> Image | None:
    """The job's snapshot image, like server_of: the mirror row while the site's
    watcher keeps it current, else (and right after the job acted) a targeted
    refresh; read once per run."""
    image = None if acted else ctx.cache.get("image")
    if image is None:
        if not acted and site_watched(ctx.site):
            image = Image.objects.filter(site=ctx.site, openstack_id=ctx.state.image_id).first()
        else:
            image = image_refresh(
                ctx.site,
                openstack_id=ctx.state.image_id,
                made_for=ctx.project,
                made_by=ctx.actor,
            )
        ctx.cache["image"] = image
    return image


def _observed(image: Image | None, server: Server | None) -> list:
    """What the snapshot's waits watch for progress: the image and the server."""
    seen = []
    if image is not None:
        seen += [image.status, image.size, str(image.updated_at)]
    if server is not None:
        seen += server_observed(server)
    return seen


def step_snapshot(ctx: StepContext) -> Wait | None:
    """Ask Nova for the snapshot, once: a re-run after the request finds the image
    it asked for by its `portal_job` property. The next step waits for it."""
    state: SnapshotState = ctx.state
    asked_now = False
    if state.image_id is None:
        server = server_of(ctx)
        # Only a run after one that may have asked looks for the image it made (a
        # Glance listing by property): the marker is saved before the request.
        existing = _find_own_image(ctx) if state.snapshot_asked else None
        if existing is None and server.task_state:
            return busy_wait(ctx, server)
        if existing is None:
            state.snapshot_asked = True
            if state.snapshot_asked_at is None:
                state.snapshot_asked_at = timezone.now().isoformat()
            ctx.checkpoint()
            metadata = {JOB_KEY: ctx.key, CREATED_BY_KEY: ctx.actor.username}
            if ctx.params.description:
                metadata["description"] = ctx.params.description
            try:
                image_id = cloud.server_create_image(
                    ctx.site.name,
                    project_id=server.project_openstack_id,
                    server_id=server.openstack_id,
                    name=ctx.params.name,
                    metadata=metadata,
                )
                asked_now = True
            except cloud.Conflict:
                # A duplicate delivery of this step may have asked a moment ago.
                existing = _find_own_image(ctx)
                if existing is None:
                    raise
                image_id = existing.id
        else:
            image_id = existing.id
        state.image_id = image_id
        ctx.target_image_id = image_id
        ctx.authorship_record(image_id)
    if asked_now:
        # The server's new task, as the next step's first read: Nova set it before
        # it answered (see task_began). The image row comes with the watcher's next
        # listing (attributed through the authorship recorded above); the upload
        # step asks Glance itself unless the mirror shows the image active by then.
        task_began(ctx, server_of(ctx), "image_snapshot_pending")
        ctx.cache.pop("image", None)
        return None
    # A re-run that found its image: how far Nova got is asked, not assumed.
    _image_of(ctx, acted=True)
    server_of(ctx, acted=True)
    return None


def upload_budget(server: Server) -> float:
    """Seconds Nova may take to snapshot and upload this server's disk (see settings)."""
    per_gb = settings.JOB_UPLOAD_SECONDS_PER_GB * server.flavor_disk_gb
    return max(settings.JOB_UPLOAD_MIN_SECONDS, per_gb)


def _uploading(ctx: StepContext, server: Server, progress: str, *, watch: str) -> Wait:
    """Nova is working on the snapshot: progress, though Glance shows none until the
    end. The wait is budgeted by the disk's size, not by a no-progress limit."""
    budget = upload_budget(server)
    return Wait(
        progress=progress,
        # The image only as this run read it, if it did: a budgeted wait is judged
        # by its age, and Glance shows nothing until the end anyway.
        observed=_observed(ctx.cache.get("image"), server),
        watch=watch,
        budget=budget,
        over_budget=say(
            gettext_noop(
                "Nova was still %(task)s after %(budget)s (the limit for a %(disk)s GB disk); "
                "the image is left to Nova"
            ),
            task=word(server.task_label),
            budget=span(budget),
            disk=server.flavor_disk_gb,
        ),
    )


def step_upload(ctx: StepContext) -> Wait | None:
    """Wait until Glance has the image: while Nova snapshots the disk, then uploads it.

    Real Glance shows nothing during the upload (the image stays `saving` with no
    size and an unchanged updated_at); Nova's task on the server is the only sign
    of life, and it ends when the upload has ended, either way. So the job sleeps
    until then (with the watcher, one wake), and then asks Glance once: the image
    must be active now. Glance lists no deleted images, so only asking tells of an
    image the cloud discarded.
    """
    server = server_of(ctx)
    if server.task_state in SNAPSHOT_TASKS:
        if site_watched(ctx.site):
            # The job sleeps through Nova's changing tasks: a label true for all of them.
            progress = gettext_noop("Nova is snapshotting the disk and uploading the image")
            return _uploading(ctx, server, progress, watch="server")
        image = _image_of(ctx)
        if image is not None and image.status == "active":
            return None  # Nova clears its task a moment later: the next step waits for that
        return _uploading(ctx, server, _upload_progress(server), watch="")
    if server.task_state:
        return busy_wait(ctx, server)
    image = _image_of(ctx)
    if image is None or image.deleted_at is not None or image.status != "active":
        # Active in the mirror is final; anything else is asked of Glance: it lists
        # no deleted images, so only asking tells of one the cloud discarded.
        image = _image_of(ctx, acted=True)
    if image is None or image.deleted_at is not None:
        raise StepFailed(_with_fault(gettext_noop("the cloud discarded the snapshot"), server))
    if image.status == "active":
        return None
    if image.status in ("killed", "deactivated"):
        could_not = say(
            gettext_noop("the cloud could not save the snapshot (image %(status)s)"),
            status=image.status,
        )
        raise StepFailed(_with_fault(could_not, server))
    # Nova's task ended and the image is not complete: nothing will complete it.
    unfinished = say(
        gettext_noop(
            "Nova finished its snapshot task, but the image is still %(status)s: "
            "the upload did not complete"
        ),
        status=image.status,
    )
    raise StepFailed(_with_fault(unfinished, server))


def _with_fault(message: str, server: Server) -> str:
    """`message`, and Nova's fault in brackets after it if Nova gave one."""
    if not server.fault_message:
        return message
    return say(
        gettext_noop("%(message)s (%(fault)s)"), message=text(message), fault=server.fault_message
    )


def _upload_progress(server: Server) -> str:
    if server.task_state in ("image_snapshot_pending", "image_snapshot"):
        return gettext_noop("Nova is snapshotting the disk")
    return gettext_noop("uploading the image")


def step_settle(ctx: StepContext) -> Wait | None:
    """Nova clears the server's task_state a little after Glance shows the image
    active; acting on the server before that gets a 409."""
    server = server_of(ctx)
    if server.task_state:
        return server_wait(
            ctx,
            server,
            say(gettext_noop("waiting for Nova to finish %(task)s"), task=word(server.task_label)),
        )
    return None


def _restart_wanted(ctx: StepContext) -> bool:
    """Start it again only if this job stopped it (not if the user did meanwhile)."""
    return ctx.params.restart and ctx.state.stopped_by_portal


def step_restart(ctx: StepContext) -> Wait | Skipped | None:
    if not _restart_wanted(ctx):
        if not ctx.params.restart:
            return Skipped(gettext_noop("not asked to restart"))
        if ctx.state.prior_status == "ACTIVE":
            return Skipped(gettext_noop("it was stopped by someone else, not by this job"))
        return Skipped(gettext_noop("it was off before"))
    return step_start(ctx)


def step_wait_restarted(ctx: StepContext) -> Wait | Skipped | None:
    if not _restart_wanted(ctx):
        return SKIPPED
    return step_wait_active(ctx)


# --- Undo ---------------------------------------------------------------------


def undo_image(ctx: StepContext) -> Done | Skipped:
    """Remove this job's image unless it is complete (then it is a good snapshot).
    The undo of the snapshot step, which may have failed after asking."""
    image_id = ctx.state.image_id
    if image_id is None:
        # Asked for, but the id never reached the job row: look for it by its property.
        found = _find_own_image(ctx) if ctx.state.snapshot_asked else None
        if found is None:
            return Skipped(gettext_noop("no image was made"))
        image_id = ctx.state.image_id = found.id
    image = image_refresh(ctx.site, openstack_id=image_id)
    if image is None or image.deleted_at is not None:
        return Skipped(gettext_noop("the cloud already removed the unfinished image"))
    if image.status == "active":
        return Skipped(gettext_noop("the snapshot is complete and was kept"))
    server = _undo_server(ctx)
    if server is not None and server.task_state in SNAPSHOT_TASKS:
        # Never delete an image Nova is still uploading: Nova deletes it itself if
        # the upload fails, and a finished one is a good snapshot.
        return Skipped(
            say(
                gettext_noop("Nova is still %(task)s the image: it is left to Nova"),
                task=word(server.task_label),
            )
        )
    with contextlib.suppress(cloud.NotFound):
        cloud.image_delete(ctx.site.name, image_id=image_id)
    image_refresh(ctx.site, openstack_id=image_id)
    return Done(gettext_noop("removed the unfinished snapshot image"))


def _undo_server(ctx: StepContext) -> Server | None:
    server = server_refresh(ctx.site, openstack_id=ctx.target_server_id)
    return None if server is None or server.is_deleted else server


def _start_wanted_again(ctx: StepContext) -> bool:
    """The stop step's undo starts the instance only if the stop was this job's
    (the step also ends "done" when someone else had stopped it) and the user
    asked for it to run afterwards."""
    return ctx.state.stopped_by_portal and ctx.params.restart


def undo_settle(ctx: StepContext) -> Wait | Skipped | None:
    """Wait until no Nova task runs on the server (a snapshot still uploading ends
    when its image is deleted); starting it before that gets a 409."""
    if not _start_wanted_again(ctx):
        return Skipped(gettext_noop("the instance stays as it was"))
    server = _undo_server(ctx)
    if server is None:
        return Skipped(gettext_noop("the instance no longer exists"))
    if server.task_state:
        return Wait(
            progress=say(
                gettext_noop("waiting for %(name)s to finish %(task)s"),
                name=server.name,
                task=word(server.task_label),
            ),
            observed=server_observed(server),
        )
    return None


def undo_start(ctx: StepContext) -> Wait | Skipped | Done:
    if not _start_wanted_again(ctx):
        return Skipped(gettext_noop("the job did not stop it, or was asked to leave it off"))
    server = _undo_server(ctx)
    if server is None:
        return Skipped(gettext_noop("the instance no longer exists"))
    if server.status == "ACTIVE" and not server.task_state:
        return Skipped(gettext_noop("it is running"))
    outcome = step_start(ctx)
    if isinstance(outcome, Wait):
        return outcome
    ctx.state.start_attempts = 1  # the undo gets its own two attempts
    ctx.state.undo_start_requested = True
    return Done(gettext_noop("asked the cloud to start the instance again"))


def undo_wait_active(ctx: StepContext) -> Wait | Skipped | Done:
    """Wait for ACTIVE (asking once more if Nova drops the start); if the cloud
    refuses, say so in the first line of the job's error."""
    if not ctx.state.undo_start_requested:
        return SKIPPED
    server = _undo_server(ctx)
    if server is None:
        return Skipped(gettext_noop("the instance no longer exists"))
    try:
        outcome = step_wait_active(ctx)
    except StepFailed as refused:
        ctx.state.left_stopped = say(
            gettext_noop("%(name)s is left STOPPED: %(reason)s."),
            name=server.name,
            reason=text(str(refused)),
        )
        raise
    return outcome or Done(gettext_noop("the instance runs again"))


def _may_be_stopped_line(ctx: StepContext) -> str:
    server = Server.objects.filter(site=ctx.site, openstack_id=ctx.target_server_id).first()
    return say(
        gettext_noop(
            "%(name)s may be left STOPPED: %(site)s is not answering; "
            "the portal starts it again as soon as it answers."
        ),
        name=server.name if server is not None else word(gettext_noop("The instance")),
        site=ctx.site.display_name,
    )


def _through_outage(step):
    """An undo step that reaches the instance, for a site that does not answer: the
    engine keeps trying for hours (JOB_UNDO_OUTAGE_SECONDS); meanwhile the first line
    of the job's error says the instance this job stopped may be left stopped, and
    once the instance runs again (or is found running) the line goes."""

    def run(ctx: StepContext):
        state: SnapshotState = ctx.state
        try:
            outcome = step(ctx)
        except cloud.Unavailable:
            if _start_wanted_again(ctx) and not state.may_be_stopped:
                state.may_be_stopped = _may_be_stopped_line(ctx)
            raise
        if state.may_be_stopped and _runs_again(ctx, outcome):
            state.may_be_stopped = ""
        return outcome

    run.__name__ = step.__name__
    run.__doc__ = step.__doc__
    return run


def _runs_again(ctx: StepContext, outcome) -> bool:
    """The step got an answer and the mirror (just refreshed) shows the instance running."""
    if isinstance(outcome, Wait) or ctx.state.left_stopped:
        return False
    server = Server.objects.filter(site=ctx.site, openstack_id=ctx.target_server_id).first()
    return server is not None and server.status == "ACTIVE" and not server.task_state


def undo_report(ctx: StepContext) -> Done | Skipped:
    """Say in the first line of the error when the instance this job stopped is not
    running again (the cloud refused, or a task never ended).

    An undo step, not part of on_finished: the job is recorded failed only with
    this line in place, so neither a page nor a crashed worker ever shows the
    failure without it."""
    if not _start_wanted_again(ctx) or ctx.state.left_stopped:
        return SKIPPED
    server = _undo_server(ctx)
    if server is None or server.status == "ACTIVE":
        return SKIPPED
    ctx.state.left_stopped = say(
        gettext_noop("%(name)s is left %(status)s: the portal could not start it again."),
        name=server.name,
        status=server.status,
    )
    return Done(
        say(gettext_noop("%(name)s is left %(status)s"), name=server.name, status=server.status)
    )


def mail_language(user) -> str:
    """The language a mail to `user` is written in: the one they last used the portal
    in (portal.preferences, kept as they browse), else English."""
    return language_of(user)


def snapshot_notify(job: Job) -> None:
    if job.actor is None or not job.actor.email:
        return
    if job.status == Job.Status.SUCCEEDED and job.params.get("batch"):
        return  # one of many (see snapshot_create_many_request): only failures are mailed
    with translation.override(mail_language(job.actor)):
        subject, body = _snapshot_mail(job)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [job.actor.email], fail_silently=True)


def _snapshot_mail(job: Job) -> tuple[str, str]:
    name = {"name": job.params.get("name", "")}
    if job.status == Job.Status.SUCCEEDED:
        subject = gettext("Snapshot “%(name)s” is ready") % name
        body = (
            gettext("Your snapshot “%(name)s” is active and can be used to launch new instances.")
            % name
        )
    else:
        error = render(job.error)
        first_line = error.splitlines()[0] if error else gettext("failed")
        if job.state.get("left_stopped"):
            subject = gettext("Snapshot “%(name)s” failed and the instance is STOPPED") % name
        else:
            subject = gettext("Snapshot “%(name)s” failed") % name
        could_not = gettext("Your snapshot “%(name)s” could not be created.") % name
        body = f"{first_line}\n\n{could_not}\n\n{error}\n"
        done = [render(detail) for detail in undo_details(job)]
        if done:
            body += "\n" + gettext("The portal %(what)s.") % {"what": "; ".join(done)}
    if job.result.get("boot_test"):
        verdict = render(job.result["boot_test"])
        body += "\n\n" + gettext("Boot test: %(verdict)s") % {"verdict": verdict}
        body += "\n"
    return subject, body


class SnapshotCreate(Kind):
    """Stop (if running), snapshot, start again (if asked), and test it boots (if asked)."""

    name = "snapshot.create"
    Params = SnapshotParams
    State = SnapshotState
    steps = (
        Step("check", gettext_noop("Checking the request"), step_check),
        Step(
            "stop",
            gettext_noop("Stop requested"),
            step_stop_if_running,
            # It acts only through _power, which saves the state before the request.
            checkpoints=True,
            undo=(
                Step(
                    "undo_settle",
                    gettext_noop("Waiting until the instance is idle"),
                    _through_outage(undo_settle),
                    acts=False,
                ),
                Step(
                    "undo_start",
                    gettext_noop("Starting the instance again"),
                    _through_outage(undo_start),
                ),
                Step(
                    "undo_wait_active",
                    gettext_noop("Waiting for ACTIVE again"),
                    _through_outage(undo_wait_active),
                ),
                Step(
                    "undo_report",
                    gettext_noop("Checking the instance runs again"),
                    _through_outage(undo_report),
                    acts=False,
                ),
            ),
        ),
        Step("wait_stopped", gettext_noop("Waiting for SHUTOFF"), step_wait_stopped, acts=False),
        Step(
            "snapshot",
            gettext_noop("Snapshot requested"),
            step_snapshot,
            undo=Step("undo_image", gettext_noop("Removing the unfinished image"), undo_image),
        ),
        Step("upload", gettext_noop("Uploading the image"), step_upload, acts=False),
        Step("settle", gettext_noop("Waiting for Nova to finish"), step_settle, acts=False),
        Step("restart", gettext_noop("Start requested"), step_restart),
        Step("wait_restarted", gettext_noop("Waiting for ACTIVE"), step_wait_restarted),
        *BOOT_TEST_STEPS,
    )

    @classmethod
    def title(cls, params: SnapshotParams) -> str:
        return gettext("Create snapshot “%(name)s”") % {"name": params.name}

    @classmethod
    def error_headline(cls, state: SnapshotState) -> str:
        """While the instance this job stopped is not running again, the error says
        so first (the email's subject line reads it too)."""
        lines = (state.left_stopped, state.may_be_stopped)
        return "\n".join(line for line in lines if isinstance(line, str) and line)

    @classmethod
    def on_finished(cls, job: Job) -> None:
        snapshot_notify(job)


# --- Verify now ----------------------------------------------------------------


@dataclass
class VerifyParams:
    image_id: str
    name: str = ""
    verify: bool = True


def step_verify_check(ctx: StepContext) -> None:
    """The snapshot still exists and is active, and the user may still act on it."""
    image = image_refresh(ctx.site, openstack_id=ctx.params.image_id)
    if image is None or image.deleted_at is not None:
        raise StepFailed(gettext_noop("the snapshot no longer exists"))
    if image.status != "active":
        raise StepFailed(
            say(gettext_noop("the snapshot is %(status)s, not active"), status=image.status)
        )
    if not can_act_on(ctx.actor, project=ctx.project, created_by_id=image.created_by_id):
        raise StepFailed(gettext_noop("you may no longer act on this snapshot"))
    ctx.state.image_id = image.openstack_id


class SnapshotVerify(Kind):
    """Boot a test instance from an existing snapshot ("Verify now")."""

    name = "snapshot.verify"
    Params = VerifyParams
    State = BootTestState
    steps = (
        Step("check", gettext_noop("Checking the request"), step_verify_check),
        *BOOT_TEST_STEPS,
    )

    @classmethod
    def title(cls, params: VerifyParams) -> str:
        return gettext("Test that “%(name)s” boots") % {"name": params.name}


# --- Delete ---------------------------------------------------------------------
#
# Declared in snapshots.services (SNAPSHOT_DELETE): ticked ones or all matching, in
# batches, then a summary that fails when every delete failed.

SnapshotDelete = SNAPSHOT_DELETE.job_kind()
