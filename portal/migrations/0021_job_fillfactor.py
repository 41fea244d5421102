"""On PostgreSQL, room on each page of the job table for a row's next version.

A job's row is written at every run (the claim, the checkpoint before an action,
the release). PostgreSQL writes a changed row as a new version; when that fits on
the same page and no indexed column changed, the update is "HOT": none of the
table's indexes (two dozen here) gets an entry. Full pages make every update
write all of them. SQLite rewrites in place and is not concerned."""

from django.db import migrations

FILLFACTOR = 70


def room_kept(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE portal_job SET (fillfactor = {FILLFACTOR})")


def room_default(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE portal_job RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0020_job_list_indexes"),
    ]

    operations = [migrations.RunPython(room_kept, room_default, elidable=False)]
