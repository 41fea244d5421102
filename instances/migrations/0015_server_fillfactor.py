"""On PostgreSQL, room on each page of the server mirror for a row's next version
(see portal.prepared.page_room): the watcher and the jobs write a server's status
and task many times a minute while jobs run, and an update that fits on its page
without changing an indexed column touches none of the table's indexes."""

from django.db import migrations

from portal.prepared import page_room


class Migration(migrations.Migration):
    dependencies = [
        ("instances", "0014_parked_index"),
    ]

    operations = [page_room("instances_server")]
