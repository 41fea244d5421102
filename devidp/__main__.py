"""python -m devidp serve --data DIR [--host 127.0.0.1] [--port 0]

Prepares DIR (database, RS256 key), then serves until terminated. The config file
is DIR/config.json (see devidp/config.py); a line "devidp listening on http://..."
tells a launcher the port.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time


def watch_parent() -> None:
    """Stop when the launching process is gone (DEVIDP_PARENT_PID), so a crashed
    test run leaves nothing listening."""
    expected = os.environ.get("DEVIDP_PARENT_PID", "")
    if not expected.isdigit():
        return

    def watch():
        while os.getppid() == int(expected):
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="devidp-parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devidp")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--data", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    os.makedirs(args.data, exist_ok=True)
    os.environ["DEVIDP_DIR"] = os.path.abspath(args.data)
    os.environ["DJANGO_SETTINGS_MODULE"] = "devidp.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application
    from oidc_provider.models import RSAKey

    call_command("migrate", verbosity=0, interactive=False)
    if not RSAKey.objects.exists():
        call_command("creatersakey")

    from devidp.config import config

    config()
    application = get_wsgi_application()
    server = ThreadedWSGIServer((args.host, args.port), WSGIRequestHandler)
    server.daemon_threads = True
    server.set_app(application)
    watch_parent()
    print(f"devidp listening on http://{args.host}:{server.server_address[1]}/", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
