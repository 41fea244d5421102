"""A trivial job kind for tests of the engine's wiring: registered here, never in
production code. The test worker imports this module (`celery worker --include`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from portal import cloud
from portal.jobs import Done, Kind, Step, StepContext, Wait


@dataclass
class PingParams:
    message: str = ""
    wait_seconds: float = 0


@dataclass
class PingState:
    ping_first_seen: str | None = None


def _ping_wait(ctx: StepContext) -> Wait | None:
    """Waits (without holding the worker) until `wait_seconds` after it first ran."""
    if ctx.state.ping_first_seen is None:
        ctx.state.ping_first_seen = timezone.now().isoformat()
    elapsed = (timezone.now() - datetime.fromisoformat(ctx.state.ping_first_seen)).total_seconds()
    if elapsed < float(ctx.params.wait_seconds):
        return Wait(progress=f"waiting ({elapsed:.1f}s)")
    return None


def _ping_reply(ctx: StepContext) -> Done:
    return Done(result={"reply": f"pong {ctx.params.message}".strip()})


class Ping(Kind):
    name = "ping"
    Params = PingParams
    State = PingState
    steps = (Step("wait", "Waiting", _ping_wait), Step("reply", "Replying", _ping_reply))

    @classmethod
    def title(cls, params: PingParams) -> str:
        return "Ping"


def _list_servers(ctx: StepContext) -> None:
    """One cloud call at the job's site (for tests of sites that hang)."""
    cloud.server_list(ctx.site.name)


class ListServers(Kind):
    name = "test.list_servers"
    steps = (Step("list", "Listing the servers", _list_servers),)

    @classmethod
    def title(cls, params) -> str:
        return "List servers"
