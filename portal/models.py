"""Cross-cutting models: sites, projects and who belongs to them, and jobs."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class Site(models.Model):
    """One OpenStack cloud, reached through one clouds.yaml entry."""

    name = models.CharField(
        max_length=100, unique=True, help_text=gettext_lazy("clouds.yaml entry")
    )
    display_name = models.CharField(max_length=200)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_full_sync_at = models.DateTimeField(null=True, blank=True)
    # Set when a sync fails, cleared by the next one that succeeds.
    unreachable_since = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # The status watcher (operations/watch.py): the moment its last batched status query
    # was sent. The mirror of this site's servers and images is at least this fresh.
    watched_at = models.DateTimeField(null=True, blank=True)
    # One watcher per site at a time holds the site until this moment.
    watch_lease_until = models.DateTimeField(null=True, blank=True)
    # "Changed since" questions go in the cloud's clock, never the portal's: the
    # newest `updated_at` listed so far by Nova and by Glance (any listing: sync or
    # watch), and, for a cloud that lists nothing yet, the seconds its clock is ahead
    # of the portal's (negative: behind) from the Date header of its last listing.
    servers_seen_at = models.DateTimeField(null=True, blank=True)
    images_seen_at = models.DateTimeField(null=True, blank=True)
    clock_offset_seconds = models.FloatField(default=0.0)
    # A site that accepts connections and never answers (or refuses them) costs a
    # worker slot for OPENSTACK_TIMEOUT on every call. From the first call that got
    # no answer until one that did, jobs there wait instead of calling, and one of
    # them tries (a probe) at most once per JOB_SILENT_PROBE_SECONDS.
    silent_since = models.DateTimeField(null=True, blank=True)
    probe_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["display_name"]

    def __str__(self) -> str:
        return self.display_name

    def cloud_time(self, moment: datetime) -> datetime:
        """The cloud's clock at the portal's `moment`, by the Date header's offset."""
        return moment + timedelta(seconds=self.clock_offset_seconds)

    def changes_since(self, seen_at: datetime | None, covered: datetime) -> datetime:
        """Where to ask Nova or Glance for changes from, in the cloud's clock: the newest
        `updated_at` it listed (`seen_at`) when there is one, else the portal's moment
        `covered` converted by the offset. Every listing is complete up to its own
        newest change, so asking from there never misses one, whatever the clocks."""
        return seen_at if seen_at is not None else self.cloud_time(covered)

    @property
    def is_reachable(self) -> bool:
        return self.unreachable_since is None


class Project(models.Model):
    """A portal project: one OpenStack project on one site."""

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="projects")
    openstack_id = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    members: models.ManyToManyField[User, Membership] = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects"
    )
    # Compute limits and usage, mirrored by the sync (Nova /limits).
    quota_instances = models.IntegerField(null=True, blank=True)
    quota_cores = models.IntegerField(null=True, blank=True)
    quota_ram_mib = models.BigIntegerField(null=True, blank=True)
    used_instances = models.IntegerField(default=0)
    used_cores = models.IntegerField(default=0)
    used_ram_mib = models.BigIntegerField(default=0)
    quota_synced_at = models.DateTimeField(null=True, blank=True)
    # Where new machines of this project go (see instances.launch_rules.launch_networks).
    network_ids = models.CharField(
        max_length=1000,
        blank=True,
        verbose_name=gettext_lazy("networks"),
        help_text=gettext_lazy(
            "Comma-separated network ids (or names) the project's new machines join. Empty: "
            "the site's PORTAL_SITE_NETWORKS, else the project's only usable network, "
            "else the launch page asks."
        ),
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["site", "openstack_id"], name="project_unique_per_site")
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", gettext_lazy("Admin")
        MEMBER = "member", gettext_lazy("Member")

    class Source(models.TextChoices):
        MANUAL = "manual", gettext_lazy("Manual (admin)")
        OIDC = "oidc", gettext_lazy("Identity provider's claim")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    # Where it came from: a sign-in through the identity provider adds, changes and
    # removes only the memberships its claim made (portal.oidc_memberships); those
    # made in the admin are never touched by a sign-in.
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MANUAL)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "project"], name="membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


class OidcIdentity(models.Model):
    """The portal user an identity provider's subject signs in as. Keyed by the
    issuer and the `sub` claim (unique only per issuer), never by email: a local
    account with the same email stays a separate account."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_identities"
    )
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "OpenID Connect identity"
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="oidc_identity_unique")
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


# Job kinds of which one unfinished job at most may act on an image (see Job.Meta).
# Not launches: many may boot from one image at once.
ONE_PER_IMAGE_KINDS = ("snapshot.verify",)


class Job(models.Model):
    """The record of one long operation; Celery only moves it forward.

    `steps` is the ordered plan, each entry
    {"name", "label", "phase": forward|undo,
     "status": pending|running|done|failed|skipped|not run,
     "started_at", "finished_at", "detail", "progress_at", "observed"};
    `step_index` points at the current one. Undo steps are appended when a
    forward step fails. `state` is the step functions' scratch space (ids they
    created, the prior power state...), so a re-run step finds its own work.
    """

    class Status(models.TextChoices):
        PENDING = "pending", gettext_lazy("Pending")
        RUNNING = "running", gettext_lazy("Running")
        # A step failed; the undo steps are running. "failed" comes when they end.
        CLEANING_UP = "cleaning_up", gettext_lazy("Cleaning up")
        SUCCEEDED = "succeeded", gettext_lazy("Succeeded")
        FAILED = "failed", gettext_lazy("Failed")

    FINISHED = (Status.SUCCEEDED, Status.FAILED)
    ONE_PER_IMAGE_KINDS = ONE_PER_IMAGE_KINDS

    kind = models.CharField(max_length=50, db_index=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    site = models.ForeignKey(
        Site, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # OpenStack ids this job acts on, for "jobs on this instance / snapshot" lookups.
    target_server_id = models.CharField(max_length=64, blank=True, db_index=True)
    target_image_id = models.CharField(max_length=64, blank=True, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    state = models.JSONField(default=dict, blank=True)
    steps = models.JSONField(default=list, blank=True)
    step_index = models.PositiveIntegerField(default=0)
    # What a worker stores to say (portal.texts.say: a msgid and its params as JSON,
    # a server name among them): room for that, not only for the English words.
    progress = models.CharField(max_length=1000, blank=True)
    error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Last time a worker touched the job; the stuck-job sweep looks at it.
    heartbeat_at = models.DateTimeField(default=timezone.now)
    # A worker holds the job until this time; a duplicate delivery backs off.
    lease_until = models.DateTimeField(null=True, blank=True)
    # When the next message for this job is due; the recovery sweep looks for
    # unfinished jobs overdue by more than JOB_RECOVER_AFTER_SECONDS. Not indexed, nor
    # is `waits_for`: every release and every wake-up sets them, and on PostgreSQL a
    # write that changes an indexed column adds an entry to each of the table's
    # indexes (see 0022). Who asks by them asks among the unfinished jobs (the
    # `job_unfinished` and status indexes), a few among every job ever run.
    due_at = models.DateTimeField(null=True, blank=True)
    polls = models.PositiveIntegerField(default=0)
    # The key the form that started the job carried: a repeated POST (a double
    # click, a resubmitted page) finds this job instead of starting a second one.
    idempotency_key = models.CharField(max_length=64, blank=True)
    # Token of the one message that may advance the job next: every schedule makes a
    # new one, so a duplicate or overtaken message is dropped and a job never grows
    # two polling chains.
    wake = models.CharField(max_length=32, blank=True)
    # What the waiting step waits for ("server", "image" or "" for anything): the
    # status watcher wakes the job only for a change of that object.
    waits_for = models.CharField(max_length=10, blank=True)
    # The state of that object the parked job saw (portal.jobs.parking): it is woken
    # when the mirror shows another.
    parked_on = models.CharField(max_length=64, blank=True)
    # A random token in the marker this job puts on what it creates (see
    # portal.jobs.job_key): the pk alone repeats in another installation on the same
    # cloud, or here after a database restore, and would adopt a stranger's server.
    marker = models.CharField(max_length=16, blank=True)
    # When the recovery sweep last sent the job because its message seemed lost.
    resent_at = models.DateTimeField(null=True, blank=True)
    # The casefolded name the job will give what it makes (a snapshot's): the name
    # check asks the unfinished jobs of a site by this index, not by a JSON key of
    # params, which no index serves and which 1,000 jobs made quadratic.
    name_key = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["actor", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="job_idempotency_key_unique_per_actor",
            ),
            # Two jobs that stop, snapshot, start or delete one server at once undo
            # each other's work: the request checks refuse the second, and this holds
            # when two requests pass the checks at the same moment.
            models.UniqueConstraint(
                fields=["site", "target_server_id"],
                condition=~models.Q(target_server_id="")
                & models.Q(status__in=["pending", "running", "cleaning_up"]),
                name="job_one_unfinished_per_server",
            ),
            # "Verify now" checks that no job works on the snapshot, then records its
            # job: two requests at once passed the check together and booted two test
            # instances. The database lets one through, across processes too.
            models.UniqueConstraint(
                fields=["site", "target_image_id"],
                condition=~models.Q(target_image_id="")
                & models.Q(kind__in=ONE_PER_IMAGE_KINDS)
                & models.Q(status__in=["pending", "running", "cleaning_up"]),
                name="job_one_unfinished_verify_per_image",
            ),
        ]
        indexes = [
            models.Index(fields=["name_key", "site"], name="job_name_key"),
            # The job list of a member (portal.selectors.jobs_newest): each project's
            # newest jobs, and the member's own jobs without a project, walked newest
            # first and stopped after a page, whatever the facility ran before.
            models.Index(fields=["project", "created_at", "id"], name="job_project_newest"),
            models.Index(
                fields=["actor", "created_at", "id"],
                condition=models.Q(project__isnull=True),
                name="job_projectless_newest",
            ),
            # The unfinished jobs (a few among every job ever run), which every table
            # page asks about its rows (portal.jobs.busy_pks, snapshots.selectors,
            # portal.bulk): without it SQLite, whose statistics cannot tell that
            # "running" is rare, read all 100,000 jobs of a big facility per page.
            models.Index(
                fields=["kind", "site"],
                condition=models.Q(status__in=["pending", "running", "cleaning_up"]),
                name="job_unfinished",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def current_step(self) -> dict[str, Any] | None:
        if 0 <= self.step_index < len(self.steps):
            step: dict[str, Any] = self.steps[self.step_index]
            return step
        return None

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class Preference(models.Model):
    """A remembered choice of one user, e.g. the snapshot table's page size."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    key = models.CharField(max_length=100)
    value = models.JSONField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="preference_unique")]

    def __str__(self) -> str:
        return f"{self.user}: {self.key}"


class Authorship(models.Model):
    """Who made a cloud object through the portal, recorded by the job that made it.

    The only source of "created by", on which "members act on what they created"
    rests. Cloud metadata (`portal_user`) can be changed by anyone with cloud
    credentials in the project, so the mirror keeps it only as a hint to show.
    """

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+")
    openstack_id = models.CharField(max_length=64)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    job = models.ForeignKey(Job, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["site", "openstack_id"], name="authorship_unique")
        ]

    def __str__(self) -> str:
        return f"{self.openstack_id} by {self.user}"


class Lease(models.Model):
    """A named lease one process at a time holds, e.g. "tick": which worker sends the
    periodic tasks (see operations.ticker). A holder that dies loses it when it runs out."""

    name = models.CharField(max_length=50, primary_key=True)
    holder = models.CharField(max_length=200, blank=True)
    until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder or 'nobody'}"


class SshKey(models.Model):
    """One SSH public key of a user (validated by portal.ssh_keys). A launch injects
    the chosen one through a Nova key pair the portal owns (`keypair_name`)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ssh_keys"
    )
    name = models.CharField(max_length=100)
    # One line, OpenSSH's format: "<type> <base64> [comment]", the comment kept.
    public_key = models.TextField()
    key_type = models.CharField(max_length=40)
    bits = models.PositiveIntegerField()
    # As `ssh-keygen -lf` prints it: "SHA256:" and unpadded base64.
    fingerprint = models.CharField(max_length=60)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-is_default", "name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["user", "fingerprint"], name="ssh_key_unique_per_user"),
            models.UniqueConstraint(fields=["user", "name"], name="ssh_key_name_unique_per_user"),
            models.UniqueConstraint(
                fields=["user"], condition=models.Q(is_default=True), name="ssh_key_one_default"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.fingerprint})"

    @property
    def keypair_name(self) -> str:
        """The Nova key pair the portal imports this key as, in its service account:
        the user and the key's own digest, so one name always means one key."""
        digest = self.fingerprint.removeprefix("SHA256:")
        hexed = base64.b64decode(digest + "=" * (-len(digest) % 4)).hex()
        return f"portal-u{self.user_id}-{hexed[:16]}"
