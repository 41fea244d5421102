"""The roof apart from the core: config/ builds the Celery app, operations/ holds the
tasks, and both keep the names that messages, the schedule and the engine use."""

from __future__ import annotations

import subprocess
import sys

from django.conf import settings

from portal.jobs import ADVANCE_TASK
from scripts.stack import ROOT


def test_importing_the_core_builds_no_celery_app():
    code = "import sys, portal; print('celery' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_every_task_named_by_the_engine_the_schedule_and_the_routes_is_registered():
    """Tasks moved from portal/tasks.py keep their names: queued messages still run."""
    from config.celery import app

    app.loader.import_default_modules()
    named = {ADVANCE_TASK}
    named |= {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    named |= set(settings.CELERY_TASK_ROUTES)
    assert named - set(app.tasks) == set()
    assert all(name.startswith("portal.tasks.") for name in named)
