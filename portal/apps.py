from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self):
        from django.urls import register_converter

        from portal import checks  # noqa: F401  (registers them)
        from portal.http import IdConverter

        # Before any URLconf loads: every app's URLs use <id:...> for ids.
        register_converter(IdConverter, "id")
