"""The recovery sweep and the watcher's wake-ups: jobs that no message will move
(a dead worker's, a parked one's) get one.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from portal.jobs import sending
from portal.jobs.selectors import unfinished_q
from portal.models import Job

log = logging.getLogger(__name__)


def jobs_recover_stuck(*, backlog: bool = False) -> list[int]:
    """Send a message to the unfinished jobs no worker holds whose next run is due
    and has none: parked jobs whose fallback poll is due (see advance._schedule), and jobs
    overdue by JOB_RECOVER_AFTER_SECONDS (their worker died, or Redis lost the
    message). Safe: steps are idempotent, and of two messages with the job's token
    only the first runs it (its run gives the job a new token, or ends it).

    `backlog`: workers have messages waiting. An overdue job is then most likely
    one of them, and re-sending would only move it to the back of the queue: only
    parked jobs are sent, and jobs overdue by JOB_RECOVER_BACKLOG_SECONDS, each once a
    minute at most. A worker that died took the messages it held with it (a
    waiting job's countdown is held by the worker until due), and Redis hands them
    back only after the visibility timeout; the once-a-minute rule keeps a long
    queue from moving the same job back again and again.
    """
    now = timezone.now()
    overdue = now - timedelta(seconds=settings.JOB_RECOVER_AFTER_SECONDS)
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    backlog = backlog or _many_overdue(overdue, free)
    late = Q(waits_for__gt="", due_at__lt=now)
    if not backlog:
        late |= Q(due_at__lt=overdue) | Q(due_at__isnull=True, heartbeat_at__lt=overdue)
    else:
        long_overdue = now - timedelta(seconds=settings.JOB_RECOVER_BACKLOG_SECONDS)
        not_lately = Q(resent_at__isnull=True) | Q(resent_at__lt=now - timedelta(minutes=1))
        late |= Q(due_at__lt=long_overdue) & not_lately
    stuck = Job.objects.filter(unfinished_q()).filter(late).filter(free).order_by()
    recovered, sends = [], []
    for job_id, waits_for, kind, token in stuck.values_list("pk", "waits_for", "kind", "wake")[
        :500
    ]:
        # A parked job has no message: it gets a fresh token, as any wake-up does. An
        # overdue one may still have its message in the queue (behind a backlog) or in
        # a worker: the copy carries the same token, so whichever comes first runs the
        # job and the other is dropped (a run ends with a new token, or the job's end).
        # A new token voided the queued message and sent the job to the back: under
        # load, hundreds of jobs at a time, each again a minute later.
        wake = token if token and not waits_for else uuid.uuid4().hex
        # Conditional on still being free and late: a worker that claimed it meanwhile wins.
        # A parked job sent is parked no more (see portal.jobs.parking.jobs_wake).
        taken = Job.objects.filter(pk=job_id).filter(free).filter(late)
        resent = {} if waits_for else {"resent_at": now}
        if taken.update(
            wake=wake, lease_until=None, due_at=now, heartbeat_at=now, waits_for="", **resent
        ):
            sends.append((kind, job_id, wake))
            if not waits_for:  # a parked job's fallback poll is routine, not a recovery
                recovered.append(job_id)
    sending.send_now(sends)
    if recovered:
        log.warning("re-enqueued %d overdue job(s): %s", len(recovered), recovered)
    return recovered


# More jobs than this overdue at once are a queue the workers have not reached, not
# as many lost messages: a busy worker holds the countdown messages that came due in
# its own memory, where the broker's queue length does not show them. Re-sending
# them all moved each to the back of the queue (a fifth of the workers' time at
# 1,000 jobs), so this counts as a backlog too.
BACKLOG_JOBS = 20


def _many_overdue(overdue, free) -> bool:
    unparked = Job.objects.filter(unfinished_q(), waits_for="", due_at__lt=overdue)
    late = unparked.filter(free).order_by().values_list("pk", flat=True)[: BACKLOG_JOBS + 1]
    return len(late) > BACKLOG_JOBS
