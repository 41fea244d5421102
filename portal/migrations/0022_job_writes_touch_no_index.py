"""A job's release and its wake-ups change no indexed column of the job table.

Every release set `due_at` (indexed) and every park and wake-up `waits_for` (in the
two parked-on indexes), so on PostgreSQL none of those writes could be "HOT" (see
0021): each added an entry to each of the table's indexes, ~8 writes of ~20 index
entries per snapshot job. Who asks by these columns asks among the unfinished jobs
(portal.jobs.parking, portal.jobs.sweep), which the `job_unfinished` and status
indexes find; an object's parked jobs are found by its own index (target_server_id,
target_image_id)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0021_job_fillfactor"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="job", name="job_parked_on_server"),
        migrations.RemoveIndex(model_name="job", name="job_parked_on_image"),
        migrations.AlterField(
            model_name="job",
            name="due_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
