"""``eslhook`` command line: run, check-config, fake-switch, record, demo."""

from __future__ import annotations

# One gevent process: patch before anything imports socket, ssl or threading.
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import sys  # noqa: E402

from . import __version__  # noqa: E402

DEFAULT_CONFIG = "conf/eslhook.yaml"
EXIT_CONFIG = 1         # the configuration is invalid
EXIT_STATE_CORRUPT = 3  # a file in state_dir is corrupt (2 is argparse's usage error)
EXIT_CRITICAL = 4       # a critical greenlet died (eslhook/supervise.py): restarting may help


def _setup_logging(level: str, fmt: str) -> None:
    from .logs import setup_logging
    setup_logging(level, fmt)


def _cmd_run(args) -> int:
    from .config import ConfigError, load_config
    from .delivery.store import DeliveryStoreUnusable
    from .pg import DatabaseUnavailable
    from .service import Bridge
    from .stores import close as close_databases
    from .supervise import CriticalGreenletDied
    try:
        config = load_config(args.config)
        bridge = Bridge(config)
        try:
            bridge.run_until_signalled(drain_seconds=args.drain_seconds)
        finally:
            close_databases()        # storage: postgresql: the stores' pool
    except ConfigError as exc:
        for issue in exc.issues:
            print("error: %s" % issue, file=sys.stderr)
        print("eslhook: refusing to start with an invalid configuration", file=sys.stderr)
        return EXIT_CONFIG
    except DeliveryStoreUnusable as exc:
        print("eslhook: refusing to start: %s" % exc, file=sys.stderr)
        return EXIT_STATE_CORRUPT
    except DatabaseUnavailable as exc:    # storage: postgresql; restarting may help
        print("eslhook: cannot start: %s" % exc, file=sys.stderr)
        return EXIT_CRITICAL
    except CriticalGreenletDied as exc:
        print("eslhook: stopped: %s" % exc, file=sys.stderr)
        return EXIT_CRITICAL
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import checkconfig, demo, record
    from .fakeswitch import cli as fakeswitch_cli

    parser = argparse.ArgumentParser(
        prog="eslhook",
        description="FreeSWITCH event socket -> Kazoo-style webhooks.")
    parser.add_argument("--version", action="version", version="eslhook %s" % __version__)
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="json: one JSON object per line, for log shippers")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the service",
                         description="Attach to the configured switches and deliver webhooks "
                                     "until SIGTERM/SIGINT.",
                         epilog="Exit status: 0 stopped by a signal; %d invalid configuration; "
                                "%d a corrupt file in state_dir (the message says which and "
                                "how to move it aside); %d a critical part died (the log "
                                "says which) or the database (storage: postgresql) cannot "
                                "be reached: restarting may help." % (EXIT_CONFIG, EXIT_STATE_CORRUPT,
                                                  EXIT_CRITICAL))
    run.add_argument("--config", default=DEFAULT_CONFIG, help="config file (default %(default)s)")
    run.add_argument("--drain-seconds", type=float, default=10.0,
                     help="on stop, how long the whole shutdown may take: in-flight "
                          "deliveries finish within it (default %(default)s)")
    run.set_defaults(func=_cmd_run)

    # Each command module adds its own parser; dispatch by name so they need
    # not agree on set_defaults.
    for name, module in (("check-config", checkconfig), ("fake-switch", fakeswitch_cli),
                         ("record", record), ("demo", demo)):
        module.add_parser(sub)
        sub.choices[name].set_defaults(func=module.run)
    from .pg.commands import add_parsers as add_fleet_parsers   # imports no driver
    add_fleet_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level, args.log_format)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
