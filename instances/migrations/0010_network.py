import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("instances", "0009_flavor_access"),
        ("portal", "0008_project_networks"),
    ]

    operations = [
        migrations.CreateModel(
            name="Network",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("openstack_id", models.CharField(max_length=64)),
                ("synced_at", models.DateTimeField(auto_now=True)),
                ("deleted_at", models.DateTimeField(blank=True, null=True)),
                ("fingerprint", models.CharField(blank=True, editable=False, max_length=40)),
                ("name", models.CharField(blank=True, max_length=255)),
                ("project_openstack_id", models.CharField(blank=True, max_length=64)),
                ("shared", models.BooleanField(default=False)),
                ("external", models.BooleanField(default=False)),
                (
                    "site",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="portal.site",
                    ),
                ),
            ],
            options={
                "ordering": ["name", "openstack_id"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("site", "openstack_id"), name="network_unique_per_site"
                    )
                ],
            },
        ),
    ]
