from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

# Per site: time.monotonic() of the last call that got an HTTP answer in this process.
_answered: dict[str, float] = {}


def answer_note(site: str) -> None:
    _answered[site] = time.monotonic()


def answered_since(site: str, moment: float) -> bool:
    """Whether a call to `site` got an answer after `moment` (time.monotonic())."""
    return last_answer(site) >= moment


# Per site: the calls in flight in this process, {token: time.monotonic() it began}.
_in_flight: dict[str, dict[float, float]] = {}
_in_flight_lock = threading.Lock()


def call_began(site: str) -> float:
    """Register a call to `site` as in flight; returns its start (its token)."""
    began = time.monotonic()
    with _in_flight_lock:
        calls = _in_flight.setdefault(site, {})
        while began in calls:  # two calls in the same tick
            began += 1e-9
        calls[began] = began
    return began


def call_ended(site: str, began: float) -> None:
    with _in_flight_lock:
        _in_flight.get(site, {}).pop(began, None)


def unanswered_for(site: str) -> float:
    """Seconds the oldest call to `site` in flight in this process has gone without
    any answer from the site (0 when none is in flight): a hung site, as it happens."""
    with _in_flight_lock:
        calls = list(_in_flight.get(site, {}))
    if not calls:
        return 0.0
    return time.monotonic() - max(min(calls), last_answer(site))


def last_answer(site: str) -> float:
    """time.monotonic() of the last answer from `site` in this process (-inf: none)."""
    return _answered.get(site, float("-inf"))


# Per site: seconds its clock is ahead of ours (negative: behind), from the Date
# header of the last listing this process read there.
_clock_offsets: dict[str, float] = {}


def clock_note(site: str, response: Any) -> None:
    """Remember how far the site's clock is off ours, from a response's Date header.

    Nova's `changes-since` and Glance's `updated_at=gt:` compare with the cloud's
    clock; asking with the portal's time misses every change when the portal's
    clock is ahead. (Date has whole seconds, so this errs up to a second early:
    asking from slightly earlier only repeats changes.)"""
    header = response.headers.get("Date") if response is not None else None
    if not header:
        return
    try:
        cloud_now = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return
    if cloud_now.tzinfo is None:
        cloud_now = cloud_now.replace(tzinfo=UTC)
    _clock_offsets[site] = (cloud_now - datetime.now(UTC)).total_seconds()


def clock_offset(site: str) -> float | None:
    """Seconds the site's clock is ahead of ours, as last seen; None before any listing."""
    return _clock_offsets.get(site)


def parse_time(value: str | None) -> datetime | None:
    """Nova and Glance write ISO 8601, with or without "Z" or fractions; always UTC."""
    if not value:
        return None
    text = value.replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def glance_time(moment: datetime) -> str:
    """The timestamp form Glance's `updated_at=gt:` filter expects."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
