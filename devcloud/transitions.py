"""Simulated time: every long-running operation is planned up front as a list of
timed steps in the `transitions` table, and a background thread applies the
steps that are due. Because the plan lives in SQLite, a restarted devcloud
picks up exactly where the previous process stopped, and operations complete
whether or not anybody polls.

Fault decisions (boot_error, boot_panic, start_error, snapshot_killed,
stuck_task, task_state_lag) are taken when an operation starts and baked into its plan, so
later fault changes never turn a half-finished operation into something Nova
could not produce.
"""

import threading

from . import clock, console
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
    "shelved_image_id",
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
    """Schedule (offset, payload) steps; offsets are nominal seconds from now.

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
    conn.execute(f"UPDATE servers SET {sets} WHERE id = ?", [*values.values(), server_id])


def _fault(message, exception):
    """An instance fault as nova-compute records it (shown only for ERROR/DELETED)."""
    return {
        "code": 500,
        "created": NOW,
        "message": message,
        "details": "Traceback (most recent call last):\n  (devcloud simulated failure)\n"
        f"{exception}: {message}\n",
    }


BOOT_STATES = ("scheduling", "networking", "block_device_mapping", "spawning")


def plan_boot(app, conn, server_id, name, ip, image_id="", image_name=""):
    total = clock.BOOT_SECONDS
    # Boot only freezes for an explicit boot task_state; a bare stuck_task targets actions.
    stuck = app.faults.stuck_task(name, BOOT_STATES[0], BOOT_STATES[1:], explicit_only=True)
    stuck_at = stuck["task_state"] if stuck else None
    if stuck_at == "scheduling":
        return
    error = None if stuck else app.faults.boot_error(name)
    # Only a boot that reaches the hypervisor can meet a broken image.
    broken = (
        None if stuck or error else app.faults.boot_panic(name, image_name, server_id, image_id)
    )
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
                        "fault": _fault(error, "nova.exception.NoValidHost"),
                    }
                },
            )
        ]
    else:
        steps = [
            (0.20 * total, {"server": {"task_state": "networking", "ip": ip}}),
            (0.35 * total, {"server": {"task_state": "block_device_mapping"}}),
            (0.50 * total, {"server": {"task_state": "spawning"}}),
        ]
        if broken and broken["mode"] == "error":
            steps.append((0.80 * total, _spawn_failed(broken["message"])))
        else:
            steps += [
                # libvirt starts the guest (and its console log) just before Nova says
                # ACTIVE; a guest from a broken image panics there, and Nova never knows.
                # A "silent" image boots but writes nothing to the serial console.
                (
                    total - clock.CONSOLE_LEAD_SECONDS,
                    {
                        "console": {
                            "panic": bool(broken) and broken["mode"] == "panic",
                            "silent": bool(broken) and broken["mode"] == "silent",
                        }
                    },
                ),
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
    _plan(app, conn, server_id, steps, stuck_at)


def _spawn_failed(message):
    """The libvirt driver refused the image: the build is aborted, not rescheduled,
    and its network is deallocated, so the ERROR server has no addresses."""
    return {
        "server": {
            "vm_state": "error",
            "task_state": None,
            "power_state": 0,
            "ip": None,
            "fault": _fault(message, "nova.exception.BuildAbortException"),
        }
    }


def plan_stop(app, conn, row):
    _set_server(conn, row["id"], task_state="powering-off")
    if app.faults.stuck_task(row["name"], "powering-off"):
        return
    # The guest gets the ACPI power button now and logs its shutdown while Nova waits.
    console.power_off(conn, row, clock.now_ts(), app.speed)
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
    if app.faults.stuck_task(row["name"], "powering-on"):
        return
    error = app.faults.start_error(row["name"])
    if error:
        # nova-compute's power-on failed: reverts_task_state clears the task, the
        # instance stays stopped, and wrap_instance_fault records the fault.
        final = {"task_state": None, "fault": _fault(error, "libvirt.libvirtError")}
        steps = [(clock.START_SECONDS, {"server": final})]
    else:
        final = {"vm_state": "active", "task_state": None, "power_state": 1}
        # A new run of the guest; a broken image stays broken (panic=None keeps it).
        steps = [
            (clock.START_SECONDS - clock.CONSOLE_LEAD_SECONDS, {"console": {"panic": None}}),
            (clock.START_SECONDS, {"server": final}),
        ]
    _plan(app, conn, row["id"], steps, None)


SNAPSHOT_STATES = ("image_snapshot", "image_pending_upload", "image_uploading")


def _progress_steps(app, image_id, begin, length, upload):
    """Bumps of server `updated` and image `updated_at` during [begin, begin + length)."""
    interval = clock.progress_interval(upload, app.progress_interval)
    if not interval:
        return []
    count = int(length / interval)
    if count * interval >= length:  # never on the same instant as the final step
        count -= 1
    return [
        (begin + k * interval, {"touch": image_id, "image_id": image_id})
        for k in range(1, count + 1)
    ]


def _snapshot_done(row, image_id):
    # The hashes of exactly the bytes a download of it serves (see image.synthetic_chunks).
    md5, sha512 = image_mod.synthetic_hashes(image_id, row["disk_used_bytes"])
    flavor = loads(row["flavor"])
    return {
        "status": "active",
        # Glance learns the size only when the data is complete.
        "size": row["disk_used_bytes"],
        "virtual_size": flavor["disk"] * clock.GIB or row["disk_used_bytes"],
        "checksum": md5,
        "os_hash_algo": "sha512",
        "os_hash_value": sha512,
        "data": "synthetic",
    }


def plan_snapshot(app, conn, row, image_id):
    """Plan createImage: a fixed snapshot phase, then an upload as long as the used disk.

    Normal end: the image goes active, and Nova clears task_state a lag later,
    so for a moment the image is active while the server is still
    image_uploading. With snapshot_killed the upload dies half-way: the image
    goes killed, and Nova deletes it and then clears task_state.
    """
    name = row["name"]
    _set_server(conn, row["id"], task_state="image_snapshot_pending")
    stuck = app.faults.stuck_task(name, "image_snapshot_pending", SNAPSHOT_STATES)
    stuck_at = stuck["task_state"] if stuck else None
    if stuck_at == "image_snapshot_pending":
        return
    upload_at = clock.snapshot_phase_seconds()
    upload = clock.upload_seconds(row["disk_used_bytes"], app.upload_rate)
    steps = [
        (clock.SNAPSHOT_PENDING_SECONDS, {"server": {"task_state": "image_snapshot"}}),
        (
            clock.SNAPSHOT_PENDING_SECONDS + clock.SNAPSHOT_TAKE_SECONDS,
            {"server": {"task_state": "image_pending_upload"}},
        ),
        (
            upload_at,
            {
                "server": {"task_state": "image_uploading"},
                "image_id": image_id,
                "image": {"status": "saving"},
            },
        ),
    ]
    if stuck_at in ("image_snapshot", "image_pending_upload"):
        _plan(app, conn, row["id"], steps, stuck_at)
        return
    if stuck_at == "image_uploading":
        # The upload shows progress up to stall_at, then nothing ever changes again.
        steps += _progress_steps(app, image_id, upload_at, stuck["stall_at"] * upload, upload)
        _plan(app, conn, row["id"], steps, None)
        return
    killed = app.faults.snapshot_killed(name)
    if killed:
        failed_at = upload_at + 0.5 * upload
        steps += _progress_steps(app, image_id, upload_at, failed_at - upload_at, upload)
        steps.append((failed_at, {"image_id": image_id, "image": {"status": "killed"}}))
        # nova-compute deletes the image (delete_image_on_error), records the
        # fault, and only then reverts task_state.
        steps.append(
            (
                failed_at + clock.KILLED_IMAGE_REAP_SECONDS,
                {
                    "reap_image": image_id,
                    "image_id": image_id,
                    "server": {
                        "task_state": None,
                        "fault": _fault(killed, "glanceclient.exc.HTTPInternalServerError"),
                    },
                },
            )
        )
    else:
        lag = app.faults.task_state_lag(name)
        if lag is None:
            lag = app.task_state_lag
        done_at = upload_at + upload
        steps += _progress_steps(app, image_id, upload_at, upload, upload)
        steps.append((done_at, {"image_id": image_id, "image": _snapshot_done(row, image_id)}))
        steps.append((done_at + lag, {"image_id": image_id, "server": {"task_state": None}}))
    _plan(app, conn, row["id"], steps, None)


SHELVE_OFFLOAD_SECONDS = 1.0  # shelving_offloading: the guest is undefined, ports unbound


def _offload_steps(at):
    return [
        (at, {"server": {"vm_state": "shelved", "task_state": "shelving_offloading",
                         "power_state": 4}}),
        (at + SHELVE_OFFLOAD_SECONDS,
         {"server": {"vm_state": "shelved_offloaded", "task_state": None, "power_state": 4}}),
    ]  # fmt: skip


def plan_shelve(app, conn, row, image_id):
    """Plan shelve with shelved_offload_time=0 (Nova's default): power off, snapshot to
    the "-shelved" image (task states shelving → shelving_image_pending_upload →
    shelving_image_uploading), SHELVED once the image is active, then offload at once
    (shelving_offloading → SHELVED_OFFLOADED). The server keeps its IP."""
    _set_server(conn, row["id"], task_state="shelving", shelved_image_id=image_id)
    if row["vm_state"] == "active":
        console.power_off(conn, row, clock.now_ts(), app.speed)
    if app.faults.stuck_task(row["name"], "shelving"):
        return
    upload_at = clock.snapshot_phase_seconds()
    upload = clock.upload_seconds(row["disk_used_bytes"], app.upload_rate)
    done_at = upload_at + upload
    steps = [
        (clock.SNAPSHOT_PENDING_SECONDS,
         {"server": {"task_state": "shelving_image_pending_upload", "power_state": 4}}),
        (upload_at, {"server": {"task_state": "shelving_image_uploading"},
                     "image_id": image_id, "image": {"status": "saving"}}),
        *_progress_steps(app, image_id, upload_at, upload, upload),
        (done_at, {"image_id": image_id, "image": _snapshot_done(row, image_id),
                   "image_props": {"image_location": "snapshot", "image_state": "available",
                                   "owner_id": row["project_id"]}}),
        *_offload_steps(done_at + 0.1),
    ]  # fmt: skip
    _plan(app, conn, row["id"], steps, None)


def plan_offload(app, conn, row):
    """shelveOffload of a SHELVED server (an admin's, or shelved_offload_time > 0)."""
    _set_server(conn, row["id"], task_state="shelving_offloading")
    _plan(app, conn, row["id"], _offload_steps(0.0)[1:], None)


def plan_unshelve(app, conn, row):
    """unshelve: unshelving → spawning (on a host again) → ACTIVE; Nova deletes the
    shelved image once the server runs (and forgets shelved_image_id)."""
    _set_server(conn, row["id"], task_state="unshelving")
    if app.faults.stuck_task(row["name"], "unshelving"):
        return
    total = clock.BOOT_SECONDS
    image_id = row["shelved_image_id"]
    steps = [
        (0.3 * total, {"server": {"task_state": "spawning"}}),
        (total - clock.CONSOLE_LEAD_SECONDS, {"console": {"panic": None}}),
        (total, {"server": {"vm_state": "active", "task_state": None, "power_state": 1,
                            "shelved_image_id": None},
                 "reap_image": image_id}),
    ]  # fmt: skip
    if not image_id:
        steps[-1][1].pop("reap_image")
    _plan(app, conn, row["id"], steps, None)


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
    shelved = conn.execute(
        "SELECT shelved_image_id FROM servers WHERE id = ? AND vm_state = 'deleted' "
        "AND shelved_image_id IS NOT NULL",
        (server_id,),
    ).fetchone()
    if shelved is not None:
        # A shelved server's image goes with it (Nova's _delete cleans up shelved_image_id).
        image_mod.mark_deleted(conn, shelved["shelved_image_id"])
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
            [*values.values(), row["object_id"]],
        )
    if payload.get("image"):
        values = {k: v for k, v in payload["image"].items() if k in IMAGE_COLUMNS}
        values["updated_at"] = clock.now_db_seconds()
        sets = ", ".join(f"{k} = ?" for k in values)
        conn.execute(
            f"UPDATE images SET {sets} WHERE id = ? AND deleted = 0",
            [*values.values(), payload["image_id"]],
        )
    if payload.get("image_props"):
        conn.execute(
            "UPDATE images SET properties = json_patch(properties, ?) WHERE id = ? AND deleted = 0",
            (dumps(payload["image_props"]), payload["image_id"]),
        )
    if payload.get("touch"):
        # Upload progress: real Nova and Glance stay silent here (see README).
        conn.execute(
            "UPDATE servers SET updated_at = ? WHERE id = ? AND deleted = 0",
            (now, row["object_id"]),
        )
        conn.execute(
            "UPDATE images SET updated_at = ? WHERE id = ? AND deleted = 0 AND status = 'saving'",
            (clock.now_db_seconds(), payload["touch"]),
        )
    if "console" in payload:
        # The run starts when the step was due, not when this thread got to it.
        console.power_on(
            conn,
            row["object_id"],
            row["due"],
            payload["console"].get("panic"),
            payload["console"].get("silent"),
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
                store.one("SELECT 1 FROM transitions WHERE due <= ? LIMIT 1", (clock.now_ts(),))
                is None
            ):
                return applied
            with store.write() as conn:
                rows = conn.execute(
                    "SELECT * FROM transitions WHERE due <= ? ORDER BY due, id LIMIT 200",
                    (clock.now_ts(),),
                ).fetchall()
                for row in rows:
                    apply_step(conn, row)
                    applied += 1

    def _next_delay(self):
        row = self.app.store.one("SELECT MIN(due) AS due FROM transitions")
        if row is None or row["due"] is None:
            return self.interval
        return max(0.0, min(self.interval, row["due"] - clock.now_ts()))

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
