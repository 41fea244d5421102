"""On PostgreSQL a statement a connection runs again and again is prepared, so the
server plans it once (config/settings.py, DATABASE_PREPARE_THRESHOLD): the job
engine sends the same few statements thousands of times a minute, and planning them
anew took a quarter of PostgreSQL's time in the 1,000-job bench. Behind a pooler in
transaction mode prepared statements break, so an empty setting turns them off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from portal.models import Job

ROOT = Path(__file__).resolve().parents[2]


def _database_options(**env: str) -> dict:
    """The database OPTIONS the settings build for a PostgreSQL URL, in a fresh process
    (settings are read once per process)."""
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.DATABASES['default'].get('OPTIONS', {})))"
    )
    environment = {
        key: value for key, value in os.environ.items() if key != "DATABASE_PREPARE_THRESHOLD"
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="config.settings", DEBUG="1",
        DATABASE_URL="postgres://portal:portal@127.0.0.1:5432/portal", **env,
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment,
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_postgresql_binds_on_the_server_and_prepares_from_the_fifth_run_by_default():
    options = _database_options()
    assert options["server_side_binding"] is True
    assert options["prepare_threshold"] == 5


def test_an_empty_threshold_turns_prepared_statements_off_for_a_pooler():
    options = _database_options(DATABASE_PREPARE_THRESHOLD="")
    assert "server_side_binding" not in options
    assert "prepare_threshold" not in options


def test_a_threshold_is_honoured():
    assert _database_options(DATABASE_PREPARE_THRESHOLD="2")["prepare_threshold"] == 2


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's prepared statements")
def test_a_statement_run_again_and_again_is_planned_once(people):
    job = Job.objects.create(
        kind="server.stop", status=Job.Status.RUNNING, actor=people["alice"],
        project=people["alpha"], site=people["alpha"].site,
    )  # fmt: skip
    threshold = connection.connection.prepare_threshold
    assert threshold is not None, "prepared statements are off for the tests' connection"
    for step in range(threshold + 3):
        # The engine's checkpoint: a job's state, written at every step.
        Job.objects.filter(pk=job.pk).update(state={"step": step})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans + custom_plans FROM pg_prepared_statements "
            'WHERE statement LIKE \'UPDATE "portal_job" SET "state"%%\''
        )
        rows = cursor.fetchall()
    assert len(rows) == 1, rows
    # Prepared at the threshold's run; the runs after it reused the statement.
    assert rows[0][0] >= 3
    job.refresh_from_db()
    assert job.state == {"step": threshold + 2}
