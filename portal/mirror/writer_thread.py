"""The thread a sync's big batches are written from (see MirrorWriter)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from django.db import connections, transaction

from portal.mirror.sqlite import SqliteBulkSettings


class WriterThread:
    """Writes a MirrorWriter's batches from `threads` threads of their own, each
    with its own database connection (closed at the end), one transaction a batch.

    One thread writes the batches in order. PostgreSQL takes two: a cold sync
    spent most of its time waiting for one backend's index and WAL work while
    the batch after it was ready, and a second backend does that work on the
    other core. Batches then commit in any order, which is fine because no two
    batches of a listing hold the same object (MirrorWriter.write). SQLite has
    one writer at a time anyway.
    """

    def __init__(self, using: str, *, threads: int = 1) -> None:
        self.using = using
        self.error: BaseException | None = None
        self.queue: queue.Queue = queue.Queue(maxsize=threads)
        self.threads = [
            threading.Thread(target=self._run, name="mirror-writer", daemon=True)
            for _ in range(threads)
        ]
        for thread in self.threads:
            thread.start()

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
                        _commit_without_waiting_for_disk(connection)
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
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()
        if raise_error and self.error is not None:
            raise self.error


def _commit_without_waiting_for_disk(connection) -> None:
    """PostgreSQL: this transaction's commit does not wait for its WAL to reach
    the disk (a cold sync writes ~360 MB of it for 100,000 images). A crash of
    the database may lose the last batches written, never half of one, and the
    next sync writes them again: the same trade SQLite's synchronous=NORMAL
    makes for every commit (see settings)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
