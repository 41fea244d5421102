from django.apps import AppConfig


class InstancesConfig(AppConfig):
    name = "instances"

    def ready(self):
        from instances import jobs, park  # noqa: F401  (registers the job kinds)
