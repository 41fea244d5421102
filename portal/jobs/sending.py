"""How the engine hands jobs to the workers: Celery messages, sent by task name.

`send` (one job) and `send_many` (several, advanced in turn) are the places a
message leaves; tests and the bench replace them (`portal.jobs.sending.send`), so
every caller looks them up on this module.
"""

from __future__ import annotations

import logging

from celery import current_app
from django.conf import settings

log = logging.getLogger(__name__)


# The task that advances a job, by name: the engine never imports the wiring
# (operations.tasks) that defines it; the name kept its old module for queued messages.
ADVANCE_TASK = "portal.tasks.job_advance_task"


# Kinds whose jobs go to a queue of their own (Kind.queue), by kind name: long
# transfers must never hold the workers that move every other job. Filled as kinds
# are defined; a separate worker consumes each such queue (README, production).
QUEUES: dict[str, str] = {}


def send(job_id: int, wake: str, countdown: float, queue: str = "") -> None:
    if not queue:
        current_app.send_task(ADVANCE_TASK, args=(job_id, wake), countdown=countdown)
        return
    # A queue of its own runs one long step per message (a transfer): the task's
    # time limits are that queue's, not the few seconds of an ordinary advance.
    current_app.send_task(
        ADVANCE_TASK, args=(job_id, wake), countdown=countdown, queue=queue,
        soft_time_limit=int(settings.JOB_TRANSFER_TASK_SECONDS),
        time_limit=int(settings.JOB_TRANSFER_TASK_SECONDS) + 30,
    )  # fmt: skip


def send_for(kind: str, job_id: int, wake: str, countdown: float) -> None:
    """`send`, to the kind's own queue if it has one. Kinds without one call `send`
    exactly as before (tests and the bench replace it with a 3-argument function)."""
    queue = QUEUES.get(kind, "")
    if queue:
        send(job_id, wake, countdown, queue=queue)
    else:
        send(job_id, wake, countdown)


# The task that advances several jobs in turn, by name (see operations.tasks).
ADVANCE_MANY_TASK = "portal.tasks.jobs_advance_task"

# Jobs per message when many go at once (a watcher round's wake-ups, a site that
# answers again, a submission of 1,000): a message costs its sender, Redis and the
# worker's consumer about as much CPU as a short advance, so one message moves up
# to this many jobs, one after another. Few enough that a batch takes a fraction
# of a second, and that a large wake-up still gives every worker process a share.
BATCH = 10


def send_many(jobs: list[tuple[int, str]]) -> None:
    """One message that advances these jobs (id, wake) in turn, at once."""
    current_app.send_task(ADVANCE_MANY_TASK, args=([list(job) for job in jobs],))


def send_now(jobs: list[tuple[str, int, str]]) -> None:
    """Hand these jobs (kind, id, wake) to the workers now, up to BATCH a message.
    A kind with a queue of its own gets a message per job, as `send_for` sends it."""
    plain = []
    for kind, job_id, wake in jobs:
        if QUEUES.get(kind, ""):
            send_for(kind, job_id, wake, 0)
        else:
            plain.append((job_id, wake))
    send_batched(plain)


def send_batched(jobs: list[tuple[int, str]]) -> None:
    """`jobs` (id, wake) in near-equal batches of at most BATCH; a lone job goes
    through `send`, as it always did."""
    messages = -(-len(jobs) // BATCH)
    for n in range(messages):
        batch = jobs[n * len(jobs) // messages : (n + 1) * len(jobs) // messages]
        if len(batch) == 1:
            send(batch[0][0], batch[0][1], 0)
        else:
            send_many(batch)


def send_new(sends: list[tuple[int, str, str]]) -> None:
    """Hand freshly recorded jobs (id, wake, kind) to the workers. The row is the
    truth: when the broker is down the request still succeeds (the user gets the
    job's page), and the recovery sweep sends each job once its next run is overdue."""
    try:
        send_now([(kind, job_id, wake) for job_id, wake, kind in sends])
    except Exception as exc:  # kombu's OperationalError, a refused socket...
        log.warning("%d job(s) recorded, not all sent (the sweep will send them): %s",
                    len(sends), exc)  # fmt: skip
