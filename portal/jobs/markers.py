"""The markers a job puts on what it creates, and the proof that a found object is its own."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings

from portal import cloud
from portal.models import Job

log = logging.getLogger(__name__)


# Metadata / property key tying a cloud object to the job that made it: a re-run
# step finds its own server or image by it instead of making a second one.
JOB_KEY = "portal_job"


def job_key(job: Job) -> str:
    """The value of JOB_KEY on what `job` creates: this installation, the job's pk
    and its random token. The pk alone is not unique on a cloud: a second portal
    (a staging copy) counts from 1 too, and after a database restore this one
    hands out again the pks of jobs whose servers still carry them. A stranger's
    marker never matches, so no step adopts what it did not make."""
    if not job.marker:  # a job recorded before markers had a token
        return f"job-{job.pk}"
    return f"{settings.PORTAL_INSTALLATION_ID}-job-{job.pk}-{job.marker}"


def made_by_job(
    job: Job, found: cloud.CloudServer | cloud.CloudImage, *, asked_at: str | None
) -> bool:
    """Whether `found` is provably what `job` asked the cloud for: a re-run of a cut-off
    create may adopt it, and the job's cleanup may delete it, only then.

    The marker alone proves nothing: anyone with API access in the project may
    create a server with a seat's name and `portal_job=<key>` (job ids are in the
    portal's URLs, and the marker is on the job's other servers). So, besides the
    marker (job_key: this installation, this job, its token):
    - it is in the job's project (a server's project, an image's owner);
    - a server was created by the portal's own service account on the site: Nova
      sets `user_id` from the token, and no one else can make it the portal's. Glance
      records no creator of an image; a snapshot must be of the job's own server
      (`instance_uuid`, which Nova sets; see snapshots.jobs._find_own_image);
    - it was created at or after the job asked (`asked_at`, saved before the request,
      in the portal's clock; without one, the job's start): compared in the cloud's
      clock, less JOB_ADOPT_SKEW_SECONDS for an offset known only roughly.
    """
    metadata = found.metadata if isinstance(found, cloud.CloudServer) else found.properties
    if job.project is None or metadata.get(JOB_KEY) != job_key(job):
        return False
    if isinstance(found, cloud.CloudServer):
        if found.project_id != job.project.openstack_id:
            return False
        if not found.user_id or found.user_id != cloud.own_user_id(job.site.name):
            return False
    elif found.owner != job.project.openstack_id:
        return False
    if found.created_at is None:
        return False
    return found.created_at >= _asked_in_cloud_time(job, asked_at)


def _asked_in_cloud_time(job: Job, asked_at: str | None) -> datetime:
    """The earliest creation time, in the cloud's clock, of what the job made."""
    asked = datetime.fromisoformat(asked_at) if asked_at else (job.started_at or job.created_at)
    offset = cloud.clock_offset(job.site.name)
    if offset is None:  # this process has not listed there yet: the last sync's reading
        offset = job.site.clock_offset_seconds
    return asked + timedelta(seconds=offset - settings.JOB_ADOPT_SKEW_SECONDS)
