from django.db import models

from images.models import Image


class SnapshotManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(is_snapshot=True)


class Snapshot(Image):
    """A Glance image Nova made of a server (`image_type=snapshot`)."""

    objects = SnapshotManager()

    class Meta:
        proxy = True
        ordering = ["-created_at"]
