from django.apps import AppConfig


class WorkshopsConfig(AppConfig):
    name = "workshops"

    def ready(self):
        from instances.launch import launch_listeners
        from workshops.services import workshop_from_launch

        # A launch with participants becomes a workshop (instances sits below us).
        if workshop_from_launch not in launch_listeners:
            launch_listeners.append(workshop_from_launch)
