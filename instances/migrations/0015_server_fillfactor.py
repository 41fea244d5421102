"""On PostgreSQL, room on each page of the server mirror for a row's next version
(see portal's 0021_job_fillfactor): the watcher and the jobs write a server's
status and task many times a minute while jobs run, and an update that fits on
its page without changing an indexed column touches none of the table's indexes."""

from django.db import migrations

FILLFACTOR = 70


def room_kept(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE instances_server SET (fillfactor = {FILLFACTOR})")


def room_default(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE instances_server RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("instances", "0014_parked_index"),
    ]

    operations = [migrations.RunPython(room_kept, room_default, elidable=False)]
