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
# createImage: a fixed snapshot phase, then an upload whose length follows the
# server's used disk, uncapped, because that is what makes big snapshots hurt.
SNAPSHOT_PENDING_SECONDS = 1.0  # image_snapshot_pending until nova-compute picks it up
SNAPSHOT_TAKE_SECONDS = 2.0  # image_snapshot: the hypervisor snapshot
SNAPSHOT_EXTRACT_SECONDS = 2.0  # image_pending_upload: the disk is extracted locally
UPLOAD_BYTES_PER_SECOND = 100 * 1000**2  # ~100 MB/s to Glance: 500 GB take ~5000 s
UPLOAD_MIN_SECONDS = 1.0  # even an empty disk is a round trip or two
# Real Glance and Nova show nothing while an upload runs (the image stays `saving`
# with no size and the same updated_at), so by default neither does devcloud. Only
# with --progress-interval N (nominal seconds) are server `updated` and image
# `updated_at` bumped every 5 % of the upload or every N s, whichever is shorter:
# kinder than any real cloud, for experiments only.
UPLOAD_PROGRESS_FRACTION = 0.05
UPLOAD_PROGRESS_SECONDS = 0.0
# Nova clears task_state a moment after Glance has marked the image active.
TASK_STATE_LAG_SECONDS = 2.0
# Nova deletes a failed snapshot image right after Glance reports the failure.
KILLED_IMAGE_REAP_SECONDS = 2.0
# Console log: libvirt starts the guest a moment before Nova saves ACTIVE (during
# spawning or powering-on), and the guest shows its login prompt this long after
# ACTIVE (--guest-boot).
CONSOLE_LEAD_SECONDS = 1.0
GUEST_BOOT_SECONDS = 20.0

GIB = 1024**3


# Seconds this cloud's clock is off the machine's (--clock-offset; negative: behind).
# Real clouds and the portal's workers are never quite in step: everything devcloud
# stamps, schedules and sends as its Date header follows this clock.
OFFSET = 0.0


def now_ts():
    return time.time() + OFFSET


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


def db_to_ts(value):
    """Stored timestamp -> epoch seconds."""
    return datetime.datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()


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


def snapshot_phase_seconds():
    """Nominal time from createImage until the upload starts."""
    return SNAPSHOT_PENDING_SECONDS + SNAPSHOT_TAKE_SECONDS + SNAPSHOT_EXTRACT_SECONDS


def upload_seconds(disk_used_bytes, bytes_per_second=UPLOAD_BYTES_PER_SECOND):
    """Nominal upload time of a snapshot: the used disk at the upload rate, no cap."""
    return max(UPLOAD_MIN_SECONDS, (disk_used_bytes or 0) / bytes_per_second)


def progress_interval(upload, cap=UPLOAD_PROGRESS_SECONDS):
    """Nominal seconds between progress bumps during an upload; None when cap <= 0."""
    if cap <= 0:
        return None
    return min(cap, UPLOAD_PROGRESS_FRACTION * upload)
