"""Simulated time: every long-running operation is planned up front as a list of
timed steps in the `transitions` table, and a background thread applies the
steps that are due. Because the plan lives in SQLite, a restarted devcloud
picks up exactly where the previous process stopped, and operations complete
whether or not anybody polls.

Fault decisions (boot_error, snapshot_killed, stuck_task) are taken when an
operation starts and baked into its plan, so later fault changes never turn a
half-finished operation into something Nova could not produce.
"""

import threading
import time

from . import clock
from . import image as image_mod
from .store import dumps, loads

NOW = "$now"
SERVER_COLUMNS = {
    "vm_state",
    "task_state",
    "power_state",
    "launched_at",
    "ip",
    "fault",
    "terminated_at",
}
IMAGE_COLUMNS = {
    "status",
    "size",
    "virtual_size",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "data",
}


def _schedule(conn, due, kind, object_id, payload):
    conn.execute(
        "INSERT INTO transitions (due, kind, object_id, payload) VALUES (?, ?, ?, ?)",
        (due, kind, object_id, dumps(payload)),
    )


def _plan(app, conn, object_id, steps, stuck_at):
    """Schedule (fraction_of_duration, payload) steps; `duration` in nominal seconds.

    stuck_at: None = no fault; otherwise the task_state at which the operation
    freezes. Steps after the one that enters that state are dropped.
    """
    start = clock.now_ts()
    for offset, payload in steps:
        _schedule(conn, start + app.duration(offset), "step", object_id, payload)
        if stuck_at is not None and payload.get("server", {}).get("task_state") == stuck_at:
            break


def _set_server(conn, server_id, **values):
    values["updated_at"] = clock.now_db()
    sets = ", ".join(f"{k} = ?" for k in values)
    conn.execute(f"UPDATE servers SET {sets} WHERE id = ?", list(values.values()) + [server_id])


def _stuck(app, name, initial_state, states):
    """Resolve a stuck_task rule to the task_state this operation freezes in, or None."""
    wanted = app.faults.stuck_task(name)
    if wanted is None:
        return None
    if wanted == "":
        return initial_state
    if wanted == initial_state or wanted in states:
        return wanted
    return None


def plan_boot(app, conn, server_id, name, ip):
    total = clock.BOOT_SECONDS
    error = app.faults.boot_error(name)
    if error:
        # The scheduler gives up quickly: NoValidHost happens before networking.
        steps = [
            (
                0.3 * total,
                {
                    "server": {
                        "vm_state": "error",
                        "task_state": None,
                        "power_state": 0,
                        "fault": {
                            "code": 500,
                            "created": NOW,
                            "message": error,
                            "details": "Traceback (most recent call last):\n  (devcloud simulated "
                            f"boot failure)\nnova.exception.NoValidHost: {error}\n",
                        },
                    }
                },
            )
        ]
    else:
        steps = [
            (0.20 * total, {"server": {"task_state": "networking", "ip": ip}}),
            (0.35 * total, {"server": {"task_state": "block_device_mapping"}}),
            (0.50 * total, {"server": {"task_state": "spawning"}}),
            (
                total,
                {
                    "server": {
                        "vm_state": "active",
                        "task_state": None,
                        "power_state": 1,
                        "launched_at": NOW,
                    }
                },
            ),
        ]
    # Boot only freezes for an explicit boot task_state; a bare stuck_task targets actions.
    wanted = app.faults.stuck_task(name)
    stuck_at = None
    if wanted and wanted in ("scheduling", "networking", "block_device_mapping", "spawning"):
        stuck_at = wanted
        if wanted == "scheduling":
            steps = []
    _plan(app, conn, server_id, steps, stuck_at)


def plan_stop(app, conn, row):
    _set_server(conn, row["id"], task_state="powering-off")
    stuck_at = _stuck(app, row["name"], "powering-off", ())
    if stuck_at == "powering-off":
        return
    _plan(
        app,
        conn,
        row["id"],
        [
            (
                clock.STOP_SECONDS,
                {"server": {"vm_state": "stopped", "task_state": None, "power_state": 4}},
            )
        ],
        None,
    )


def plan_start(app, conn, row):
    _set_server(conn, row["id"], task_state="powering-on")
    stuck_at = _stuck(app, row["name"], "powering-on", ())
    if stuck_at == "powering-on":
        return
    _plan(
        app,
        conn,
        row["id"],
        [
            (
                clock.START_SECONDS,
                {"server": {"vm_state": "active", "task_state": None, "power_state": 1}},
            )
        ],
        None,
    )


SNAPSHOT_STATES = ("image_snapshot", "image_pending_upload", "image_uploading")


def plan_snapshot(app, conn, row, image_id):
    _set_server(conn, row["id"], task_state="image_snapshot_pending")
    stuck_at = _stuck(app, row["name"], "image_snapshot_pending", SNAPSHOT_STATES)
    if stuck_at == "image_snapshot_pending":
        return
    total = clock.snapshot_seconds(row["disk_used_bytes"])
    steps = [
        (0.10 * total, {"server": {"task_state": "image_snapshot"}}),
        (0.30 * total, {"server": {"task_state": "image_pending_upload"}}),
        (
            0.40 * total,
            {
                "server": {"task_state": "image_uploading"},
                "image_id": image_id,
                "image": {"status": "saving"},
            },
        ),
    ]
    if app.faults.snapshot_killed(row["name"]):
        steps.append(
            (
                total,
                {
                    "server": {"task_state": None},
                    "image_id": image_id,
                    "image": {"status": "killed"},
                },
            )
        )
        steps.append((total + clock.KILLED_IMAGE_REAP_SECONDS, {"reap_image": image_id}))
    else:
        md5, sha512 = image_mod.content_hashes(image_mod.synthetic_content(image_id))
        flavor = loads(row["flavor"])
        steps.append(
            (
                total,
                {
                    "server": {"task_state": None},
                    "image_id": image_id,
                    "image": {
                        "status": "active",
                        "size": row["disk_used_bytes"],
                        "virtual_size": flavor["disk"] * clock.GIB or row["disk_used_bytes"],
                        "checksum": md5,
                        "os_hash_algo": "sha512",
                        "os_hash_value": sha512,
                        "data": "synthetic",
                    },
                },
            )
        )
    _plan(app, conn, row["id"], steps, stuck_at)


def delete_server(app, conn, server_id):
    """Soft-delete a server, cancel its pending steps and fail its in-flight snapshots."""
    now = clock.now_db()
    conn.execute("DELETE FROM transitions WHERE object_id = ?", (server_id,))
    conn.execute(
        "UPDATE servers SET deleted = 1, vm_state = 'deleted', task_state = NULL, "
        "power_state = 0, deleted_at = ?, terminated_at = ?, updated_at = ? WHERE id = ?",
        (now, now, now, server_id),
    )
    rows = conn.execute(
        "SELECT id FROM images WHERE deleted = 0 AND status IN ('queued', 'saving') "
        "AND json_extract(properties, '$.instance_uuid') = ?",
        (server_id,),
    ).fetchall()
    for row in rows:
        conn.execute(
            "UPDATE images SET status = 'killed', updated_at = ? WHERE id = ?", (now, row["id"])
        )
        _schedule(
            conn,
            clock.now_ts() + app.duration(clock.KILLED_IMAGE_REAP_SECONDS),
            "step",
            row["id"],
            {"reap_image": row["id"]},
        )


def _resolve(values, now):
    out = {}
    for key, value in values.items():
        if value == NOW:
            value = now
        elif isinstance(value, dict):
            value = dumps({k: (now if v == NOW else v) for k, v in value.items()})
        out[key] = value
    return out


def apply_step(conn, row):
    payload = loads(row["payload"], {})
    now = clock.now_db()
    server = payload.get("server")
    if server:
        values = _resolve({k: v for k, v in server.items() if k in SERVER_COLUMNS}, now)
        values["updated_at"] = now
        sets = ", ".join(f"{k} = ?" for k in values)
        conn.execute(
            f"UPDATE servers SET {sets} WHERE id = ? AND deleted = 0",
            list(values.values()) + [row["object_id"]],
        )
    if payload.get("image"):
        values = {k: v for k, v in payload["image"].items() if k in IMAGE_COLUMNS}
        values["updated_at"] = clock.now_db_seconds()
        sets = ", ".join(f"{k} = ?" for k in values)
        conn.execute(
            f"UPDATE images SET {sets} WHERE id = ? AND deleted = 0",
            list(values.values()) + [payload["image_id"]],
        )
    if payload.get("reap_image"):
        image_mod.mark_deleted(conn, payload["reap_image"])
    conn.execute("DELETE FROM transitions WHERE id = ?", (row["id"],))


class Scheduler:
    """Background thread applying due steps.

    It sleeps until the earliest pending step (at most `interval`), and request
    handlers poke it after scheduling work, so even at very high --speed steps
    land on time instead of on a coarse tick.
    """

    interval = 0.05

    def __init__(self, app):
        self.app = app
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="devcloud-transitions", daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def poke(self):
        self._wake.set()

    def run_due(self):
        store = self.app.store
        applied = 0
        while True:
            # Cheap unlocked peek first so an idle cloud never takes the write lock.
            if (
                store.one("SELECT 1 FROM transitions WHERE due <= ? LIMIT 1", (time.time(),))
                is None
            ):
                return applied
            with store.write() as conn:
                rows = conn.execute(
                    "SELECT * FROM transitions WHERE due <= ? ORDER BY due, id LIMIT 200",
                    (time.time(),),
                ).fetchall()
                for row in rows:
                    apply_step(conn, row)
                    applied += 1

    def _next_delay(self):
        row = self.app.store.one("SELECT MIN(due) AS due FROM transitions")
        if row is None or row["due"] is None:
            return self.interval
        return max(0.0, min(self.interval, row["due"] - time.time()))

    def _run(self):
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.run_due()
                delay = self._next_delay()
            except Exception:  # keep ticking: one bad row must not freeze the cloud
                import traceback

                traceback.print_exc()
                delay = self.interval
            if delay > 0:
                self._wake.wait(delay)
        self.app.store.close_thread_connection()
