"""On PostgreSQL, room on each page of the job table for a row's next version.

A job's row is written at every run (the claim, the checkpoint before an action,
the release). PostgreSQL writes a changed row as a new version; when that fits on
the same page and no indexed column changed, the update is "HOT": none of the
table's indexes (two dozen here) gets an entry. Full pages make every update
write all of them. See portal.prepared.page_room."""

from django.db import migrations

from portal.prepared import page_room


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0020_job_list_indexes"),
    ]

    operations = [page_room("portal_job")]
