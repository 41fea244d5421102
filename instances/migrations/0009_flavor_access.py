from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("instances", "0008_server_locked"),
    ]

    operations = [
        migrations.AddField(
            model_name="flavor",
            name="access_project_ids",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
