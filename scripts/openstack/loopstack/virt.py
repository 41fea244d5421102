"""The loopback cloud's Nova virt driver: no guests, but real Nova behaviour.

It is Nova's fake driver in its "real single node" variant
(FakeDriverWithoutFakeNodes: one node named after [DEFAULT]host, whose uuid is
Nova's persistent local node identity, so nova-compute restarts cleanly), plus:

- guest power states kept in a file, so a restarted nova-compute still knows
  its servers (stop/start/snapshot keep working across restarts);
- snapshot() uploads real bytes through Nova's Glance client, passing the
  task states image_pending_upload -> image_uploading like the libvirt driver;
- get_console_output() returns a boot log ending in a login prompt, or a
  kernel panic for the servers or images the knobs name;
- resources large enough for every flavor the seed creates.

Knobs: a JSON file read on every call (LOOPSTACK_KNOBS, default
<state_path>/../knobs.json); see scripts/openstack/README.md.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import threading
import time

import nova.conf
from nova import exception
from nova.compute import power_state, task_states
from nova.image import glance
from nova.virt import fake
from oslo_log import log as logging

from loopstack.knobs import DEFAULT_KNOBS

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)


CHUNK = 64 * 1024


def knobs_path() -> str:
    return os.environ.get("LOOPSTACK_KNOBS") or os.path.join(
        os.path.dirname(os.path.abspath(CONF.state_path)), "knobs.json"
    )


def load_knobs() -> dict:
    """The knobs file merged over the defaults (re-read on every call)."""
    knobs = dict(DEFAULT_KNOBS)
    try:
        with open(knobs_path()) as handle:
            knobs.update(json.load(handle))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as error:
        LOG.warning("loopback knobs unreadable (%s); using defaults", error)
    return knobs


class ThrottledImage:
    """A file-like snapshot image: `size` deterministic bytes, read at `rate` B/s."""

    def __init__(self, size: int, rate: int, seed: str):
        self.size = max(0, int(size))
        self.rate = max(0, int(rate))
        self.sent = 0
        self.started = None
        self._block = hashlib.sha256(seed.encode()).digest() * (CHUNK // 32)
        header = (f"LOOPBACK SNAPSHOT {seed}\n").encode()
        self._block = header + self._block[len(header) :]

    def read(self, amount: int = -1) -> bytes:
        if self.started is None:
            self.started = time.monotonic()
        left = self.size - self.sent
        if left <= 0:
            return b""
        if amount is None or amount < 0 or amount > CHUNK:
            amount = CHUNK
        amount = min(amount, left)
        if self.rate:
            # Sleep until these bytes are due at the configured rate.
            due = self.started + (self.sent + amount) / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self.sent += amount
        return self._block[:amount]

    def __len__(self) -> int:
        return self.size


BOOT_LOG = """\
[    0.000000] Linux version 5.15.0-91-generic (buildd@lcy02-amd64-045) (gcc (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0) #101-Ubuntu SMP
[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz-5.15.0-91-generic root=LABEL=cloudimg-rootfs ro console=tty1 console=ttyS0
[    0.000000] BIOS-provided physical RAM map:
[    0.004000] Hypervisor detected: KVM
[    0.120000] smpboot: Allowing {vcpus} CPUs, 0 hotplug CPUs
[    0.310000] Memory: {memory_mb}M available
[    0.820000] Freeing unused kernel image (initmem) memory: 3240K
"""

BOOT_OK = """\
[    1.900000] EXT4-fs (vda1): mounted filesystem with ordered data mode. Opts: (null)
[    3.100000] systemd[1]: Detected virtualization kvm.
[    3.100000] systemd[1]: Set hostname to <{hostname}>.
[  OK  ] Started OpenSSH server daemon.
[  OK  ] Reached target Multi-User System.
cloud-init[812]: Cloud-init v. 23.4.4 finished. Datasource DataSourceOpenStackLocal.  Up 9.12 seconds
ci-info: ++++++++++++++++++++Net device info++++++++++++++++++++
ci-info: | ens3 | True | {ip} | 255.255.255.0 | global |
ci-info: +++++++++++++++++++++++++++++++++++++++++++++++++++++++

{issue} {hostname} ttyS0

{hostname} login: """

BOOT_PANIC = """\
[    1.904000] VFS: Cannot open root device "LABEL=cloudimg-rootfs" or unknown-block(0,0): error -6
[    1.905000] Please append a correct "root=" boot option; here are the available partitions:
[    1.906000] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)
[    1.907000] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 5.15.0-91-generic #101-Ubuntu
[    1.908000] Call Trace:
[    1.908000]  <TASK>
[    1.909000]  mount_block_root+0x1c8/0x1f4
[    1.910000]  prepare_namespace+0x13f/0x17e
[    1.911000]  </TASK>
[    1.912000] ---[ end Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0) ]---
"""


def _saving(method):
    """Wrap a driver method so the guest table is written after it ran."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        finally:
            self._save_guests()

    return wrapper


class LoopbackDriver(fake.FakeDriverWithoutFakeNodes):
    """Fake guests, a stable node, real snapshot uploads, boot logs."""

    # Large enough for the seeded flavors (de.NBI highmem: 64 vCPU, 512 GiB).
    vcpus = 512
    memory_mb = 2 * 1024 * 1024
    local_gb = 10000

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only=read_only)
        self._image_api = glance.API()
        self._guests_lock = threading.Lock()

    # --- guest table persisted across nova-compute restarts ---------------
    def _guests_file(self) -> str:
        return os.path.join(CONF.state_path, "loopback-guests.json")

    def _save_guests(self) -> None:
        with self._guests_lock:
            table = {
                uuid: {"name": guest.name, "state": guest.state}
                for uuid, guest in list(self.instances.items())
            }
            path = self._guests_file()
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = path + ".tmp"
            with open(tmp, "w") as handle:
                json.dump(table, handle)
            os.replace(tmp, path)

    def init_host(self, host):
        super().init_host(host)
        try:
            with open(self._guests_file()) as handle:
                table = json.load(handle)
        except (OSError, ValueError):
            table = {}
        for uuid, guest in table.items():
            self.instances[uuid] = fake.FakeInstance(guest["name"], guest["state"], uuid)
        LOG.info("loopback driver: %d guests restored", len(table))

    spawn = _saving(fake.FakeDriver.spawn)
    power_off = _saving(fake.FakeDriver.power_off)
    power_on = _saving(fake.FakeDriver.power_on)
    reboot = _saving(fake.FakeDriver.reboot)
    destroy = _saving(fake.FakeDriver.destroy)
    unrescue = _saving(fake.FakeDriver.unrescue)
    finish_migration = _saving(fake.FakeDriver.finish_migration)
    finish_revert_migration = _saving(fake.FakeDriver.finish_revert_migration)
    confirm_migration = _saving(fake.FakeDriver.confirm_migration)

    def _set_state(self, instance, state):
        if instance.uuid not in self.instances:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        self.instances[instance.uuid].state = state
        self._save_guests()

    def pause(self, instance):
        self._set_state(instance, power_state.PAUSED)

    def unpause(self, instance):
        self._set_state(instance, power_state.RUNNING)

    def suspend(self, context, instance):
        self._set_state(instance, power_state.SUSPENDED)

    def resume(self, context, instance, network_info, block_device_info=None, share_info=None):
        self._set_state(instance, power_state.RUNNING)

    # --- snapshot: real bytes through Nova's Glance client ----------------
    def snapshot(self, context, instance, image_id, update_task_state):
        if instance.uuid not in self.instances:
            raise exception.InstanceNotRunning(instance_id=instance.uuid)
        knobs = load_knobs()
        snapshot = self._image_api.get(context, image_id)
        metadata = {
            "name": snapshot["name"],
            "disk_format": "raw",
            "container_format": "bare",
            "properties": {
                "image_location": "snapshot",
                "image_state": "available",
                "owner_id": instance.project_id,
            },
        }
        update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
        pending = float(knobs.get("snapshot_pending_seconds") or 0)
        if pending > 0:
            time.sleep(pending)
        update_task_state(
            task_state=task_states.IMAGE_UPLOADING,
            expected_state=task_states.IMAGE_PENDING_UPLOAD,
        )
        data = ThrottledImage(
            int(knobs.get("snapshot_bytes") or 0) or 1,
            int(knobs.get("upload_bytes_per_second") or 0),
            seed=f"{instance.uuid}/{image_id}",
        )
        LOG.info(
            "loopback snapshot %s: uploading %d bytes at %s B/s",
            image_id,
            data.size,
            data.rate or "unlimited",
        )
        self._image_api.update(context, image_id, metadata, data, purge_props=False)
        LOG.info("loopback snapshot %s: uploaded", image_id)

    # --- console ------------------------------------------------------------
    def _image_name(self, context, instance) -> str:
        name = (instance.system_metadata or {}).get("image_name")
        if name:
            return name
        if not instance.image_ref:
            return ""
        try:
            return self._image_api.get(context, instance.image_ref).get("name") or ""
        except Exception:  # a deleted image: no name
            return ""

    def get_console_output(self, context, instance):
        if instance.uuid not in self.instances:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        knobs = load_knobs()
        image_name = self._image_name(context, instance)
        panic = False
        if knobs.get("panic_image_name_regex") and re.search(
            knobs["panic_image_name_regex"], image_name
        ):
            panic = True
        if knobs.get("panic_server_name_regex") and re.search(
            knobs["panic_server_name_regex"], instance.display_name or ""
        ):
            panic = True
        flavor = instance.flavor
        text = BOOT_LOG.format(vcpus=flavor.vcpus, memory_mb=flavor.memory_mb)
        if panic:
            return text + BOOT_PANIC
        distro = ((instance.system_metadata or {}).get("image_os_distro") or "").lower()
        lowered = image_name.lower()
        if "ubuntu" in lowered or distro == "ubuntu":
            hostname, issue = "ubuntu", "Ubuntu 22.04.4 LTS"
        elif "centos" in lowered or distro == "centos":
            hostname, issue = (
                "localhost",
                "CentOS Linux 7 (Core)\nKernel 3.10.0-1160.el7.x86_64 on an x86_64\n",
            )
        else:
            hostname, issue = (instance.hostname or "localhost"), "Linux"
        ip = "10.20.0.10"
        try:
            ips = instance.get_network_info().fixed_ips()
            if ips:
                ip = str(ips[0]["address"])
        except Exception:  # no network info: a plausible address
            pass
        return text + BOOT_OK.format(hostname=hostname, issue=issue, ip=ip)
