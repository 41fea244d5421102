"""The thread a sync's big batches are written from (see MirrorWriter)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from django.db import connections, transaction

from portal.mirror.sqlite import SqliteBulkSettings


class WriterThread:
    """Writes a MirrorWriter's batches, in order, from a thread of its own with
    its own database connection (closed at the end), one transaction each."""

    def __init__(self, using: str) -> None:
        self.using = using
        self.error: BaseException | None = None
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.thread = threading.Thread(target=self._run, name="mirror-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        connection = connections[self.using]
        bulk_settings = SqliteBulkSettings(connection)
        try:
            while (batch := self.queue.get()) is not None:
                if self.error is not None:
                    continue  # keep taking batches so the caller never blocks
                try:
                    bulk_settings.apply()
                    with transaction.atomic(using=self.using):
                        batch()
                except BaseException as exc:  # raised in the caller's thread
                    self.error = exc
        finally:
            try:
                bulk_settings.restore()
            finally:
                connection.close()

    def put(self, write_batch: Callable[[], None]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(write_batch)

    def close(self, *, raise_error: bool = True) -> None:
        """Wait until every batch handed over is written."""
        self.queue.put(None)
        self.thread.join()
        if raise_error and self.error is not None:
            raise self.error
