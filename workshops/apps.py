from django.apps import AppConfig


class WorkshopsConfig(AppConfig):
    name = "workshops"

    def ready(self):
        from instances.launch import launch_listeners
        from instances.launch_retry import retry_listeners
        from workshops.services import seats_follow_retry, workshop_from_launch

        # A launch with participants becomes a workshop (instances sits below us),
        # and its seats follow a retry, whether the workshop or the job page asked.
        if workshop_from_launch not in launch_listeners:
            launch_listeners.append(workshop_from_launch)
        if seats_follow_retry not in retry_listeners:
            retry_listeners.append(seats_follow_retry)
