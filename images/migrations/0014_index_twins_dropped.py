"""One index for each of three columns where PostgreSQL kept two.

`db_index=True` on a CharField gives PostgreSQL a plain index and a `_like`
twin (varchar_pattern_ops) for LIKE 'prefix%'. For `name_key` only the twin
answered a query (a name's start; it serves `=` too), and for
`source_server_openstack_id` and `copied_from_image_id` (asked by `=` only) only
the plain one: each unused index was written for every row a cold sync
inserted. The indexes are now declared in Image.Meta under their own names.

The indexes are swapped by SQL, not by altering the fields: on SQLite an
AlterField rebuilds the whole table (three times), and with it drops the name
search's triggers (portal.name_search)."""

from django.db import migrations, models

# What db_index had made (Django's names for images_image's columns), and the
# indexes that replace them.
OLD = {
    "name_key": "images_image_name_key_4126f252",
    "source_server_openstack_id": "images_image_source_server_openstack_id_c8e160d3",
    "copied_from_image_id": "images_image_copied_from_image_id_a513f61b",
}
NEW = [
    models.Index(fields=["name_key"], name="image_name_key", opclasses=["varchar_pattern_ops"]),
    models.Index(fields=["source_server_openstack_id"], name="image_source_server"),
    models.Index(fields=["copied_from_image_id"], name="image_copied_from"),
]


def swap(apps, schema_editor):
    Image = apps.get_model("images", "Image")
    for old in OLD.values():
        schema_editor.execute(f'DROP INDEX IF EXISTS "{old}"')
        schema_editor.execute(f'DROP INDEX IF EXISTS "{old}_like"')
    for index in NEW:
        schema_editor.add_index(Image, index)


def unswap(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for index in NEW:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{index.name}"')
    for column, old in OLD.items():
        schema_editor.execute(f'CREATE INDEX "{old}" ON "images_image" ("{column}")')
        if postgres:
            schema_editor.execute(
                f'CREATE INDEX "{old}_like" ON "images_image" ("{column}" varchar_pattern_ops)'
            )


class Migration(migrations.Migration):
    dependencies = [
        ("images", "0013_boot_outcome"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="image",
                    name="copied_from_image_id",
                    field=models.CharField(blank=True, max_length=64),
                ),
                migrations.AlterField(
                    model_name="image",
                    name="name_key",
                    field=models.CharField(blank=True, editable=False, max_length=255),
                ),
                migrations.AlterField(
                    model_name="image",
                    name="source_server_openstack_id",
                    field=models.CharField(blank=True, max_length=64),
                ),
                *(migrations.AddIndex(model_name="image", index=index) for index in NEW),
            ],
            database_operations=[migrations.RunPython(swap, unswap)],
        ),
    ]
