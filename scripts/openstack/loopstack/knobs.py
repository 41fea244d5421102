"""The virt driver's knobs and their defaults (var/openstack/knobs.json, re-read on
every call). Plain Python: up.py (stdlib only) writes the file, the driver reads it."""

DEFAULT_KNOBS = {
    # Snapshot upload speed in bytes per second; 0 means as fast as possible.
    "upload_bytes_per_second": 0,
    # How many bytes a snapshot image gets.
    "snapshot_bytes": 1048576,
    # Seconds a snapshot stays in image_pending_upload before uploading.
    "snapshot_pending_seconds": 0,
    # Servers whose image name (or server name) matches panic at boot.
    "panic_image_name_regex": None,
    "panic_server_name_regex": None,
}
