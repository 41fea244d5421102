"""`make run`: everything the portal needs, in one terminal, on loopback.

Two devcloud sites (the embedded OpenStack-compatible demo clouds), devidp (a
loopback OpenID Connect provider with two users of its own, at 127.0.0.1:8001), a private
Redis (unless REDIS_URL is set), a Celery worker (which also sends the periodic tasks), and the web
server at http://127.0.0.1:8000. State lives in var/, so running it again
keeps the data. Ctrl-C stops every child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devcloud.launcher import DevcloudProcess
from devidp.launcher import DevIdpProcess
from scripts.stack import ROOT, RedisProcess, child_env, start_worker, stop_process

VAR = Path(os.environ.get("PORTAL_VAR_DIR", ROOT / "var"))
WEB_ADDR = os.environ.get("PORTAL_ADDR", "127.0.0.1:8000")
SPEED = float(os.environ.get("DEVCLOUD_SPEED", "1"))
# A fixed port: the portal knows its users by the provider's issuer URL (and sub), so a
# provider at another port next time would be another provider with new accounts.
DEVIDP_PORT = int(os.environ.get("DEVIDP_PORT", "8001"))
DEVIDP_CLIENT_SECRET = "demo-client-secret-loopback-only"

LOGINS = """\
  alice / alice   admin of project alpha (Bielefeld), member of gamma (Heidelberg)
  bob   / bob     member of alpha
  carol / carol   member of beta
  admin / admin   superuser (facility view, /admin/)
"Sign in with devidp" (the loopback identity provider; its claims make the memberships):
  dora  / dora    admin of alpha, member of gamma
  emil  / emil    member of beta"""


def devidp_config(web_addr: str) -> dict:
    """devidp's users and the portal as its client (var/devidp/config.json: edit a
    user's entitlements there and sign in again to see memberships follow)."""
    host, port = web_addr.rsplit(":", 1)
    bases = sorted(
        {f"http://{host}:{port}", f"http://127.0.0.1:{port}", f"http://localhost:{port}"}
    )
    group = "urn:geant:denbi.de:group:{}#login.aai.lifescience-ri.eu"
    return {
        "clients": [
            {
                "client_id": "cloud-portal-demo",
                "client_secret": DEVIDP_CLIENT_SECRET,
                "name": "Cloud portal (demo)",
                "redirect_uris": [f"{base}/oidc/callback/" for base in bases],
                "post_logout_redirect_uris": [f"{base}/login/" for base in bases],
                "require_consent": True,
            }
        ],
        "users": [
            {
                "username": "dora",
                "password": "dora",
                "email": "dora@example.org",
                "given_name": "Dora",
                "family_name": "Lee",
                "entitlements": [group.format("alpha:admin"), group.format("gamma")],
            },
            {
                "username": "emil",
                "password": "emil",
                "email": "emil@example.org",
                "given_name": "Emil",
                "family_name": "Brandt",
                "entitlements": [group.format("beta:member")],
            },
        ],
    }


def manage(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def main() -> int:
    VAR.mkdir(parents=True, exist_ok=True)
    children: list = []
    stoppers: list = []

    def shutdown(*_):
        raise KeyboardInterrupt

    # Ctrl-C, or a TERM from a process manager: stop the children, then exit.
    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    try:
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            redis = RedisProcess(VAR / "redis").start()
            stoppers.append(redis.stop)
            redis_url = redis.url
            print(f"redis          {redis_url}")

        sites = []
        for name, profile in (("devcloud", "primary"), ("devcloud2", "secondary")):
            cloud = DevcloudProcess(VAR / name, profile=profile, speed=SPEED).start()
            stoppers.append(cloud.stop)
            sites.append((name, cloud))
            print(f"{name:<14} {cloud.url} (access log {cloud.access_log_path})")
        idp = DevIdpProcess(VAR / "devidp", devidp_config(WEB_ADDR), port=DEVIDP_PORT).start()
        stoppers.append(idp.stop)
        print(f"{'devidp':<14} {idp.issuer} (users and claims: {idp.config_path})")

        clouds_yaml = VAR / "clouds.yaml"
        entries = "".join(cloud.clouds_yaml(name=name, entries_only=True) for name, cloud in sites)
        clouds_yaml.write_text("clouds:\n" + entries)

        env = child_env(
            # The demo is a developer setting; production leaves DEBUG off (the default).
            DEBUG=os.environ.get("DEBUG", "1"),
            REDIS_URL=redis_url,
            OS_CLIENT_CONFIG_FILE=clouds_yaml,
            PORTAL_SITES=os.environ.get("PORTAL_SITES", "devcloud=Bielefeld,devcloud2=Heidelberg"),
            PORTAL_VAR_DIR=VAR,
            JOB_POLL_MIN_SECONDS=os.environ.get("JOB_POLL_MIN_SECONDS", "1"),
            JOB_POLL_MAX_SECONDS=os.environ.get("JOB_POLL_MAX_SECONDS", "5"),
            PORTAL_OIDC_ENABLED="1",
            PORTAL_OIDC_PROVIDER_NAME="devidp",
            PORTAL_OIDC_ISSUER=idp.issuer,
            PORTAL_OIDC_CLIENT_ID="cloud-portal-demo",
            PORTAL_OIDC_CLIENT_SECRET=DEVIDP_CLIENT_SECRET,
        )
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "seed_demo")

        def new_worker():
            return start_worker(env, ticks=True, log_path=VAR / "worker.log")

        worker = new_worker()
        children.append(worker)

        def new_transfer_worker():
            # Image copies stream for minutes: their queue has a worker of its own.
            return start_worker(
                env, concurrency=2, queues=("transfer",), log_path=VAR / "transfer-worker.log"
            )

        transfer_worker = new_transfer_worker()
        children.append(transfer_worker)
        web = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", WEB_ADDR], cwd=ROOT, env=env
        )
        children.append(web)
        print(f"\nThe portal runs at http://{WEB_ADDR}/  (worker log: {VAR / 'worker.log'})")
        print(f"Demo logins:\n{LOGINS}\nPress Ctrl-C to stop everything.\n", flush=True)
        while web.poll() is None:
            time.sleep(0.5)
            if worker.poll() is not None:
                # Jobs are records: a new worker picks up where the old one died.
                print(
                    f"worker exited with {worker.returncode}; starting a new one "
                    f"(see {VAR / 'worker.log'})",
                    file=sys.stderr,
                    flush=True,
                )
                children.remove(worker)
                time.sleep(1)
                worker = new_worker()
                children.append(worker)
            if transfer_worker.poll() is not None:
                children.remove(transfer_worker)
                time.sleep(1)
                transfer_worker = new_transfer_worker()
                children.append(transfer_worker)
        print(f"stopped because the web server exited with {web.returncode}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping…")
        return 0
    finally:
        for child in reversed(children):
            stop_process(child)
        for stop in reversed(stoppers):
            stop()


if __name__ == "__main__":
    sys.exit(main())
