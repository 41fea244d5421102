"""How the engine hands a job to a worker: one Celery message, sent by task name.

`send` is the one place a message leaves; tests and the bench replace it
(`portal.jobs.sending.send`), so every caller looks it up on this module.
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


def send_new(sends: list[tuple[int, str, str]]) -> None:
    """Hand freshly recorded jobs (id, wake, kind) to the workers. The row is the
    truth: when the broker is down the request still succeeds (the user gets the
    job's page), and the recovery sweep sends each job once its next run is overdue."""
    for job_id, wake, kind in sends:
        try:
            send_for(kind, job_id, wake, 0)
        except Exception as exc:  # kombu's OperationalError, a refused socket...
            log.warning("job %s recorded, not sent (the sweep will send it): %s", job_id, exc)
            return
