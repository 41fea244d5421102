"""The portal's mirror of Glance: base images and snapshots per site."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.translation import gettext_lazy

from portal.mirror.rows import MirrorRow
from portal.models import Job, Project, Site

# The rows the portal's lists read most: conditions of partial indexes, and the
# same filters the selectors write, so that the database sees they imply each other.
LIVE_SNAPSHOT = models.Q(is_snapshot=True, deleted_at__isnull=True)
LIVE_BASE = models.Q(is_snapshot=False, deleted_at__isnull=True)

TRANSITIONAL_IMAGE_STATUSES = {"queued", "saving", "uploading", "importing", "pending_delete"}

# The boot test outcomes the snapshot table filters by (`?boot=`); any other
# (never tested, being tested, skipped) is "not verified".
BOOT_VERDICTS = ("verified", "failed")


def boot_verdict_q() -> models.Q:
    """Snapshots whose last boot test came to a verdict (BOOT_VERDICTS): the
    condition of the image_boot_* partial indexes, which hold only those rows.
    The outcomes are written into the SQL: SQLite plans before it sees parameters,
    so with `IN (?, ?)` it could not tell that a query implies the condition (see
    portal.jobs.selectors.unfinished_q)."""
    assert all(outcome.isidentifier() for outcome in BOOT_VERDICTS)  # quoted as they are
    return models.Q(boot_outcome__in=[RawSQL(f"'{outcome}'", ()) for outcome in BOOT_VERDICTS])


# What the partial indexes say in their DDL: the same terms, as plain values.
LIVE_VERDICT = LIVE_SNAPSHOT & models.Q(boot_outcome__in=BOOT_VERDICTS)


def boot_sort_indexes() -> list[models.Index]:
    """The snapshot table's sorts within one verdict, everyone's and one project's
    (as image_snap_*): `?boot=failed&sort=name` walks one and stops after a page.
    Only snapshots with a verdict are in them, so a facility that tests none pays
    nothing for them."""
    sorts = {"created": "created_at", "name": "name_key", "status": "status", "size": "size"}
    scopes: dict[str, list[str]] = {"": [], "p_": ["project"]}
    return [
        models.Index(
            fields=[*scope, "boot_outcome", column, "id"],
            condition=LIVE_VERDICT,
            name=f"image_boot_{prefix}{name}",
        )
        for prefix, scope in scopes.items()
        for name, column in sorts.items()
    ]


class Image(MirrorRow):
    # Few single-column indexes: every index is written for each of a full sync's
    # 100,000 rows, and the lists read through the partial indexes below.
    name = models.CharField(max_length=255)
    # The name case-folded ("Übung" → "übung"): searched and compared by the portal,
    # because SQLite's LIKE and iexact fold only ASCII letters and PostgreSQL's fold all.
    # Indexed in Meta (image_name_key): one index for `=` and a prefix on PostgreSQL.
    name_key = models.CharField(max_length=255, blank=True, editable=False)
    status = models.CharField(max_length=32)
    visibility = models.CharField(max_length=16)
    # The project that owns it (snapshots), when that project is in the portal.
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="images"
    )
    # No index: a name check asks by name_key first, which is nearly unique.
    owner_openstack_id = models.CharField(max_length=64, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    min_disk = models.PositiveIntegerField(default=0)
    min_ram = models.PositiveIntegerField(default=0)
    checksum = models.CharField(max_length=64, blank=True)
    protected = models.BooleanField(default=False)
    tags = models.JSONField(default=list, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    is_snapshot = models.BooleanField(default=False)
    # For snapshots: the server it was taken of, and the image that server booted.
    # Asked by `=` and `IN` only: indexed in Meta, without the pattern-ops twin
    # (`_like`) that db_index adds on PostgreSQL, which no query used.
    source_server_openstack_id = models.CharField(max_length=64, blank=True)
    # Indexed only within live snapshots (image_snap_base): the only rows that have one.
    base_image_openstack_id = models.CharField(max_length=64, blank=True)
    # Who made it through the portal (portal.Authorship), the basis of permissions.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # What the cloud metadata claims (`portal_user`): shown, never trusted.
    created_by_hint = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)
    # A copy the portal made of an image at another site (images.copy): the source,
    # from the portal's own record. The cloud's `portal_copied_from` is only a hint.
    copied_from_site = models.ForeignKey(
        Site, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Asked by `=` only: indexed in Meta, as source_server_openstack_id.
    copied_from_image_id = models.CharField(max_length=64, blank=True)
    # The outcome of the snapshot's last boot test ("": never tested), a copy of
    # BootTest.outcome (the record, with the reason and console), written with it
    # by images.services.boot_test_save. On the row, the `?boot=` filter is a
    # column the sort indexes can hold: reading the tests first cost as much as
    # there were tests of that outcome (20,000 failed at 100,000 snapshots).
    boot_outcome = models.CharField(max_length=10, blank=True, default="", editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["site", "openstack_id"], name="image_unique_per_site")
        ]
        # Lists read live snapshots newest first (everyone's, or a project's), base
        # images by name, and rows by id without their site; each has an index that
        # answers it in index order at 100,000 rows. A boolean column alone serves
        # no query (`NOT is_snapshot`), so the flag is the partial indexes' condition.
        indexes = [
            # Pattern ops: PostgreSQL answers both `= id` and `LIKE 'prefix%'` (an
            # id pasted in part) from it; a plain index there follows the collation
            # and serves no LIKE, so the quick search read every row. (SQLite
            # ignores opclasses; prefix_q writes a range for it.)
            models.Index(
                fields=["openstack_id"],
                name="image_openstack_id",
                opclasses=["varchar_pattern_ops"],
            ),
            # The same for the case-folded name: its start (`?name=`, the quick
            # search) and the name check's `IN`. With db_index, PostgreSQL kept two
            # indexes of it (a plain one and its `_like` twin), each written for
            # every row a cold sync inserts; only the twin answered a query.
            models.Index(
                fields=["name_key"], name="image_name_key", opclasses=["varchar_pattern_ops"]
            ),
            # Snapshots of a server (instance page, parked-disk rule) and copies
            # of an image: equality only, so plain indexes, no `_like` twins.
            models.Index(fields=["source_server_openstack_id"], name="image_source_server"),
            models.Index(fields=["copied_from_image_id"], name="image_copied_from"),
            # The snapshot table's sorts (snapshots.tables), each with the row id
            # that breaks its ties, everyone's and one project's: walked in order
            # and stopped after a page. (A member's list, `project IN (theirs)`,
            # walks the first kind, filtered.) Each carries the boot outcome
            # (PostgreSQL: INCLUDE; SQLite ignores it) so that `?boot=untested`,
            # a test on the rows a sort walks, counts its first 1,001 from the
            # index alone: it read ~1,800 table rows for it at 100,000 snapshots.
            *(
                models.Index(
                    fields=fields, condition=LIVE_SNAPSHOT, name=name, include=["boot_outcome"]
                )
                for name, fields in (
                    ("image_snap_created", ["created_at", "id"]),
                    ("image_snap_by_name", ["name_key", "id"]),
                    ("image_snap_status", ["status", "id"]),
                    ("image_snap_size", ["size", "id"]),
                    ("image_snap_project", ["project", "created_at", "id"]),
                    ("image_snap_name", ["project", "name_key", "id"]),
                    ("image_snap_project_status", ["project", "status", "id"]),
                    ("image_snap_project_size", ["project", "size", "id"]),
                )
            ),
            models.Index(
                fields=["base_image_openstack_id", "site", "project"],
                condition=LIVE_SNAPSHOT,
                name="image_snap_base",
            ),
            *boot_sort_indexes(),
            models.Index(fields=["name"], condition=LIVE_BASE, name="image_base_name"),
            # The image page's site filter: the names of one site's base images,
            # without reading that site's snapshots too.
            models.Index(fields=["site", "name"], condition=LIVE_BASE, name="image_base_site"),
            # The few protected snapshots: a bulk delete's confirmation counts them
            # (they are skipped) without reading every snapshot. `deleted_at` leads
            # (live ones: IS NULL) so that SQLite has an equality to match; with the
            # flag alone in the condition and no rows to ANALYZE, it took the
            # `deleted_at` index and read all 100,000.
            models.Index(
                fields=["deleted_at", "project"],
                condition=models.Q(is_snapshot=True, protected=True),
                name="image_snap_protected",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def os_label(self) -> str:
        distro = self.properties.get("os_distro", "")
        version = self.properties.get("os_version", "")
        return f"{distro.capitalize()} {version}".strip()

    @property
    def is_transitional(self) -> bool:
        return self.deleted_at is None and self.status in TRANSITIONAL_IMAGE_STATUSES

    @property
    def is_volume_snapshot(self) -> bool:
        """Made by Nova from a server booted from a volume: no data of its own, only
        Cinder volume snapshots named in `block_device_mapping`. Booting it makes new
        volumes, which the portal does not clean up."""
        return "block_device_mapping" in self.properties


class BootTest(models.Model):
    """Whether a snapshot is known to boot: the outcome of its latest boot test.

    A boot test starts a throwaway instance from the snapshot on the smallest
    flavor that fits, waits until the console shows the system came up (a login
    prompt, or cloud-init's "finished" line), and deletes the instance again.
    """

    class Outcome(models.TextChoices):
        RUNNING = "running", gettext_lazy("being tested")
        VERIFIED = "verified", gettext_lazy("boots")
        FAILED = "failed", gettext_lazy("does not boot")
        SKIPPED = "skipped", gettext_lazy("not tested")

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+")
    openstack_id = models.CharField(max_length=64)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, db_index=True)
    job = models.ForeignKey(Job, null=True, on_delete=models.SET_NULL, related_name="+")
    flavor_name = models.CharField(max_length=255, blank=True)
    boot_seconds = models.FloatField(null=True, blank=True)
    reason = models.TextField(blank=True)
    console_tail = models.TextField(blank=True)
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["site", "openstack_id"], name="boot_test_per_image")
        ]

    def __str__(self) -> str:
        return f"{self.openstack_id}: {self.outcome}"
