"""Workshops: a launch with participants, run by the portal from start to teardown."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from images.models import Image
from portal.models import Job, Project, Site


class Workshop(models.Model):
    name = models.CharField(max_length=255)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="workshops")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+")
    image = models.ForeignKey(Image, null=True, on_delete=models.SET_NULL, related_name="+")
    # Kept as text: the snapshot may be deleted while the workshop runs.
    image_name = models.CharField(max_length=255)
    flavor_name = models.CharField(max_length=255)
    prefix = models.CharField(max_length=63)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # The launch that created it, and the teardown job once one was asked for.
    launch_job = models.OneToOneField(Job, null=True, on_delete=models.SET_NULL, related_name="+")
    teardown_job = models.ForeignKey(Job, null=True, on_delete=models.SET_NULL, related_name="+")
    # The participants' access link, e.g. "https://{ip}:8787/": proposed from the
    # image's property (any project member may have set it), used only once someone
    # who runs the workshop confirmed it (see workshops.access_links).
    access_url_template = models.CharField(max_length=500, blank=True)
    access_url_confirmed_at = models.DateTimeField(null=True, blank=True)
    access_url_confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The organiser's own words on the handout (how to log in, what to open first),
    # shown as plain text.
    instructions = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def access_url_confirmed(self) -> bool:
        return bool(self.access_url_template) and self.access_url_confirmed_at is not None


class Seat(models.Model):
    """One participant, and the machine the portal launched for them: seat
    `job_index` of the launch `job` (a retry or a late addition is another job)."""

    workshop = models.ForeignKey(Workshop, on_delete=models.CASCADE, related_name="seats")
    position = models.PositiveIntegerField()
    participant = models.CharField(max_length=255)
    email = models.CharField(max_length=254, blank=True)
    machine_name = models.CharField(max_length=63)
    job = models.ForeignKey(Job, null=True, on_delete=models.SET_NULL, related_name="+")
    job_index = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["workshop", "position"], name="seat_position_unique")
        ]

    def __str__(self) -> str:
        return f"{self.participant} ({self.machine_name})"

    @property
    def server_openstack_id(self) -> str:
        if self.job is None:
            return ""
        return self.job.state.get("servers", {}).get(str(self.job_index), "")
