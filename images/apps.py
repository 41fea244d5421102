from django.apps import AppConfig


class ImagesConfig(AppConfig):
    name = "images"

    def ready(self):
        from images import copy  # noqa: F401  (registers the image.copy job kind)
