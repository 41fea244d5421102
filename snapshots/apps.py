from django.apps import AppConfig


class SnapshotsConfig(AppConfig):
    name = "snapshots"

    def ready(self):
        from portal.jobs import batch_reads_register
        from snapshots import copying, jobs, park  # noqa: F401  (registers the job kinds, the copy's boot test)

        batch_reads_register(jobs.names_read_ahead)
        batch_reads_register(jobs.images_read_ahead)
