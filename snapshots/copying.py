"""A copy of a snapshot at another site, boot-tested when the user asked: the copy
job (images.copy, a layer below) calls this once it succeeded."""

from __future__ import annotations

from django.utils.translation import gettext_noop

from images.copy import BOOT_TEST_STARTERS
from portal.errors import ActionRefused
from portal.models import Job
from portal.texts import say, text
from snapshots.models import Snapshot
from snapshots.services import snapshot_verify_request


def copy_boot_test_start(job: Job) -> str:
    """Start the boot test of the copy `job` made; returns what the job's result says."""
    image_id = job.result.get("image_id", "")
    copy = Snapshot.objects.filter(site=job.site, openstack_id=image_id).first()
    if copy is None:
        return gettext_noop("not started: only a snapshot's copy is boot-tested")
    try:
        verify = snapshot_verify_request(snapshot=copy, actor=job.actor)
    except ActionRefused as refused:
        return say(gettext_noop("not started: %(reason)s"), reason=text(refused.message))
    return say(gettext_noop("job #%(id)s"), id=str(verify.pk))


BOOT_TEST_STARTERS.append(copy_boot_test_start)
