from django.apps import AppConfig


class ImagesConfig(AppConfig):
    name = "images"

    def ready(self):
        from images import copy  # noqa: F401  (registers the image.copy job kind)
        from images.models import Image
        from images.services import image_wait_state
        from portal.jobs import watched_register

        watched_register(
            "image", model=Image, target="target_image_id",
            fields=("status", "deleted_at"), state=image_wait_state,
        )  # fmt: skip
