"""A trigram index of the case-folded name, so "*text" (anywhere in the name) reads
the matching rows instead of every row: pg_trgm's GIN index on PostgreSQL, an FTS5
trigram table kept by triggers on SQLite (see portal.name_search)."""

from django.db import migrations

from portal.name_search import name_search_install, name_search_uninstall


def install(apps, schema_editor):
    name_search_install(schema_editor, "instances_server")


def uninstall(apps, schema_editor):
    name_search_uninstall(schema_editor, "instances_server")


class Migration(migrations.Migration):
    dependencies = [("instances", "0012_table_sort_indexes")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
