"""Reading a paginated listing while the caller works on the page before."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_END = object()

# Pages fetched ahead of the caller: enough to keep requests going while the
# caller writes a batch of rows, few enough that a listing is never all held twice.
DEPTH = 8


def read_ahead(pages: Iterator[T], depth: int = DEPTH) -> Iterator[T]:
    """Yield what `pages` yields, running it in a background thread `depth` items ahead.

    A cloud takes tens of milliseconds to serve a page of 1,000 objects; the
    caller spends about as long turning the previous one into mirror rows.
    Overlapping the two hides most of the waiting, and work that releases the
    GIL (SQLite writing rows, sockets) runs on another core meanwhile. An
    exception of `pages` is raised here, in the caller's thread; a caller that
    stops early stops the thread after its current item.
    """
    # (a page, or _END with the exception that ended the listing, if any)
    buffer: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def hand_over(item: tuple[Any, BaseException | None]) -> bool:
        while not stopped.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for page in pages:
                if not hand_over((page, None)):
                    break
            else:
                hand_over((_END, None))
        except BaseException as exc:  # re-raised in the caller's thread
            hand_over((_END, exc))
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()  # a generator's own clean-up (e.g. a nested read_ahead) runs now

    thread = threading.Thread(target=produce, name="cloud-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = buffer.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stopped.set()
