"""Reading a cloud listing as it arrives: in batches, noting the newest change."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice

# Rows a sync builds, hashes and writes (in one transaction) at a time while a
# listing arrives: big enough that commits cost little, small enough that no
# writer waits long for SQLite's write lock.
WRITE_BATCH = 10_000


class NewestSeen:
    """Passes listed objects through, remembering the newest `updated_at` among them:
    a moment in the cloud's own clock, from which the next "changed since" question
    can be asked whatever the portal's clock says (see portal.watch)."""

    def __init__(self) -> None:
        self.at: datetime | None = None

    def note(self, items: Iterable) -> Iterator:
        for item in items:
            stamp = item.updated_at
            if stamp is not None and (self.at is None or stamp > self.at):
                self.at = stamp
            yield item


def newest_update(items: Iterable) -> datetime | None:
    """The newest `updated_at` among listed objects (see NewestSeen)."""
    return max((i.updated_at for i in items if i.updated_at is not None), default=None)


def batched(items: Iterable, size: int) -> Iterator[list]:
    """`items` in lists of `size` (the last one shorter); itertools.batched from 3.12."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
