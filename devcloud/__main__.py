"""Command line: serve, clouds-yaml, populate, accounts."""

import argparse
import sys

from . import clock


def _cmd_serve(args):
    from . import faults, server

    try:
        spec = faults.parse_cli(args.faults)
    except (faults.FaultSpecError, OSError) as exc:
        print(f"devcloud: bad --faults: {exc}", file=sys.stderr)
        return 2
    if (
        args.task_state_lag < 0
        or args.upload_rate <= 0
        or args.progress_interval < 0
        or args.guest_boot < 0
    ):
        print("devcloud: timing options must not be negative", file=sys.stderr)
        return 2
    clock.OFFSET = args.clock_offset
    return server.serve(
        args.data,
        host=args.host,
        port=args.port,
        speed=args.speed,
        faults=spec,
        profile=args.profile,
        timing={
            "task_state_lag": args.task_state_lag,
            "upload_rate": args.upload_rate * 1000**2,
            "progress_interval": args.progress_interval,
            "guest_boot": args.guest_boot,
        },
    )


def _cmd_clouds_yaml(args):
    from .clouds import clouds_yaml

    sys.stdout.write(
        clouds_yaml(
            args.port,
            host=args.host,
            name=args.name,
            profile=args.profile,
            entries_only=args.entries_only,
        )
    )
    return 0


def _cmd_populate(args):
    import time

    from . import seed
    from .store import Store

    store = Store(args.data)
    seed.ensure_seeded(store, args.profile)
    started = time.monotonic()
    servers, images = seed.populate(store, args.servers, args.images, project_name=args.project)
    print(
        f"devcloud populated {servers} servers and {images} images in project "
        f"{args.project} in {time.monotonic() - started:.1f}s"
    )
    return 0


def _cmd_accounts(args):
    from . import accounts
    from .store import Store

    created = accounts.ensure_accounts(
        Store(args.data), args.projects, prefix=args.prefix, profile=args.profile
    )
    sys.stdout.write(accounts.tempest_accounts_yaml(created))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m devcloud", description="Small OpenStack-compatible cloud for development"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the cloud")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--data", required=True, help="state directory (created and seeded if new)")
    serve.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated-time factor: durations are divided by it",
    )
    serve.add_argument("--faults", default=None, help="fault JSON, or @file.json")
    serve.add_argument(
        "--task-state-lag",
        type=float,
        default=clock.TASK_STATE_LAG_SECONDS,
        help="nominal seconds between a snapshot image going active and Nova clearing task_state",
    )
    serve.add_argument(
        "--upload-rate",
        type=float,
        default=clock.UPLOAD_BYTES_PER_SECOND / 1000**2,
        help="snapshot upload rate in MB/s of the server's used disk (nominal)",
    )
    serve.add_argument(
        "--clock-offset",
        type=float,
        default=0.0,
        help="seconds this cloud's clock is off the machine's (negative: behind), as a "
        "real cloud's clock may be off the portal's",
    )
    serve.add_argument(
        "--progress-interval",
        type=float,
        default=clock.UPLOAD_PROGRESS_SECONDS,
        help="longest nominal gap between progress bumps during an upload; 0 (the default) = "
        "none, as real Nova and Glance",
    )
    serve.add_argument(
        "--guest-boot",
        type=float,
        default=clock.GUEST_BOOT_SECONDS,
        help="nominal seconds from ACTIVE until the console log shows cloud-init finished and "
        "the login prompt",
    )
    serve.add_argument(
        "--profile",
        choices=["primary", "secondary"],
        default="primary",
        help="demo catalog for a new data directory",
    )
    serve.set_defaults(func=_cmd_serve)

    clouds = sub.add_parser("clouds-yaml", help="print a clouds.yaml for a running devcloud")
    clouds.add_argument("--port", type=int, required=True)
    clouds.add_argument("--host", default="127.0.0.1")
    clouds.add_argument("--name", default="devcloud")
    clouds.add_argument(
        "--profile",
        choices=["primary", "secondary"],
        default="primary",
        help="which demo projects get per-project entries",
    )
    clouds.add_argument(
        "--entries-only",
        action="store_true",
        help="omit the 'clouds:' header to concatenate several sites",
    )
    clouds.set_defaults(func=_cmd_clouds_yaml)

    populate = sub.add_parser("populate", help="bulk-add servers and images for benchmarks")
    populate.add_argument("--data", required=True)
    populate.add_argument("--servers", type=int, default=0)
    populate.add_argument("--images", type=int, default=0)
    populate.add_argument("--project", default="alpha")
    populate.add_argument(
        "--profile",
        choices=["primary", "secondary"],
        default="primary",
        help="catalog to seed with if the directory is new",
    )
    populate.set_defaults(func=_cmd_populate)

    accts = sub.add_parser(
        "accounts",
        help="add test projects with a member and a reader user each; print tempest accounts.yaml",
    )
    accts.add_argument("--data", required=True)
    accts.add_argument("--projects", type=int, default=3)
    accts.add_argument("--prefix", default="tempest", help="projects are PREFIX-1 .. PREFIX-N")
    accts.add_argument(
        "--profile",
        choices=["primary", "secondary"],
        default="primary",
        help="catalog to seed with if the directory is new",
    )
    accts.set_defaults(func=_cmd_accounts)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
