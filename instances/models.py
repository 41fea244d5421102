"""The portal's mirror of Nova: flavors and servers per site.

Pages read these rows, never the cloud. Sync tasks and the portal's own
actions keep them fresh (see portal/mirror/).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.expressions import RawSQL
from django.utils.translation import gettext, gettext_noop

from portal.mirror.rows import MirrorRow
from portal.models import Project

# Nova task states a user should read as a verb, not a code (translated where shown).
TASK_STATE_LABELS = {
    "powering-off": gettext_noop("stopping"),
    "powering-on": gettext_noop("starting"),
    "image_snapshot_pending": gettext_noop("snapshotting"),
    "image_snapshot": gettext_noop("snapshotting"),
    "image_pending_upload": gettext_noop("uploading"),
    "image_uploading": gettext_noop("uploading"),
    "spawning": gettext_noop("spawning"),
    "scheduling": gettext_noop("scheduling"),
    "networking": gettext_noop("networking"),
    "block_device_mapping": gettext_noop("preparing disk"),
    "deleting": gettext_noop("deleting"),
    "rebooting": gettext_noop("rebooting"),
    "shelving": gettext_noop("parking"),
    "shelving_image_pending_upload": gettext_noop("parking (saving the disk)"),
    "shelving_image_uploading": gettext_noop("parking (saving the disk)"),
    "shelving_offloading": gettext_noop("parking"),
    "unshelving": gettext_noop("resuming"),
}

# Nova's shelved states, which the portal calls "parked": the disk is kept as an
# image, the machine holds no host (offloaded) and keeps its name, IP and flavor.
PARKED_STATUSES = ("SHELVED", "SHELVED_OFFLOADED")

LIVE_SERVER = models.Q(deleted_at__isnull=True)
# The condition of the server_parked partial index, as its DDL says it.
LIVE_PARKED = LIVE_SERVER & models.Q(status__in=PARKED_STATUSES)


def parked_q() -> models.Q:
    """Live parked servers, as a filter the server_parked partial index answers: the
    few there are, however many servers a facility runs. The statuses are written
    into the SQL: SQLite plans before it sees parameters, so with `IN (?, ?)` it
    could not tell that the query implies the index's condition, and its
    statistics (two statuses, ACTIVE and SHUTOFF, each half of the servers) made it
    read every server instead (see portal.jobs.selectors.unfinished_q)."""
    assert all(status.isidentifier() for status in PARKED_STATUSES)  # quoted as they are
    return LIVE_SERVER & models.Q(status__in=[RawSQL(f"'{s}'", ()) for s in PARKED_STATUSES])


# Statuses a server leaves by itself: rows in them refresh themselves.
TRANSITIONAL_STATUSES = {"BUILD", "REBOOT", "HARD_REBOOT", "RESIZE", "MIGRATING", "REBUILD"}


class Flavor(MirrorRow):
    name = models.CharField(max_length=255)
    vcpus = models.PositiveIntegerField(default=0)
    ram_mib = models.PositiveBigIntegerField(default=0)
    disk_gb = models.PositiveIntegerField(default=0)
    is_public = models.BooleanField(default=True)
    # A private flavor's access list (OpenStack project ids): Nova boots it only in
    # these projects. See flavors_usable_by.
    access_project_ids = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["ram_mib", "vcpus", "name"]
        constraints = [
            models.UniqueConstraint(fields=["site", "openstack_id"], name="flavor_unique_per_site")
        ]

    def __str__(self) -> str:
        return self.name

    def usable_in(self, project: Project) -> bool:
        """Whether the project's servers may run on it (see flavors_usable_by)."""
        return self.is_public or project.openstack_id in (self.access_project_ids or [])


class Network(MirrorRow):
    """A Neutron network of a site. A project's servers may join its own networks
    and the shared ones, not the external (router:external) ones."""

    name = models.CharField(max_length=255, blank=True)
    project_openstack_id = models.CharField(max_length=64, blank=True)
    shared = models.BooleanField(default=False)
    external = models.BooleanField(default=False)

    class Meta:
        ordering = ["name", "openstack_id"]
        constraints = [
            models.UniqueConstraint(fields=["site", "openstack_id"], name="network_unique_per_site")
        ]

    def __str__(self) -> str:
        return self.name or self.openstack_id


class Server(MirrorRow):
    name = models.CharField(max_length=255, db_index=True)
    # The name case-folded ("Übung" → "übung"): searched and compared by the portal,
    # because SQLite's LIKE and iexact fold only ASCII letters and PostgreSQL's fold all.
    name_key = models.CharField(max_length=255, db_index=True, blank=True, editable=False)
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="servers"
    )
    project_openstack_id = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=32, db_index=True)
    task_state = models.CharField(max_length=64, blank=True)
    vm_state = models.CharField(max_length=32, blank=True)
    power_state = models.IntegerField(null=True, blank=True)
    flavor_name = models.CharField(max_length=255, blank=True)
    flavor_vcpus = models.PositiveIntegerField(default=0)
    flavor_ram_mib = models.PositiveBigIntegerField(default=0)
    flavor_disk_gb = models.PositiveIntegerField(default=0)
    image_openstack_id = models.CharField(max_length=64, blank=True, db_index=True)
    addresses = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    openstack_user_id = models.CharField(max_length=64, blank=True)
    # Who made it through the portal (portal.Authorship), the basis of permissions.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # What the cloud metadata claims (`portal_user`): shown, never trusted.
    created_by_hint = models.CharField(max_length=150, blank=True)
    fault_message = models.TextField(blank=True)
    # Locked by the cloud's admins (Nova's lock): the portal neither stops, starts,
    # snapshots nor deletes it, although its admin token would pass Nova's check.
    locked = models.BooleanField(default=False)
    locked_reason = models.CharField(max_length=255, blank=True)
    # The Nova key pair injected at boot ("": none); the portal's are named
    # portal-u<user>-<digest> (see portal.models.SshKey.keypair_name).
    key_name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(null=True, blank=True, db_index=True)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "name"]
        constraints = [
            models.UniqueConstraint(fields=["site", "openstack_id"], name="server_unique_per_site")
        ]
        # The overview reads existing servers newest first (everyone's, some
        # projects', or those in one status, e.g. "Shut off"), and rows by id
        # without their site. The status index holds the overview's own order
        # (newest first, then name), so a status filter walks it and stops after
        # a page instead of sorting every server in that status.
        indexes = [
            # Pattern ops: PostgreSQL answers both `= id` and `LIKE 'prefix%'` (an
            # id pasted in part) from it; a plain index there follows the collation
            # and serves no LIKE, so the quick search read every row. (SQLite
            # ignores opclasses; prefix_q writes a range for it.)
            models.Index(
                fields=["openstack_id"],
                name="server_openstack_id",
                opclasses=["varchar_pattern_ops"],
            ),
            models.Index(
                fields=["created_at", "name"], condition=LIVE_SERVER, name="server_live_created"
            ),
            models.Index(
                fields=["project", "created_at", "name"],
                condition=LIVE_SERVER,
                name="server_live_project",
            ),
            # The overview's other sorts (instances.tables), with the row id that
            # breaks their ties, everyone's and one project's: walked in order and
            # stopped after a page (a member's `project IN (theirs)` with one
            # project walks the second kind).
            models.Index(fields=["name", "id"], condition=LIVE_SERVER, name="server_live_name"),
            models.Index(
                fields=["project", "name", "id"],
                condition=LIVE_SERVER,
                name="server_live_project_name",
            ),
            models.Index(
                fields=["project", "status", "-created_at", "name"],
                condition=LIVE_SERVER,
                name="server_live_project_status",
            ),
            models.Index(
                fields=["project", "flavor_ram_mib", "flavor_name", "id"],
                condition=LIVE_SERVER,
                name="server_live_project_flavor",
            ),
            models.Index(
                fields=["flavor_ram_mib", "flavor_name", "id"],
                condition=LIVE_SERVER,
                name="server_live_flavor",
            ),
            models.Index(
                fields=["status", "-created_at", "name"],
                condition=LIVE_SERVER,
                name="server_live_status",
            ),
            # The parked machines (parked_q): a bulk delete of snapshots skips their
            # saved disks, and asks for these few first (snapshots.services).
            models.Index(
                fields=["openstack_id", "site"], condition=LIVE_PARKED, name="server_parked"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None or self.status == "DELETED"

    @property
    def boots_from_volume(self) -> bool:
        return not self.image_openstack_id  # Nova shows no image for these

    @property
    def lock_refusal(self) -> str:
        """Why the portal refuses to act on this server while it is locked, or ""."""
        if not self.locked:
            return ""
        if self.locked_reason:
            message = gettext(
                "%(server)s is locked (%(reason)s): the portal does not stop, start, snapshot "
                "or delete a locked instance. Ask the cloud's operators to unlock it."
            )
        else:
            message = gettext(
                "%(server)s is locked: the portal does not stop, start, snapshot or "
                "delete a locked instance. Ask the cloud's operators to unlock it."
            )
        return message % {"server": self.name, "reason": self.locked_reason}

    @property
    def is_parked(self) -> bool:
        return not self.is_deleted and self.status in PARKED_STATUSES

    @property
    def status_label(self) -> str:
        """The status as the portal says it: "parked" for Nova's shelved states."""
        return gettext_noop("parked") if self.is_parked else self.status

    @property
    def task_label(self) -> str:
        return TASK_STATE_LABELS.get(self.task_state, self.task_state.replace("_", " "))

    @property
    def is_transitional(self) -> bool:
        return not self.is_deleted and (
            bool(self.task_state) or self.status in TRANSITIONAL_STATUSES
        )
