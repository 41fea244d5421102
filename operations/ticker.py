"""Every worker can send the periodic tasks; no single beat process.

The recovery sweep, the status watcher and the syncs keep jobs moving: a parked
job is woken by the watcher, or by the sweep once its fallback poll is due, and a
job whose worker died is handed on by the sweep. With one `celery beat` process,
its death stopped all of that. Instead each worker runs a ticker thread, and the
one that holds the database lease "tick" sends CELERY_BEAT_SCHEDULE's tasks on
time. When that worker dies, its lease runs out after TICK_LEASE and the next
ticker to look takes over: the periodic tasks pause for seconds, never for good.

It sits in the wiring layer: it sends tasks by name and reads the settings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, connection
from django.db.models import Q
from django.utils import timezone

from portal.models import Lease

log = logging.getLogger(__name__)

TICK_LEASE = timedelta(seconds=5)
TICK_EVERY = 1.0


class Ticker:
    def __init__(self) -> None:
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = threading.Event()
        self.next_due: dict[str, float] = {}
        self.thread = threading.Thread(target=self._run, name="portal-ticker", daemon=True)

    def start(self) -> Ticker:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        with contextlib.suppress(Exception):  # the lease runs out by itself
            Lease.objects.filter(name="tick", holder=self.holder).update(until=None)

    def _run(self) -> None:
        try:
            while not self.stopping.wait(TICK_EVERY):
                try:
                    if self.holds():
                        self.send_due()
                    else:
                        self.next_due.clear()  # another ticker sends; start afresh if we take over
                except Exception:
                    log.warning("ticker: this round failed", exc_info=True)
        finally:
            connection.close()

    def holds(self) -> bool:
        """Take or renew the lease; True while this ticker holds it."""
        now = timezone.now()
        free = Q(until__isnull=True) | Q(until__lt=now) | Q(holder=self.holder)
        lease = Lease.objects.filter(name="tick").filter(free)
        if lease.update(holder=self.holder, until=now + TICK_LEASE):
            return True
        try:
            Lease.objects.create(name="tick", holder=self.holder, until=now + TICK_LEASE)
        except IntegrityError:
            return False  # held by another
        return True

    def send_due(self) -> None:
        now = time.monotonic()
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
            if name not in self.next_due:
                # Taken over (or first to tick): each task's schedule starts now, so a
                # takeover never sends every periodic task at once, syncs included.
                self.next_due[name] = now + entry["schedule"].total_seconds()
            if self.next_due[name] > now:
                continue
            self.next_due[name] = now + entry["schedule"].total_seconds()
            current_app.send_task(entry["task"], **entry.get("options", {}))


_ticker: Ticker | None = None


def ticker_start() -> None:
    global _ticker
    if _ticker is None:
        _ticker = Ticker().start()


def ticker_stop() -> None:
    global _ticker
    if _ticker is not None:
        _ticker.stop()
        _ticker = None
