"""Fault injection rules, replaceable at runtime through /devcloud/faults.

Rules live in memory only: a restart starts from the --faults given on the
command line, which is what a test harness expects after restarting a cloud.
"""

import json
import random
import re
import threading

DEFAULT_BOOT_ERROR = "No valid host was found. There are not enough hosts available."
# What libvirt tells nova-compute when QEMU dies while powering on.
DEFAULT_START_ERROR = "internal error: qemu unexpectedly closed the monitor"
# What nova-compute records when Glance rejects the snapshot data half-way.
DEFAULT_SNAPSHOT_ERROR = "Image upload failed: Glance answered 500 while receiving the data"
# What nova-compute records when the libvirt driver refuses the image's data while
# spawning (images.fetch_to_raw -> ImageUnacceptable -> BuildAbortException).
DEFAULT_BOOT_PANIC_ERROR = (
    "Build of instance {server_id} aborted: Image {image_id} is unacceptable: "
    "Image content does not match disk_format"
)
BOOT_PANIC_MODES = ("panic", "error", "silent")
# A hung request is held until its client gives up; past this devcloud closes the
# connection itself (without a word), so a client with no timeout cannot hold a
# thread forever.
HANG_MAX_SECONDS = 3600.0

# Rules aimed at servers by name; each is one object (or null).
SERVER_RULES = (
    "snapshot_killed",
    "stuck_task",
    "boot_error",
    "start_error",
    "task_state_lag",
    "boot_panic",
    # A site whose policy refuses shelving: shelve answers Nova's policy 403.
    "shelve_forbidden",
)


class FaultSpecError(ValueError):
    pass


def _compile(pattern, what):
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise FaultSpecError(f"{what} must be a regular expression string")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise FaultSpecError(f"{what}: bad regular expression: {exc}") from exc


def _check_rate(rule, what):
    rate = rule.get("rate", 1.0)
    if not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise FaultSpecError(f"{what}.rate must be a number between 0 and 1")
    count = rule.get("count")
    if count is not None and (not isinstance(count, int) or count < 0):
        raise FaultSpecError(f"{what}.count must be a non-negative integer or null")


def _validate_server_rule(kind, rule):
    _compile(rule.get("server_name", ".*"), f"{kind}.server_name")
    _check_rate(rule, kind)
    message = rule.get("message")
    if message is not None and not isinstance(message, str):
        raise FaultSpecError(f"{kind}.message must be a string")
    if kind == "stuck_task":
        state = rule.get("task_state")
        if state is not None and not isinstance(state, str):
            raise FaultSpecError("stuck_task.task_state must be a string")
        stall_at = rule.get("stall_at")
        if stall_at is not None:
            # Only an upload has progress to show before it stalls.
            if state != "image_uploading":
                raise FaultSpecError('stuck_task.stall_at needs task_state "image_uploading"')
            if not isinstance(stall_at, (int, float)) or not 0 <= stall_at < 1:
                raise FaultSpecError("stuck_task.stall_at must be a number from 0 to below 1")
    if kind == "boot_panic":
        _compile(rule.get("image_name", ".*"), "boot_panic.image_name")
        mode = rule.get("mode", "panic")
        if mode not in BOOT_PANIC_MODES:
            raise FaultSpecError(f"boot_panic.mode must be one of {list(BOOT_PANIC_MODES)}")
        # A panicking guest records nothing in Nova: only a failed build has a message.
        if mode != "error" and message is not None:
            raise FaultSpecError('boot_panic.message needs mode "error"')
    if kind == "task_state_lag":
        seconds = rule.get("seconds")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise FaultSpecError("task_state_lag.seconds must be a non-negative number")


def _validate_image_upload(rule):
    if not isinstance(rule, dict):
        raise FaultSpecError("image_upload must be an object or null")
    _compile(rule.get("image_name", ".*"), "image_upload.image_name")
    _check_rate(rule, "image_upload")
    if not isinstance(rule.get("corrupt", False), bool):
        raise FaultSpecError("image_upload.corrupt must be true or false")
    speed = rule.get("bytes_per_second")
    if speed is not None and (
        not isinstance(speed, (int, float)) or isinstance(speed, bool) or speed <= 0
    ):
        raise FaultSpecError("image_upload.bytes_per_second must be a positive number or null")


def validate(spec):
    """Check a fault document; returns a normalised deep copy."""
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise FaultSpecError("fault spec must be a JSON object")
    known = {"http", "latency", "hang", "image_upload", *SERVER_RULES}
    unknown = set(spec) - known
    if unknown:
        raise FaultSpecError(f"unknown fault kinds: {sorted(unknown)}")
    spec = json.loads(json.dumps(spec))
    for i, rule in enumerate(spec.get("http") or []):
        what = f"http[{i}]"
        if not isinstance(rule, dict):
            raise FaultSpecError(f"{what} must be an object")
        _compile(rule.get("path", ""), f"{what}.path")
        status = rule.get("status", 503)
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise FaultSpecError(f"{what}.status must be an HTTP error status")
        _check_rate(rule, what)
    for i, rule in enumerate(spec.get("latency") or []):
        what = f"latency[{i}]"
        if not isinstance(rule, dict):
            raise FaultSpecError(f"{what} must be an object")
        _compile(rule.get("path", ""), f"{what}.path")
        ms = rule.get("ms", 0)
        if not isinstance(ms, (int, float)) or ms < 0:
            raise FaultSpecError(f"{what}.ms must be a non-negative number")
        _check_rate(rule, what)
    for i, rule in enumerate(spec.get("hang") or []):
        what = f"hang[{i}]"
        if not isinstance(rule, dict):
            raise FaultSpecError(f"{what} must be an object")
        _compile(rule.get("path", ""), f"{what}.path")
        _check_rate(rule, what)
    rule = spec.get("image_upload")
    if rule is not None:
        _validate_image_upload(rule)
    for kind in SERVER_RULES:
        rule = spec.get(kind)
        if rule is None:
            continue
        if not isinstance(rule, dict):
            raise FaultSpecError(f"{kind} must be an object or null")
        _validate_server_rule(kind, rule)
    return spec


def parse_cli(value):
    """--faults accepts inline JSON or @path/to/file.json."""
    if not value:
        return {}
    if value.startswith("@"):
        with open(value[1:], encoding="utf-8") as fh:
            value = fh.read()
    try:
        spec = json.loads(value)
    except json.JSONDecodeError as exc:
        raise FaultSpecError(f"--faults is not valid JSON: {exc}") from exc
    return validate(spec)


class Faults:
    def __init__(self, spec=None):
        self._lock = threading.Lock()
        self._random = random.Random()
        self._spec = validate(spec or {})

    def get(self):
        with self._lock:
            return json.loads(json.dumps(self._spec))

    def replace(self, spec):
        spec = validate(spec)
        with self._lock:
            self._spec = spec

    def _take(self, rule):
        """Decide whether a matching rule fires; consumes its count."""
        count = rule.get("count")
        if count is not None and count <= 0:
            return False
        rate = rule.get("rate", 1.0)
        if rate < 1 and self._random.random() >= rate:
            return False
        if count is not None:
            rule["count"] = count - 1
        return True

    @staticmethod
    def _matches(rule, method, target):
        want = rule.get("method")
        if want and want != "*" and want.upper() != method.upper():
            return False
        return re.search(rule.get("path", ""), target) is not None

    def http_error(self, method, target):
        """The injected error for this request, as {"status", "message"}, or None."""
        with self._lock:
            for rule in self._spec.get("http") or []:
                if self._matches(rule, method, target) and self._take(rule):
                    return {
                        "status": rule.get("status", 503),
                        "message": rule.get("message") or "Injected fault (devcloud)",
                    }
        return None

    def hang(self, method, target):
        """True when this request is to be dropped: read, never answered."""
        with self._lock:
            for rule in self._spec.get("hang") or []:
                if self._matches(rule, method, target) and self._take(rule):
                    return True
        return False

    def latency_ms(self, method, target):
        total = 0.0
        with self._lock:
            for rule in self._spec.get("latency") or []:
                if self._matches(rule, method, target) and self._take(rule):
                    total += rule.get("ms", 0)
        return total

    def _server_rule(self, kind, server_name, applies=None):
        """A copy of the rule of `kind` if it hits this server, or None.

        `applies(rule)` lets the caller skip a rule that would not change the
        operation at hand, so that `count` is only spent on operations the
        fault really hits (as with the http rules).
        """
        with self._lock:
            rule = self._spec.get(kind)
            if not rule:
                return None
            if re.search(rule.get("server_name", ".*"), server_name or "") is None:
                return None
            if applies is not None and not applies(rule):
                return None
            if not self._take(rule):
                return None
            return dict(rule)

    def image_upload(self, image_name):
        """None, or what happens to the data uploaded to an image of this name:
        {"corrupt": bool (a byte of the stored data differs from what the client
        sent, so the stored hashes do not match the client's), "bytes_per_second":
        the store's speed, or None}."""
        with self._lock:
            rule = self._spec.get("image_upload")
            if not rule or re.search(rule.get("image_name", ".*"), image_name or "") is None:
                return None
            if not self._take(rule):
                return None
            return {
                "corrupt": bool(rule.get("corrupt", False)),
                "bytes_per_second": rule.get("bytes_per_second"),
            }

    def boot_error(self, server_name):
        rule = self._server_rule("boot_error", server_name)
        if rule is None:
            return None
        return rule.get("message") or DEFAULT_BOOT_ERROR

    def boot_panic(self, server_name, image_name, server_id="", image_id=""):
        """None, or how a boot from a broken image ends: {"mode", "message"}.

        The rule also matches the boot image's name (a snapshot's name, typically),
        and only a boot from a matching image spends its count.
        """
        rule = self._server_rule(
            "boot_panic",
            server_name,
            lambda r: re.search(r.get("image_name", ".*"), image_name or "") is not None,
        )
        if rule is None:
            return None
        mode = rule.get("mode", "panic")
        message = None
        if mode == "error":
            message = rule.get("message") or DEFAULT_BOOT_PANIC_ERROR.format(
                server_id=server_id, image_id=image_id
            )
        return {"mode": mode, "message": message}

    def shelve_forbidden(self, server_name):
        return self._server_rule("shelve_forbidden", server_name) is not None

    def start_error(self, server_name):
        rule = self._server_rule("start_error", server_name)
        if rule is None:
            return None
        return rule.get("message") or DEFAULT_START_ERROR

    def snapshot_killed(self, server_name):
        """None, or the fault message of a snapshot that Glance kills."""
        rule = self._server_rule("snapshot_killed", server_name)
        if rule is None:
            return None
        return rule.get("message") or DEFAULT_SNAPSHOT_ERROR

    def task_state_lag(self, server_name):
        """Nominal seconds Nova takes to clear task_state after Glance is done, or None."""
        rule = self._server_rule("task_state_lag", server_name)
        return None if rule is None else float(rule["seconds"])

    def stuck_task(self, server_name, first_state, states=(), explicit_only=False):
        """Where an operation freezes: {"task_state", "stall_at"}, or None.

        first_state is the task_state the operation starts in and states the
        ones it passes through later. A rule without task_state freezes the
        first one, unless explicit_only (boot: a bare rule targets actions).
        """

        def resolve(rule):
            wanted = rule.get("task_state") or ""
            if not wanted:
                return None if explicit_only else first_state
            return wanted if wanted == first_state or wanted in states else None

        rule = self._server_rule("stuck_task", server_name, lambda r: resolve(r) is not None)
        if rule is None:
            return None
        return {"task_state": resolve(rule), "stall_at": float(rule.get("stall_at") or 0)}
