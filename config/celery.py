import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _database_connections_check(task=None, **kwargs):
    """What Django does around a request, around a task: drop a connection past
    CONN_MAX_AGE, or one an error left unusable (see CELERY_DB_REUSE_MAX). Not for
    a task run in the caller's process (eager): it uses the caller's connection."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@worker_ready.connect
def _ticker_start(**kwargs):
    """Each worker may send the periodic tasks (see operations.ticker): no beat needed."""
    from django.conf import settings

    if settings.PORTAL_WORKER_TICKS:
        from operations.ticker import ticker_start

        ticker_start()


@worker_shutdown.connect
def _ticker_stop(**kwargs):
    from operations.ticker import ticker_stop

    ticker_stop()
