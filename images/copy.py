"""Copy an image (a snapshot, or a catalog image) to another site: the `image.copy` job.

The job acts at the target: its site and project are the target's, and what it
makes there (one private image) carries its marker. The bytes go from the source
Glance straight to the target Glance (cloud.image_data_copy: streamed, a few MiB
in memory whatever the size), on the "transfer" queue of its own: the streaming
step is the one step that runs long in one task run, and it must never hold the
workers that move every other job. The lease the worker holds while it runs (see
portal.jobs.lease_kept) keeps a second run off the same job; the job's progress
is written every few seconds meanwhile.

Glance cannot resume an upload and checks nothing the client says: after a crash
the half-made target image (queued, saving, or active with other bytes) is deleted
and the copy starts over, and a copy counts only once the target's os_hash_value
and size are the source's. A failed or cancelled copy leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from images.models import Image
from images.services import image_refresh
from portal import cloud
from portal.access import can_see, project_role, projects_visible_to
from portal.errors import ActionRefused
from portal.jobs import JOB_KEY, Done, Kind, Skipped, Step, StepContext, StepFailed, Wait
from portal.mirror.authorship import CREATED_BY_KEY
from portal.models import Job, Project, Site
from portal.texts import say, size

# The cloud's hint of where a copy came from: "<site>:<image id>".
COPIED_FROM_KEY = "portal_copied_from"
# Properties that describe the source image, not its bytes: what Nova wrote about
# the server it was taken of, the portal's markers, Glance's hashes and locations.
SOURCE_ONLY_PROPERTIES = frozenset(
    {
        "instance_uuid", "image_location", "image_state", "owner_id", "user_id",
        "base_image_ref", "boot_roles", "owner_project_name", "owner_user_name",
        JOB_KEY, CREATED_BY_KEY, COPIED_FROM_KEY, "os_hash_algo", "os_hash_value",
        "checksum", "direct_url", "locations", "stores", "os_glance_importing_to_stores",
        "os_glance_failed_import", "os_glance_stores",
    }
)  # fmt: skip
# The job row's progress is written at most this often while the bytes stream.
PROGRESS_EVERY_SECONDS = 2.0
TRANSFER_QUEUE = "transfer"


def carried_properties(properties: dict[str, str]) -> dict[str, str]:
    return {
        key: value
        for key, value in properties.items()
        if key not in SOURCE_ONLY_PROPERTIES and not key.startswith("os_glance")
    }


def bytes_progress(sent: int, total: int | None) -> str:
    """ "Copying the data: 1.2 GiB of 4.0 GiB (30%)", stored for the reader's language."""
    if not total:
        return say(gettext_noop("Copying the data: %(sent)s copied"), sent=size(sent))
    return say(
        gettext_noop("Copying the data: %(sent)s of %(total)s (%(percent)s%%)"),
        sent=size(sent),
        total=size(total),
        percent=min(100, int(sent * 100 / total)),
    )


# --- who may copy what where ----------------------------------------------------------


def image_copy_targets(*, user, image: Image) -> list[Project]:
    """The projects at other sites the user may put a copy in: one they are a member
    of (a superuser: any)."""
    projects = projects_visible_to(user).exclude(site=image.site).select_related("site")
    return [p for p in projects.order_by("site__display_name", "name") if project_role(user, p)]


def image_copy_check(*, image: Image, actor, target: Project | None) -> None:
    if actor is None or not actor.is_active:
        raise ActionRefused(
            gettext("The account that asked for the copy may act no more."), status=403
        )
    if image.deleted_at is not None:
        raise ActionRefused(gettext("This image is gone."), status=404)
    shared = not image.is_snapshot and image.visibility in ("public", "community")
    if not shared and not can_see(actor, image.project):
        raise ActionRefused(gettext("You may not copy this image."), status=403)
    if target is None or target.pk not in {
        p.pk for p in image_copy_targets(user=actor, image=image)
    }:
        if target is not None and target.site_id == image.site_id:
            raise ActionRefused(
                gettext("Choose a project at another site than the image's."), status=400
            )
        raise ActionRefused(gettext("Choose one of your projects at another site."), status=403)
    if image.status != "active":
        raise ActionRefused(
            gettext("%(image)s is %(status)s; only an active image can be copied.")
            % {"image": image.name, "status": image.status}
        )
    if image.is_volume_snapshot:
        raise ActionRefused(
            gettext(
                "%(image)s was made from an instance booted from a volume: it has no data of "
                "its own to copy (its disks are Cinder volume snapshots at its site)."
            )
            % {"image": image.name},
            status=400,
        )


def image_copy_request(
    *, image: Image, actor, target: Project | None, boot_test: bool = False,
    idempotency_key: str = "",
) -> Job:  # fmt: skip
    image_copy_check(image=image, actor=actor, target=target)
    assert target is not None
    return ImageCopy.create(
        actor=actor,
        project=target,
        site=target.site,
        idempotency_key=idempotency_key,
        params=CopyParams(
            source_site=image.site.name,
            source_image_id=image.openstack_id,
            name=image.name,
            boot_test=bool(boot_test),
            source_site_display=image.site.display_name,
        ),
    )


# How far image_copies follows copies of copies, up and down.
COPY_GENERATIONS = 5


def image_copies(image: Image) -> list[Image]:
    """Where this image exists, as the portal recorded it: the original (followed up
    through copies of copies) and every copy of it, and of those copies."""
    origin = image
    for _ in range(COPY_GENERATIONS):
        if not (origin.copied_from_site_id and origin.copied_from_image_id):
            break
        parent = Image.objects.filter(
            site_id=origin.copied_from_site_id, openstack_id=origin.copied_from_image_id
        ).first()
        if parent is None:
            break
        origin = parent
    found = {origin.pk: origin}
    generation = [origin]
    for _ in range(COPY_GENERATIONS):
        copied_from = Q()
        for row in generation:
            copied_from |= Q(copied_from_site_id=row.site_id, copied_from_image_id=row.openstack_id)
        generation = list(Image.objects.filter(copied_from).exclude(pk__in=found))
        if not generation:
            break
        found.update((row.pk, row) for row in generation)
    rows = Image.objects.filter(pk__in=found, deleted_at__isnull=True)
    return list(rows.select_related("site", "project").order_by("site__display_name", "pk"))


# --- the job ---------------------------------------------------------------------------


@dataclass
class CopyParams:
    source_site: str = ""
    source_image_id: str = ""
    name: str = ""  # the source's name, for titles
    boot_test: bool = False
    source_site_display: str = ""  # the source site as users know it, for titles


@dataclass
class CopyState:
    # What the check step read of the source.
    source: dict = field(default_factory=dict)
    target_image_id: str | None = None
    create_asked_at: str | None = None
    bytes_sent: int = 0
    attempts: int = 0


def _target_project(ctx: StepContext) -> str:
    """The target project's id in its cloud (a copy job always has a project)."""
    assert ctx.project is not None
    return ctx.project.openstack_id


def _source_site(ctx: StepContext) -> Site:
    return Site.objects.get(name=ctx.params.source_site)


def step_check(ctx: StepContext) -> Done:
    """Asked again when the job runs: the user may still see the source and act in
    the target project, and the source is active."""
    image = Image.objects.filter(
        site=_source_site(ctx), openstack_id=ctx.params.source_image_id
    ).first()
    if image is None:
        raise StepFailed(gettext_noop("The image to copy is not known to the portal (any more)."))
    try:
        image_copy_check(image=image, actor=ctx.actor, target=ctx.project)
    except ActionRefused as refused:
        raise StepFailed(refused.message) from None
    source = cloud.image_get(ctx.params.source_site, image_id=ctx.params.source_image_id)
    if source.status != "active":
        raise StepFailed(
            say(
                gettext_noop("The image is %(status)s at %(site)s."),
                status=source.status,
                site=ctx.params.source_site,
            )
        )
    ctx.state.source = {
        "name": source.name, "size": source.size, "hash_algo": source.hash_algo,
        "hash_value": source.hash_value, "disk_format": source.disk_format,
        "container_format": source.container_format, "min_disk": source.min_disk,
        "min_ram": source.min_ram, "properties": carried_properties(dict(source.properties)),
        "tags": list(source.tags),
    }  # fmt: skip
    return Done(
        say(
            gettext_noop("%(name)s: %(size)s at %(site)s"),
            name=source.name,
            size=size(source.size or 0),
            site=image.site.display_name,
        )
    )


def _own_images(ctx: StepContext) -> list[cloud.CloudImage]:
    found = cloud.image_find_by_property(
        ctx.site.name, key=JOB_KEY, value=ctx.key, owner=_target_project(ctx)
    )
    return [i for i in found if ctx.made_by_me(i, asked_at=ctx.state.create_asked_at)]


def _create_target(ctx: StepContext) -> str:
    source = ctx.state.source
    properties = {
        **source["properties"],
        JOB_KEY: ctx.key,
        CREATED_BY_KEY: ctx.actor.username if ctx.actor else "",
        COPIED_FROM_KEY: f"{ctx.params.source_site}:{ctx.params.source_image_id}",
    }
    if ctx.state.create_asked_at is None:
        ctx.state.create_asked_at = timezone.now().isoformat()
    ctx.checkpoint()
    made = cloud.image_create(
        ctx.site.name, project_id=_target_project(ctx), name=source["name"],
        disk_format=source["disk_format"] or "raw",
        container_format=source["container_format"] or "bare",
        min_disk=source["min_disk"], min_ram=source["min_ram"], properties=properties,
        tags=source.get("tags", ()),  # the tool tags (rstudio, guacamole) the catalog shows
    )  # fmt: skip
    ctx.state.target_image_id = made.id
    ctx.target_image_id = made.id
    ctx.checkpoint()
    ctx.authorship_record(made.id)
    return made.id


def _delete_quietly(site: str, image_id: str) -> None:
    with contextlib.suppress(cloud.NotFound):
        cloud.image_delete(site, image_id=image_id)


def step_create(ctx: StepContext) -> Done:
    """One empty target image, marked as this job's. A re-run finds it by the marker
    (the create may have gone through before a crash) instead of making another."""
    own = _own_images(ctx) if ctx.state.create_asked_at else []
    if own:
        keep, *extra = sorted(own, key=lambda i: i.id != ctx.state.target_image_id)
        for image in extra:
            _delete_quietly(ctx.site.name, image.id)
        ctx.state.target_image_id = ctx.target_image_id = keep.id
        return Done(_image_at(keep.id, ctx))
    image_id = _create_target(ctx)
    return Done(_image_at(image_id, ctx))


def _image_at(image_id: str, ctx: StepContext) -> str:
    return say(
        gettext_noop("image %(id)s at %(site)s"), id=image_id[:8], site=ctx.site.display_name
    )


def _matches_source(ctx: StepContext, image: cloud.CloudImage) -> bool:
    source = ctx.state.source
    return (
        image.status == "active"
        and image.hash_value == source["hash_value"]
        and image.size in (source["size"], ctx.state.bytes_sent)
    )


def step_stream(ctx: StepContext) -> Done:
    """Stream the bytes. The target must be empty (`queued`): one left `saving` or
    active with other bytes by a run that died is deleted and made again (Glance
    cannot resume an upload)."""
    try:
        target = cloud.image_get(ctx.site.name, image_id=ctx.state.target_image_id or "")
    except cloud.NotFound:
        target = None
    if target is not None and _matches_source(ctx, target):
        ctx.state.bytes_sent = target.size or 0
        return Done(gettext_noop("already copied"))
    if target is None or target.status != "queued":
        if target is not None:
            _delete_quietly(ctx.site.name, target.id)
        _create_target(ctx)
    ctx.state.attempts += 1
    ctx.checkpoint()
    last = [time.monotonic()]

    def progress(sent: int, announced: int) -> None:
        # What the download announces is what will come; the image record's size
        # says the same on Glance (not on devcloud's seeded images, see its README).
        total = announced or ctx.state.source["size"]
        if time.monotonic() - last[0] < PROGRESS_EVERY_SECONDS:
            return
        last[0] = time.monotonic()
        # The row stays fresh while one run streams (its lease is renewed apart).
        Job.objects.filter(pk=ctx.job_id).update(
            progress=bytes_progress(sent, total),
            heartbeat_at=timezone.now(),
        )

    sent = cloud.image_data_copy(
        ctx.params.source_site, source_image_id=ctx.params.source_image_id,
        target_site=ctx.site.name, target_project_id=_target_project(ctx),
        target_image_id=ctx.state.target_image_id or "", on_progress=progress,
    )  # fmt: skip
    ctx.state.bytes_sent = sent
    return Done(say(gettext_noop("%(size)s sent"), size=size(sent)))


def step_verify(ctx: StepContext) -> Wait | Done:
    """The copy counts only when the target holds exactly the source's bytes."""
    target = cloud.image_get(ctx.site.name, image_id=ctx.state.target_image_id or "")
    if target.status == "saving":
        storing = say(gettext_noop("%(site)s is storing the data"), site=ctx.site.display_name)
        return Wait(progress=storing, observed="saving")
    source = ctx.state.source
    if target.status != "active":
        raise StepFailed(
            say(
                gettext_noop("The copy is %(status)s at %(site)s."),
                status=target.status,
                site=ctx.site.display_name,
            )
        )
    # The target's hash is of what it stored; equal to the source's, the bytes are the
    # source's. Its size must be what this job sent (nothing lost on the way). The
    # source's recorded size is not compared: equal on Glance by the hash already,
    # and devcloud's seeded images record a plausible size but hold a short stand-in.
    if target.hash_value != source["hash_value"] or target.size != ctx.state.bytes_sent:
        raise StepFailed(
            say(
                gettext_noop(
                    "The copy's data differs from the original's (checksum mismatch: "
                    "%(size)s bytes, %(algo)s %(hash)s… at %(site)s; %(sent)s bytes sent, "
                    "%(source_hash)s… at the source)."
                ),
                size=target.size,
                algo=target.hash_algo,
                hash=target.hash_value[:16],
                site=ctx.site.display_name,
                sent=ctx.state.bytes_sent,
                source_hash=source["hash_value"][:16],
            )
        )
    row = image_refresh(ctx.site, openstack_id=target.id, made_for=ctx.project, made_by=ctx.actor)
    if row is not None:
        Image.objects.filter(pk=row.pk).update(
            copied_from_site=_source_site(ctx), copied_from_image_id=ctx.params.source_image_id
        )
    matches = say(gettext_noop("checksum %(algo)s matches"), algo=target.hash_algo)
    return Done(matches, result={"image_id": target.id})


# What runs once a copy succeeded that asked for a boot test: the boot-test job kind
# lives in the snapshots layer, above this one, which registers here
# (snapshots/copying.py). Each takes the finished job and returns a line for its result.
BOOT_TEST_STARTERS: list[Callable[[Job], str]] = []


def step_boot_test(ctx: StepContext) -> Skipped:
    if not ctx.params.boot_test:
        return Skipped(gettext_noop("no boot test asked for"))
    return Skipped(gettext_noop("the boot test runs as a job of its own once the copy is done"))


def undo_delete_target(ctx: StepContext) -> Done | Skipped:
    """Delete what this job made at the target: nothing is left behind."""
    ids = {i.id for i in _own_images(ctx)} if ctx.state.create_asked_at else set()
    if ctx.state.target_image_id:
        ids.add(ctx.state.target_image_id)
    for image_id in ids:
        _delete_quietly(ctx.site.name, image_id)
        Image.objects.filter(site=ctx.site, openstack_id=image_id).update(deleted_at=timezone.now())
    if not ids:
        return Skipped(gettext_noop("no image was made"))
    return Done(
        say(gettext_noop("deleted the half-made copy at %(site)s"), site=ctx.site.display_name)
    )


UNDO_DELETE = Step("undo_delete", gettext_noop("Deleting the half-made copy"), undo_delete_target)


class ImageCopy(Kind):
    name = "image.copy"
    queue = TRANSFER_QUEUE
    Params = CopyParams
    State = CopyState
    steps = (
        Step("check", gettext_noop("Checking the image and the target"), step_check, acts=False),
        Step(
            "create",
            gettext_noop("Creating the image at the target"),
            step_create,
            undo=UNDO_DELETE,
        ),
        Step("stream", gettext_noop("Copying the data"), step_stream),
        Step("verify", gettext_noop("Comparing checksums"), step_verify, acts=False),
        Step("boot_test", gettext_noop("Boot test"), step_boot_test, acts=False),
    )

    @classmethod
    def title(cls, params: CopyParams) -> str:
        return gettext("Copy %(image)s from %(site)s") % {
            "image": params.name or params.source_image_id[:8],
            "site": params.source_site_display or params.source_site,
        }

    @classmethod
    def on_finished(cls, job: Job) -> None:
        if job.status != Job.Status.SUCCEEDED or not job.params.get("boot_test"):
            return
        for start in BOOT_TEST_STARTERS:
            job.result["boot_test"] = start(job)
            job.save(update_fields=["result"])
