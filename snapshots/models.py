from django.db import models
from django.utils import timezone

from images.models import Image
from portal.models import Job, Site


class SnapshotManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(is_snapshot=True)


class Snapshot(Image):
    """A Glance image Nova made of a server (`image_type=snapshot`)."""

    objects = SnapshotManager()

    class Meta:
        proxy = True
        ordering = ["-created_at"]


class BootTest(models.Model):
    """Whether a snapshot is known to boot: the outcome of its latest boot test.

    A boot test starts a throwaway instance from the snapshot on the smallest
    flavor that fits, waits until the console shows the system came up (a login
    prompt, or cloud-init's "finished" line), and deletes the instance again.
    """

    class Outcome(models.TextChoices):
        RUNNING = "running", "being tested"
        VERIFIED = "verified", "boots"
        FAILED = "failed", "does not boot"
        SKIPPED = "skipped", "not tested"

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
