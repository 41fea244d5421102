"""Reads about jobs that the apps and the engine share."""

from __future__ import annotations

import logging

from django.db.models import Q
from django.db.models.expressions import RawSQL

from portal.models import Job

log = logging.getLogger(__name__)

# Unfinished, as a filter the status index serves (`exclude(status__in=FINISHED)`
# cannot use it: every job ever run is read, each second, by the sweep and the watcher).
UNFINISHED = tuple(status for status in Job.Status.values if status not in Job.FINISHED)


def unfinished_q() -> Q:
    """The unfinished jobs, as a filter the job_unfinished partial index answers on
    both engines: a few rows, however many jobs the portal ran before. The statuses
    are written into the SQL: SQLite plans before it sees parameters, so with
    `status IN (?, ?, ?)` it could not tell that the query implies the index's
    condition, and its statistics (every status as common as the others) made it
    read every job instead."""
    assert all(status.isidentifier() for status in UNFINISHED)  # quoted as they are
    return Q(status__in=[RawSQL(f"'{status}'", ()) for status in UNFINISHED])


def busy_pks(rows, *, target: str) -> set[int]:
    """Pks of those mirror rows (servers or images) an unfinished job acts on, in one query.

    `target` is "server" or "image": which of the job's target ids to match.
    """
    by_key = {(row.site_id, row.openstack_id): row.pk for row in rows}
    if not by_key:
        return set()
    field_name = f"target_{target}_id"
    running = (
        Job.objects.filter(unfinished_q(), **{f"{field_name}__in": {key[1] for key in by_key}})
        .order_by()
        .values_list("site_id", field_name)
    )
    return {by_key[key] for key in running if key in by_key}


def job_repeated(*, actor, key: str) -> Job | None:
    """The job `actor` already started with this form's key, if any."""
    if not key or actor is None:
        return None
    return Job.objects.filter(actor=actor, idempotency_key=key[:64]).first()
