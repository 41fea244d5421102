from django.db import migrations, models

UNFINISHED = ["pending", "running", "cleaning_up"]


def fill_name_key(apps, schema_editor):
    """Unfinished jobs keep their name in params only: give them the column, or a
    new job could take a name one of them is about to use."""
    Job = apps.get_model("portal", "Job")
    batch = []
    for job in Job.objects.filter(status__in=UNFINISHED).only("pk", "params").iterator():
        key = (job.params or {}).get("name_key", "") if isinstance(job.params, dict) else ""
        if key:
            job.name_key = key[:255]
            batch.append(job)
    Job.objects.bulk_update(batch, ["name_key"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0018_job_parked_on"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="name_key",
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(fields=["name_key", "site"], name="job_name_key"),
        ),
        migrations.RunPython(fill_name_key, migrations.RunPython.noop),
    ]
