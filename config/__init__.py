"""The project's configuration: settings, URLs, WSGI and the Celery app.

Importing the Celery app here (Celery's Django layout) makes @shared_task bind to it
in every process that loads the settings, while importing a model builds no app.
"""

from config.celery import app as celery_app

__all__ = ["celery_app"]
