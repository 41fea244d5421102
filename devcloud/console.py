"""A server's serial console log (os-getConsoleOutput): generated, never stored.

What is stored is a small record per server, `servers.console`:
{"on": epoch seconds, "off": epoch seconds or null, "panic": bool, "silent": bool
(only when true)}, i.e. when the guest was powered on, when its shutdown began,
whether its image fails to mount its root file system, and whether it writes
nothing to the serial console. The text is rebuilt on every request from that
record, the server's id, name, image properties, flavor and address, and the
current time, so it grows with simulated time and costs nothing to keep.
Everything that looks random (pids, SSH keys, timestamp jitter) comes from a
generator seeded with the server id: one server always prints the same log.

libvirt opens the console log with append='off', so every power-on starts a
new log, and a stopped server keeps the log of its last run: so does devcloud.

Guest time `t` is in nominal seconds since power-on (the simulated clock, so
real seconds times --speed); the kernel's own clock starts FIRMWARE_SECONDS
later and is what `[   12.345678]` stamps and cloud-init's "Up N seconds" show.
"""

import base64
import hashlib
import random
import re
import time

from . import clock
from .store import dumps, loads

FIRMWARE_SECONDS = 0.3
USERLAND_AT = 2.0  # kernel time at which systemd starts
# The libvirt driver returns at most the last 100 KiB of the log.
MAX_CONSOLE_BYTES = 100 * 1024
# Nova's API strips these before answering: CR and the ESC of colour codes go,
# which is why "[  OK  ]" arrives as "[[0;32m  OK  [0m]" from real clouds too.
NOVA_STRIPPED = re.compile("[\x00-\x08\x0b-\x1f]")
OK = "[\x1b[0;32m  OK  \x1b[0m] "
STARTING = "         "

DISTROS = {
    ("ubuntu", "22.04"): {
        "issue": "Ubuntu 22.04.4 LTS",
        "welcome": "Ubuntu 22.04.4 LTS",
        "kernel": "5.15.0-119-generic",
        "builder": "buildd@lcy02-amd64-075",
        "compiler": "gcc (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0, "
        "GNU ld (GNU Binutils for Ubuntu) 2.38",
        "build": "#129-Ubuntu SMP Fri Aug 2 19:25:20 UTC 2024",
        "systemd": "249.11-0ubuntu3.12",
        "cloud_init": "23.4.4-0ubuntu0~22.04.1",
        "user": "ubuntu",
        "root": "LABEL=cloudimg-rootfs",
    },
    ("ubuntu", "24.04"): {
        "issue": "Ubuntu 24.04.1 LTS",
        "welcome": "Ubuntu 24.04.1 LTS",
        "kernel": "6.8.0-45-generic",
        "builder": "buildd@lcy02-amd64-115",
        "compiler": "x86_64-linux-gnu-gcc-13 (Ubuntu 13.2.0-23ubuntu4) 13.2.0, "
        "GNU ld (GNU Binutils for Ubuntu) 2.42",
        "build": "#45-Ubuntu SMP PREEMPT_DYNAMIC Fri Aug 30 12:02:04 UTC 2024",
        "systemd": "255.4-1ubuntu8.4",
        "cloud_init": "24.2-0ubuntu1~24.04.2",
        "user": "ubuntu",
        "root": "LABEL=cloudimg-rootfs",
    },
    ("debian", "12"): {
        "issue": "Debian GNU/Linux 12",
        "welcome": "Debian GNU/Linux 12 (bookworm)",
        "kernel": "6.1.0-25-cloud-amd64",
        "builder": "debian-kernel@lists.debian.org",
        "compiler": "gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40",
        "build": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.106-3 (2024-08-26)",
        "systemd": "252.30-1~deb12u2",
        "cloud_init": "22.4.2",
        "user": "debian",
        "root": "PARTUUID=5f2a8e3c-01",
    },
}
DEFAULT_DISTRO = ("ubuntu", "22.04")

# (kernel time, line) up to the point where the root file system matters.
KERNEL_EARLY = (
    (0.0, "Linux version {kernel} ({builder}) ({compiler}) {build}"),
    (
        0.0,
        "Command line: BOOT_IMAGE=/boot/vmlinuz-{kernel} root={root} ro console=tty1 console=ttyS0",
    ),
    (0.0, "BIOS-provided physical RAM map:"),
    (0.0, "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable"),
    (0.0, "NX (Execute Disable) protection: active"),
    (0.0, "SMBIOS 2.8 present."),
    (0.0, "DMI: OpenStack Foundation OpenStack Nova, BIOS 1.15.0-1 04/01/2014"),
    (0.0, "Hypervisor detected: KVM"),
    (0.004, "Memory: {mem_avail}K/{mem_total}K available"),
    (0.018, "smpboot: Allowing {vcpus} CPUs, 0 hotplug CPUs"),
    (0.09, "smp: Brought up 1 node, {vcpus} CPUs"),
    (0.13, "devtmpfs: initialized"),
    (0.35, "PCI: Using configuration type 1 for base access"),
    (0.52, "clocksource: Switched to clocksource kvm-clock"),
    (0.64, "Serial: 8250/16550 driver, 32 ports, IRQ sharing enabled"),
    (0.66, "00:04: ttyS0 at I/O 0x3f8 (irq = 4, base_baud = 115200) is a 16550A"),
)
KERNEL_ROOT = (
    (
        0.88,
        "virtio_blk virtio2: [vda] {sectors} 512-byte logical blocks ({disk_gb} GB/{disk_gib} GiB)",
    ),
    (0.90, " vda: vda1 vda14 vda15"),
    (1.10, "Freeing unused kernel image (initmem) memory: 3240K"),
    (1.14, "Write protecting the kernel read-only data: 30720k"),
    (1.20, "Run /init as init process"),
    (1.62, "EXT4-fs (vda1): mounted filesystem with ordered data mode. Quota mode: none."),
)
# An image whose kernel finds no root disk (no virtio driver, wrong root=): the
# classic panic, and then nothing ever again.
PANIC_REASON = "VFS: Unable to mount root fs on unknown-block(0,0)"
KERNEL_PANIC = (
    (0.98, 'VFS: Cannot open root device "{root}" or unknown-block(0,0): error -6'),
    (0.98, 'Please append a correct "root=" boot option; here are the available partitions:'),
    (0.99, "Kernel panic - not syncing: " + PANIC_REASON),
    (0.99, "CPU: 0 PID: 1 Comm: swapper/0 Not tainted {kernel} {build_tag}"),
    (0.99, "Hardware name: OpenStack Foundation OpenStack Nova, BIOS 1.15.0-1 04/01/2014"),
    (0.99, "Call Trace:"),
    (0.99, " <TASK>"),
    (0.99, " dump_stack_lvl+0x4a/0x63"),
    (0.99, " panic+0x15c/0x33b"),
    (0.99, " mount_block_root+0x146/0x20f"),
    (0.99, " mount_root+0x10c/0x11b"),
    (0.99, " prepare_namespace+0x13f/0x19e"),
    (0.99, " kernel_init_freeable+0x18c/0x1b5"),
    (0.99, " kernel_init+0x1b/0x150"),
    (0.99, " ret_from_fork+0x1f/0x30"),
    (0.99, " </TASK>"),
    (
        1.00,
        "Kernel Offset: 0x{kaslr:x} from 0xffffffff81000000 (relocation range: "
        "0xffffffff80000000-0xffffffffbfffffff)",
    ),
    (1.00, "---[ end Kernel panic - not syncing: " + PANIC_REASON + " ]---"),
)
# (fraction of the way from systemd's start to cloud-init's "finished", kind, text).
# Kinds: k = kernel-stamped, ok / start = systemd status, log = cloud-init via
# syslog, raw = as is.
USERLAND = (
    (
        0.00,
        "k",
        "systemd[1]: systemd {systemd} running in system mode (+PAM +AUDIT +SELINUX "
        "+APPARMOR +IMA +SMACK +SECCOMP +GCRYPT +GNUTLS +OPENSSL +ACL +BLKID +CURL +ELFUTILS "
        "+KMOD +LIBCRYPTSETUP +PCRE2 +LZ4 +XZ +ZLIB +ZSTD +UTMP +SYSVINIT default-hierarchy=unified)",
    ),
    (0.00, "k", "systemd[1]: Detected virtualization kvm."),
    (0.00, "k", "systemd[1]: Detected architecture x86-64."),
    (0.01, "raw", ""),
    (0.01, "raw", "Welcome to \x1b[1m{welcome}\x1b[0m!"),
    (0.01, "raw", ""),
    (0.02, "ok", "Created slice Slice /system/modprobe."),
    (0.02, "ok", "Created slice Slice /system/serial-getty."),
    (0.03, "ok", "Started Dispatch Password Requests to Console Directory Watch."),
    (0.03, "ok", "Reached target Local Encrypted Volumes."),
    (0.04, "ok", "Reached target Swaps."),
    (0.05, "ok", "Listening on Journal Socket."),
    (0.06, "start", "Mounting Huge Pages File System..."),
    (0.07, "start", "Starting Load Kernel Modules..."),
    (0.08, "ok", "Mounted Huge Pages File System."),
    (0.09, "ok", "Finished Load Kernel Modules."),
    (0.10, "ok", "Started Journal Service."),
    (0.12, "start", "Starting Remount Root and Kernel File Systems..."),
    (0.13, "ok", "Finished Remount Root and Kernel File Systems."),
    (0.15, "ok", "Reached target Local File Systems."),
    (0.17, "start", "Starting Initial cloud-init job (pre-networking)..."),
    (
        0.20,
        "k",
        "cloud-init[{pid_local}]: Cloud-init v. {cloud_init} running 'init-local' at "
        "{date}. Up {up} seconds.",
    ),
    (0.26, "ok", "Finished Initial cloud-init job (pre-networking)."),
    (0.27, "ok", "Reached target Preparation for Network."),
    (0.28, "start", "Starting Network Configuration..."),
    (0.31, "ok", "Started Network Configuration."),
    (0.33, "start", "Starting Initial cloud-init job (metadata service crawler)..."),
    (
        0.38,
        "k",
        "cloud-init[{pid_init}]: Cloud-init v. {cloud_init} running 'init' at {date}. "
        "Up {up} seconds.",
    ),
    (0.39, "net", ""),
    (0.45, "k", "cloud-init[{pid_init}]: Generating public/private rsa key pair."),
    (
        0.47,
        "k",
        "cloud-init[{pid_init}]: Your identification has been saved in /etc/ssh/ssh_host_rsa_key",
    ),
    (
        0.47,
        "k",
        "cloud-init[{pid_init}]: Your public key has been saved in /etc/ssh/ssh_host_rsa_key.pub",
    ),
    (0.48, "k", "cloud-init[{pid_init}]: The key fingerprint is:"),
    (0.48, "k", "cloud-init[{pid_init}]: SHA256:{fp_rsa} root@{host}"),
    (0.52, "ok", "Finished Initial cloud-init job (metadata service crawler)."),
    (0.53, "ok", "Reached target Cloud-config availability."),
    (0.54, "ok", "Reached target Network is Online."),
    (0.56, "start", "Starting Apply the settings specified in cloud-config..."),
    (0.57, "start", "Starting OpenBSD Secure Shell server..."),
    (0.60, "ok", "Started OpenBSD Secure Shell server."),
    (
        0.62,
        "k",
        "cloud-init[{pid_config}]: Cloud-init v. {cloud_init} running 'modules:config' "
        "at {date}. Up {up} seconds.",
    ),
    (0.70, "ok", "Finished Apply the settings specified in cloud-config."),
    (0.72, "ok", "Reached target Multi-User System."),
    (0.75, "start", "Starting Execute cloud user/final scripts..."),
    (
        0.80,
        "k",
        "cloud-init[{pid_final}]: Cloud-init v. {cloud_init} running 'modules:final' "
        "at {date}. Up {up} seconds.",
    ),
    (
        0.86,
        "k",
        "cloud-init[{pid_final}]: ci-info: no authorized SSH keys fingerprints found "
        "for user {user}.",
    ),
    (0.92, "log", "#############################################################"),
    (0.92, "log", "-----BEGIN SSH HOST KEY FINGERPRINTS-----"),
    (0.92, "log", "256 SHA256:{fp_ecdsa} root@{host} (ECDSA)"),
    (0.92, "log", "256 SHA256:{fp_ed25519} root@{host} (ED25519)"),
    (0.92, "log", "3072 SHA256:{fp_rsa} root@{host} (RSA)"),
    (0.92, "log", "-----END SSH HOST KEY FINGERPRINTS-----"),
    (0.92, "log", "#############################################################"),
    (0.93, "raw", "-----BEGIN SSH HOST KEY KEYS-----"),
    (0.93, "raw", "ecdsa-sha2-nistp256 {key_ecdsa} root@{host}"),
    (0.93, "raw", "ssh-ed25519 {key_ed25519} root@{host}"),
    (0.93, "raw", "ssh-rsa {key_rsa} root@{host}"),
    (0.93, "raw", "-----END SSH HOST KEY KEYS-----"),
    (
        1.00,
        "k",
        "cloud-init[{pid_final}]: Cloud-init v. {cloud_init} finished at {date}. "
        "Datasource DataSourceOpenStackLocal [net,ver=2].  Up {up} seconds",
    ),
)
# (nominal seconds after cloud-init finished, kind, text); the prompt comes last.
AFTER_FINISHED = (
    (0.05, "ok", "Finished Execute cloud user/final scripts."),
    (0.08, "ok", "Reached target Cloud-init target."),
    (0.10, "ok", "Started Serial Getty on ttyS0."),
    (0.12, "ok", "Reached target Login Prompts."),
)
PROMPT_AFTER_FINISHED = 0.2
# (nominal seconds after the shutdown began, kind, text), for a guest that got
# as far as systemd; Nova's stop takes 3 s (clock.STOP_SECONDS).
SHUTDOWN = (
    (0.10, "ok", "Stopped target Cloud-init target."),
    (0.15, "ok", "Stopped target Multi-User System."),
    (0.20, "start", "Stopping OpenBSD Secure Shell server..."),
    (0.30, "ok", "Stopped OpenBSD Secure Shell server."),
    (0.50, "start", "Stopping Network Configuration..."),
    (0.60, "ok", "Stopped Network Configuration."),
    (0.90, "ok", "Reached target System Shutdown."),
    (1.00, "ok", "Reached target Late Shutdown Services."),
    (1.20, "ok", "Finished System Power Off."),
    (1.30, "ok", "Reached target System Power Off."),
    (1.60, "k", "reboot: Power down"),
)
NET_WIDTHS = (8, 6, 30, 15, 8, 19)


def hostname(name):
    """What Nova makes of a display name for the guest's hostname."""
    return re.sub(r"[^a-z0-9-]", "-", (name or "").lower())[:63]


def mac_address(server_id):
    return "fa:16:3e:" + ":".join(
        hashlib.md5(server_id.encode()).hexdigest()[i : i + 2] for i in (0, 2, 4)
    )


# -- the stored record ---------------------------------------------------------------


def record(row, speed):
    """The console record of a server row, or None while no guest has run.

    Servers from before the console existed (the seeded demo catalog) are taken
    to have booted at launched_at and, if stopped, to have run fully first.
    """
    rec = loads(row["console"])
    if rec:
        return rec
    if not row["launched_at"]:
        return None
    on = clock.db_to_ts(row["launched_at"]) - clock.CONSOLE_LEAD_SECONDS / speed
    off = None
    if row["vm_state"] == "stopped":
        off = on + (clock.CONSOLE_LEAD_SECONDS + clock.GUEST_BOOT_SECONDS + 60) / speed
    return {"on": on, "off": off, "panic": False}


def power_on(conn, server_id, at, panic=None, silent=None):
    """A new run of the guest (libvirt truncates the log); panic=None and silent=None
    keep the old flags (they belong to the image, which a restart does not change)."""
    row = conn.execute(
        "SELECT console FROM servers WHERE id = ? AND deleted = 0", (server_id,)
    ).fetchone()
    if row is None:
        return
    old = loads(row["console"]) or {}
    if panic is None:
        panic = bool(old.get("panic"))
    if silent is None:
        silent = bool(old.get("silent"))
    rec = {"on": at, "off": None, "panic": bool(panic)}
    if silent:
        rec["silent"] = True
    conn.execute("UPDATE servers SET console = ? WHERE id = ?", (dumps(rec), server_id))


def power_off(conn, row, at, speed):
    """The guest starts shutting down (os-stop accepted); its log stays readable."""
    rec = record(row, speed)
    if rec is None or rec["off"] is not None:
        return
    rec["off"] = at
    conn.execute("UPDATE servers SET console = ? WHERE id = ?", (dumps(rec), row["id"]))


# -- the text ------------------------------------------------------------------------


def _distro(image_props):
    props = (image_props or {}).get("properties", {})
    distro = str(props.get("os_distro") or "").lower()
    version = str(props.get("os_version") or "")
    if (distro, version) in DISTROS:
        return DISTROS[(distro, version)]
    for (name, _), facts in DISTROS.items():
        if name == distro:
            return facts
    return DISTROS[DEFAULT_DISTRO]


def _ssh_key(kind, *parts):
    """(public key base64, SHA256 fingerprint) of an SSH key blob made of these parts."""
    blob = b"".join(len(p).to_bytes(4, "big") + p for p in (kind.encode(), *parts))
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return base64.b64encode(blob).decode(), digest


def _facts(row, rng):
    flavor = loads(row["flavor"], {})
    facts = dict(_distro(loads(row["image_props"], {})))
    ram = int(flavor.get("ram") or 2048)
    disk = int(flavor.get("disk") or 20)
    facts.update(
        host=hostname(row["name"]),
        build_tag=facts["build"].split()[0],
        vcpus=int(flavor.get("vcpus") or 1),
        mem_total=ram * 1024,
        mem_avail=ram * 1024 - 82_000 - rng.randrange(4000),
        sectors=disk * 2097152,
        disk_gb=f"{disk * 1024**3 / 1e9:.1f}",
        disk_gib=f"{disk:.1f}",
        kaslr=rng.randrange(0x100, 0x3E0) << 20,
        ip=row["ip"],
        mac=mac_address(row["id"]),
    )
    for stage, base in (("local", 480), ("init", 560), ("config", 700), ("final", 760)):
        facts[f"pid_{stage}"] = base + rng.randrange(60)
    keys = {
        "ecdsa": ("ecdsa-sha2-nistp256", b"nistp256", b"\x04" + rng.randbytes(64)),
        "ed25519": ("ssh-ed25519", rng.randbytes(32)),
        "rsa": ("ssh-rsa", b"\x01\x00\x01", b"\x00" + rng.randbytes(384)),
    }
    for name, (kind, *parts) in keys.items():
        facts[f"key_{name}"], facts[f"fp_{name}"] = _ssh_key(kind, *parts)
    return facts


def _net_table(facts):
    """cloud-init's 'Net device info' table, one line at a time."""

    def row(cells):
        return (
            "|" + "|".join(str(c).center(w) for c, w in zip(cells, NET_WIDTHS, strict=True)) + "|"
        )

    rule = "+" + "+".join("-" * w for w in NET_WIDTHS) + "+"
    width = len(rule)
    lines = [f"{'Net device info':+^{width}}", rule]
    lines.append(row(("Device", "Up", "Address", "Mask", "Scope", "Hw-Address")))
    lines.append(rule)
    if facts["ip"]:
        lines.append(row(("ens3", "True", facts["ip"], "255.255.255.0", "global", facts["mac"])))
    else:
        lines.append(row(("ens3", "False", ".", ".", ".", facts["mac"])))
    lines.append(row(("lo", "True", "127.0.0.1", "255.0.0.0", "host", ".")))
    lines.append(rule)
    return [f"cloud-init[{facts['pid_init']}]: ci-info: {line}" for line in lines]


class _Writer:
    """Collects (t, chunk) events and stamps lines the way each source does."""

    def __init__(self, facts, on, rng):
        self.facts = facts
        self.on = on
        self.rng = rng
        self.events = []
        self.last_stamp = 0.0

    def stamp(self, k):
        # printk timestamps never run backwards, and real ones are never round.
        if k > 0:
            k = max(k + self.rng.uniform(0, 0.0004), self.last_stamp + 0.000011)
        self.last_stamp = max(self.last_stamp, k)
        return f"[{k:12.6f}] "

    def add(self, t, kind, text):
        k = t - FIRMWARE_SECONDS
        when = time.gmtime(self.on + t)
        fields = dict(
            self.facts,
            up=f"{k:.2f}",
            date=time.strftime("%a, %d %b %Y %H:%M:%S +0000", when),
        )
        if kind == "net":
            for line in _net_table(self.facts):
                self.add(t, "k", line)
            return
        line = text.format(**fields)
        if kind == "k":
            line = self.stamp(k) + line
        elif kind == "ok":
            line = OK + line
        elif kind == "start":
            line = STARTING + line
        elif kind == "log":
            syslog = (
                time.strftime("%b ", when) + f"{when.tm_mday:>2}" + time.strftime(" %H:%M:%S", when)
            )
            line = f"<14>{syslog} cloud-init: {line}"
        self.events.append((t, line + "\r\n"))


def timeline(facts, rec, guest_boot, rng):
    """Every (t, chunk) of the guest's run, in order; the caller cuts it at `now`."""
    out = _Writer(facts, rec["on"], rng)
    for k, text in KERNEL_EARLY:
        out.add(FIRMWARE_SECONDS + k, "k", text)
    if rec.get("panic"):
        for k, text in KERNEL_PANIC:
            out.add(FIRMWARE_SECONDS + k, "k", text)
        return out.events
    for k, text in KERNEL_ROOT:
        out.add(FIRMWARE_SECONDS + k, "k", text)
    begin = FIRMWARE_SECONDS + USERLAND_AT
    prompt_at = clock.CONSOLE_LEAD_SECONDS + guest_boot
    # A very short --guest-boot still leaves systemd and cloud-init a second.
    finished = max(prompt_at - PROMPT_AFTER_FINISHED, begin + 1.0)
    for p, kind, text in USERLAND:
        out.add(begin + p * (finished - begin), kind, text)
    for dt, kind, text in AFTER_FINISHED:
        out.add(finished + dt, kind, text)
    host = facts["host"]
    prompt = f"\r\n{facts['issue']} {host} ttyS0\r\n\r\n{host} login: "
    out.events.append((finished + PROMPT_AFTER_FINISHED, prompt))
    return out.events


def _shutdown(facts, rec, uptime, rng):
    """(seconds after the shutdown began, chunk) for a guest that ran `uptime` seconds."""
    out = _Writer(facts, rec["on"], rng)
    out.last_stamp = uptime - FIRMWARE_SECONDS
    for dt, kind, text in SHUTDOWN:
        out.add(uptime + dt, kind, text)
    return [(t - uptime, chunk) for t, chunk in out.events]


def render(row, now, speed, guest_boot):
    """The raw console log at real time `now` (CR, colour codes and all), or None
    when the server has no guest yet (libvirt has no domain: Nova answers 404)."""
    rec = record(row, speed)
    if rec is None:
        return None
    if rec.get("silent"):
        return ""  # its kernel writes to no serial port (no console=ttyS0)
    off = rec.get("off")
    running_until = now if off is None else min(now, off)
    uptime = max(0.0, (running_until - rec["on"]) * speed)
    # Seeded by the server id and always drawn in the same order: the same log
    # on every request, so only time decides how much of it shows.
    rng = random.Random(hashlib.sha256(row["id"].encode()).digest())
    facts = _facts(row, rng)
    events = sorted(timeline(facts, rec, guest_boot, rng), key=lambda e: e[0])
    shown = [chunk for t, chunk in events if t <= uptime]
    # A panicked kernel ignores the ACPI power button, and so does one still in
    # early boot: Nova destroys such a domain after its timeout, silently.
    booted = uptime >= FIRMWARE_SECONDS + USERLAND_AT
    if off is not None and now >= off and booted and not rec.get("panic"):
        since = (now - off) * speed
        shown += [chunk for t, chunk in _shutdown(facts, rec, uptime, rng) if t <= since]
    return "".join(shown)[-MAX_CONSOLE_BYTES:]


def nova_output(raw, length):
    """What os-getConsoleOutput answers: nova-compute's tail, then the API's filter.

    The tail is Nova's own `b'\\n'.join(log.split(b'\\n')[-length:])`, quirks
    included: 0 gives "", and -1 (meant as "unlimited") drops the first line.
    """
    if length is not None:
        length = int(length)
        raw = "" if length == 0 else "\n".join(raw.split("\n")[-length:])
    return NOVA_STRIPPED.sub("", raw)
