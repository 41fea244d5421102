from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0007_site_clock_offset"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="network_ids",
            field=models.CharField(
                blank=True,
                help_text=(
                    "Comma-separated network ids (or names) the project's new machines join. "
                    "Empty: the site's PORTAL_SITE_NETWORKS, else the project's only usable "
                    "network, else the launch page asks."
                ),
                max_length=1000,
                verbose_name="networks",
            ),
        ),
    ]
