"""Wall-clock helpers and the simulated durations of long-running operations.

Times are stored as ISO strings with microseconds so that they sort as text in
SQLite and keep creation order inside one second; the APIs show them at second
resolution like the real services do.
"""

import datetime
import time

UTC = datetime.UTC

# Nominal durations in seconds at --speed 1; divided by the speed factor.
STOP_SECONDS = 3.0
START_SECONDS = 3.0
BOOT_SECONDS = 5.0
SNAPSHOT_BASE_SECONDS = 4.0
SNAPSHOT_SECONDS_PER_GIB = 1.0
SNAPSHOT_CAP_SECONDS = 30.0
# Nova deletes a failed snapshot image right after reporting the failure.
KILLED_IMAGE_REAP_SECONDS = 2.0

GIB = 1024**3


def now_ts():
    return time.time()


def ts_to_db(ts):
    dt = datetime.datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")


def now_db():
    return ts_to_db(now_ts())


def now_db_seconds():
    """Glance keeps whole seconds, and its ordering ties on created_at fall back to id."""
    return ts_to_db(int(now_ts()))


def db_to_api(value):
    """Stored timestamp -> 'YYYY-MM-DDTHH:MM:SSZ' (None stays None)."""
    if not value:
        return None
    return value[:19] + "Z"


def parse_iso(value):
    """Parse a client-supplied ISO 8601 time into a stored-format string.

    Raises ValueError on garbage so callers can answer 400.
    """
    text = value.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    dt = datetime.datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")


def snapshot_seconds(disk_used_bytes):
    gib = (disk_used_bytes or 0) / GIB
    return min(SNAPSHOT_BASE_SECONDS + SNAPSHOT_SECONDS_PER_GIB * gib, SNAPSHOT_CAP_SECONDS)
