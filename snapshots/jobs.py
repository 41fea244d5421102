"""The stop-then-snapshot job and the delete job.

Create: check → stop (if running) → wait for SHUTOFF → snapshot → upload →
restart (if it ran before and the user asked) → wait for ACTIVE. The image
carries `portal_job=<job id>` in its properties: a re-run of the snapshot
step looks for that image first, so a duplicate delivery never makes a
second snapshot.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail

from images.services import image_refresh
from instances.jobs import server_of, step_start, step_stop, step_wait_active, step_wait_shutoff
from instances.services import server_refresh
from portal import cloud
from portal.errors import ActionRefused
from portal.jobs import (
    JOB_KEY,
    SKIPPED,
    JobKind,
    Skipped,
    Step,
    StepFailed,
    Wait,
    job_key,
    job_kind_register,
)
from portal.mirror import CREATED_BY_KEY
from portal.models import Job, Site
from snapshots.services import snapshot_create_check

log = logging.getLogger(__name__)

SNAPSHOTTING_TASKS = {"image_snapshot_pending", "image_snapshot"}


def step_check(job: Job) -> None:
    """The same rules as the form, again: no path around the form skips them."""
    server = server_of(job)
    try:
        snapshot_create_check(
            server=server, actor=job.actor, name=job.params["name"], exclude_job_id=job.pk
        )
    except ActionRefused as refused:
        raise StepFailed(refused.message) from refused
    job.state.setdefault("prior_status", server.status)
    return None


def step_stop_if_running(job: Job) -> None | Skipped:
    if job.state.get("prior_status") != "ACTIVE" and not job.state.get("stopped_by_portal"):
        return Skipped("the instance was not running")
    return step_stop(job)


def step_wait_stopped(job: Job) -> Wait | None | Skipped:
    if not job.state.get("stopped_by_portal"):
        return Skipped("the instance was not running")
    return step_wait_shutoff(job)


def _find_own_image(job: Job) -> cloud.CloudImage | None:
    found = cloud.image_find_by_property(job.site.name, key=JOB_KEY, value=job_key(job))
    return found[0] if found else None


def step_snapshot(job: Job) -> Wait | None:
    """Ask Nova for the snapshot once, then wait while it snapshots the disk."""
    if "image_id" not in job.state:
        existing = _find_own_image(job)
        if existing is None:
            server = server_of(job)
            metadata = {JOB_KEY: job_key(job), CREATED_BY_KEY: job.actor.username}
            if job.params.get("description"):
                metadata["description"] = job.params["description"]
            try:
                image_id = cloud.server_create_image(
                    job.site.name,
                    project_id=server.project_openstack_id,
                    server_id=server.openstack_id,
                    name=job.params["name"],
                    metadata=metadata,
                )
            except cloud.Conflict:
                # A duplicate delivery of this step may have asked a moment ago.
                existing = _find_own_image(job)
                if existing is None:
                    raise
                image_id = existing.id
        else:
            image_id = existing.id
        job.state["image_id"] = image_id
        job.target_image_id = image_id
    image_refresh(job.site, openstack_id=job.state["image_id"])
    server = server_of(job)
    if server.task_state in SNAPSHOTTING_TASKS:
        return Wait(progress="snapshotting")
    return None


def step_upload(job: Job) -> Wait | None:
    image = image_refresh(job.site, openstack_id=job.state["image_id"])
    server_refresh(job.site, openstack_id=job.target_server_id)
    if image is None or image.deleted_at is not None:
        raise StepFailed("the cloud discarded the snapshot")
    if image.status == "active":
        return None
    if image.status in ("killed", "deactivated"):
        raise StepFailed(f"the cloud could not save the snapshot (image {image.status})")
    return Wait(progress="uploading")


def _restart_wanted(job: Job) -> bool:
    return bool(job.params.get("restart")) and job.state.get("prior_status") == "ACTIVE"


def step_restart(job: Job) -> None | Skipped:
    if not _restart_wanted(job):
        return Skipped(
            "not asked to restart" if job.params.get("restart") is False else "it was off before"
        )
    return step_start(job)


def step_wait_restarted(job: Job) -> Wait | None | Skipped:
    if not _restart_wanted(job):
        return SKIPPED
    return step_wait_active(job)


def snapshot_cleanup(job: Job) -> None:
    """After a failure: remove a half-made image, start the instance if we stopped it."""
    done = []
    image_id = job.state.get("image_id")
    if image_id:
        image = image_refresh(job.site, openstack_id=image_id)
        if image is not None and image.deleted_at is None and image.status != "active":
            try:
                cloud.image_delete(job.site.name, image_id=image_id)
                done.append("removed the unfinished snapshot image")
            except cloud.NotFound:
                pass
            image_refresh(job.site, openstack_id=image_id)
    if job.state.get("stopped_by_portal"):
        server = server_refresh(job.site, openstack_id=job.target_server_id)
        if server is not None and not server.is_deleted and server.status == "SHUTOFF":
            try:
                cloud.server_start(job.site.name, server_id=server.openstack_id)
                done.append("started the instance again")
            except cloud.CloudError as exc:
                done.append(f"could not start the instance again: {exc.message}")
            server_refresh(job.site, openstack_id=server.openstack_id)
    job.result["cleanup"] = done


def snapshot_notify(job: Job) -> None:
    if job.actor is None or not job.actor.email:
        return
    name = job.params.get("name", "")
    if job.status == Job.Status.SUCCEEDED:
        subject = f"Snapshot “{name}” is ready"
        body = f"Your snapshot “{name}” is active and can be used to launch new instances."
    else:
        subject = f"Snapshot “{name}” failed"
        body = f"Your snapshot “{name}” could not be created.\n\n{job.error}\n"
        if job.result.get("cleanup"):
            body += "\nThe portal " + " and ".join(job.result["cleanup"]) + "."
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [job.actor.email], fail_silently=True)


job_kind_register(
    JobKind(
        name="snapshot.create",
        steps=(
            Step("check", "Checking", step_check),
            Step("stop", "Stopping", step_stop_if_running),
            Step("wait_stopped", "Stopping", step_wait_stopped),
            Step("snapshot", "Snapshotting", step_snapshot),
            Step("upload", "Uploading", step_upload),
            Step("restart", "Restarting", step_restart),
            Step("wait_restarted", "Restarting", step_wait_restarted),
        ),
        cleanup=snapshot_cleanup,
        describe=lambda job: f"Create snapshot “{job.params.get('name', '')}”",
        on_finished=snapshot_notify,
    )
)


# --- Delete ---------------------------------------------------------------------


def step_delete(job: Job) -> None:
    """Delete each image once; outcomes land in job.state so a re-run skips the done ones."""
    outcomes = job.state.setdefault("outcomes", {})
    sites = {site.pk: site for site in Site.objects.all()}
    for item in job.params["images"]:
        if item["id"] in outcomes:
            continue
        site = sites.get(item["site_id"])
        try:
            cloud.image_delete(site.name, image_id=item["id"])
            outcomes[item["id"]] = "deleted"
        except cloud.NotFound:
            outcomes[item["id"]] = "deleted"  # already gone: what the user wanted
        except cloud.Unavailable:
            raise  # the engine retries the step; done ones stay done
        except cloud.CloudError as exc:
            outcomes[item["id"]] = f"failed: {exc.message}"
        image_refresh(site, openstack_id=item["id"])
        job.save(update_fields=["state"])
    return None


def step_delete_summary(job: Job) -> None:
    outcomes = job.state.get("outcomes", {})
    names = {item["id"]: item["name"] for item in job.params["images"]}
    deleted = [names[i] for i, o in outcomes.items() if o == "deleted"]
    failed = [
        f"{names[i]} ({o.removeprefix('failed: ')})" for i, o in outcomes.items() if o != "deleted"
    ]
    skipped = [f"{s['name']} ({s['reason']})" for s in job.params.get("skipped", [])]
    parts = [f"Deleted {len(deleted)}"]
    if skipped:
        parts.append(f"skipped {len(skipped)}: " + "; ".join(skipped))
    if failed:
        parts.append(f"failed {len(failed)}: " + "; ".join(failed))
    job.result.update(
        {
            "summary": ", ".join(parts) + ".",
            "deleted": deleted,
            "failed": failed,
            "skipped": skipped,
        }
    )
    return None


job_kind_register(
    JobKind(
        name="snapshot.delete",
        steps=(
            Step("delete", "Deleting", step_delete),
            Step("summary", "Summing up", step_delete_summary),
        ),
        describe=lambda job: f"Delete {len(job.params['images'])} snapshot(s)",
    )
)
