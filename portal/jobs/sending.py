"""How the engine hands a job to a worker: one Celery message, sent by task name.

`send` is the one place a message leaves; tests and the bench replace it
(`portal.jobs.sending.send`), so every caller looks it up on this module.
"""

from __future__ import annotations

import logging

from celery import current_app

log = logging.getLogger(__name__)


# The task that advances a job, by name: the engine never imports the wiring
# (operations.tasks) that defines it; the name kept its old module for queued messages.
ADVANCE_TASK = "portal.tasks.job_advance_task"


def send(job_id: int, wake: str, countdown: float) -> None:
    current_app.send_task(ADVANCE_TASK, args=(job_id, wake), countdown=countdown)


def send_new(sends: list[tuple[int, str]]) -> None:
    """Hand freshly recorded jobs to the workers. The row is the truth: when the
    broker is down the request still succeeds (the user gets the job's page), and
    the recovery sweep sends each job once its next run is overdue."""
    for job_id, wake in sends:
        try:
            send(job_id, wake, 0)
        except Exception as exc:  # kombu's OperationalError, a refused socket...
            log.warning("job %s recorded, not sent (the sweep will send it): %s", job_id, exc)
            return
