from django.apps import AppConfig


class InstancesConfig(AppConfig):
    name = "instances"

    def ready(self):
        from instances import jobs, park  # noqa: F401  (registers the job kinds)
        from instances.models import Server
        from instances.services import server_wait_state
        from portal.jobs import batch_reads_register, watched_register

        watched_register(
            "server", model=Server, target="target_server_id",
            fields=("status", "task_state", "deleted_at"), state=server_wait_state,
        )  # fmt: skip
        batch_reads_register(jobs.servers_read_ahead)
