from django.apps import AppConfig


class SnapshotsConfig(AppConfig):
    name = "snapshots"

    def ready(self):
        from snapshots import copying, jobs, park  # noqa: F401  (registers the job kinds, the copy's boot test)
