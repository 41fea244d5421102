"""The park job kind: instances.park's steps, then (if asked) the boot test of the
saved disk, as for a snapshot (snapshots.verify). It lives here because the boot
test does; the instance pages record it by name (instances.park.PARK_KIND)."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext

from instances.park import PARK_KIND, PARK_STEPS, ParkState
from portal.jobs import Kind
from snapshots.jobs import BOOT_TEST_STEPS
from snapshots.verify import BootTestState


@dataclass
class ParkParams:
    # Boot a throwaway instance from the shelved image once the machine is parked.
    verify: bool = False


@dataclass
class ParkWithBootTestState(ParkState, BootTestState):
    """The park's record (image_id: the shelved image, which the boot test tests)."""


class ServerPark(Kind):
    """Stop, shelve, wait until offloaded and the shelved image is active; test it boots."""

    name = PARK_KIND
    Params = ParkParams
    State = ParkWithBootTestState
    steps = (*PARK_STEPS, *BOOT_TEST_STEPS)

    @classmethod
    def title(cls, params: ParkParams) -> str:
        if params.verify:
            return gettext("Park instance (and test that its disk boots)")
        return gettext("Park instance")
