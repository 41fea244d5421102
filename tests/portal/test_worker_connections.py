"""A worker keeps its database connection from one task to the next: Celery's
Django fixup would close it around every task, and opening a PostgreSQL
connection costs more than a job's step."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from celery.fixups.django import DjangoWorkerFixup
from celery.signals import task_postrun, task_prerun
from django.db import connection

from config.celery import app

pytestmark = pytest.mark.django_db(transaction=True)


class QueuedTask:
    """A task as a worker runs it: from the queue, not eagerly in the caller."""

    request = SimpleNamespace(is_eager=False)


def run_task_signals(fixup: DjangoWorkerFixup, task) -> None:
    """What a worker process does around each task, without the task."""
    fixup.on_task_prerun(task)
    task_prerun.send(sender=task, task=task, task_id="t", args=(), kwargs={})
    fixup.on_task_postrun(task)
    task_postrun.send(sender=task, task=task, task_id="t", args=(), kwargs={}, retval=None)


def test_the_connection_outlives_a_task_and_is_recycled_now_and_then(settings):
    fixup = DjangoWorkerFixup(app)
    task = QueuedTask()
    connection.ensure_connection()
    first = connection.connection
    for _ in range(3):
        run_task_signals(fixup, task)
        connection.ensure_connection()
        assert connection.connection is first
    # Every CELERY_DB_REUSE_MAX tasks the fixup opens a fresh one.
    for _ in range(settings.CELERY_DB_REUSE_MAX):
        run_task_signals(fixup, task)
    connection.ensure_connection()
    assert connection.connection is not first


def test_a_connection_past_its_age_is_closed_after_the_task(settings):
    fixup = DjangoWorkerFixup(app)
    task = QueuedTask()
    connection.ensure_connection()
    first = connection.connection
    connection.close_at = 0  # as if CONN_MAX_AGE had passed
    run_task_signals(fixup, task)
    connection.ensure_connection()
    assert connection.connection is not first
