"""``eslhook check-config``: validate the config and hooks files, change nothing."""

from __future__ import annotations

import argparse
import sys

from .accounts import AccountDirectory
from .config import ConfigError, load_config, load_hooks

DEFAULT_CONFIG = "conf/eslhook.yaml"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "check-config", help="validate the config and hooks files",
        description="Validate the configuration and its hooks file. Prints a one-line "
                    "summary, or every problem with its file, line and key; "
                    "exit status 0 when both are valid, 1 otherwise.")
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help="configuration file (default: %(default)s)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    try:
        config = load_config(args.config)
    except ConfigError as error:
        _print_issues(error, out)
        print("hooks file not checked: fix the configuration first", file=out)
        return 1
    if not config.hooks_file.exists():  # not an error: eslhook creates it empty
        hooks = []
        note = " (%s does not exist yet; eslhook will create it empty)" % config.hooks_file
    else:
        try:
            hooks = load_hooks(config.hooks_file, AccountDirectory.from_config(config),
                               create_missing=False)
        except ConfigError as error:
            _print_issues(error, out)
            return 1
        note = ""
    print("ok: %s, %s, %s (%d enabled)%s" % (
        _count(len(config.switches), "switch", "switches"),
        _count(len(config.accounts), "account", "accounts"),
        _count(len(hooks), "hook", "hooks"), sum(h.enabled for h in hooks), note), file=out)
    return 0


def _count(n: int, one: str, many: str) -> str:
    return "%d %s" % (n, one if n == 1 else many)


def _print_issues(error: ConfigError, out) -> None:
    for issue in error.issues:
        print("error: %s" % issue, file=out)
    n = len(error.issues)
    print("%d problem%s found" % (n, "s" * (n != 1)), file=out)
