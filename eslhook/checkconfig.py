"""``eslhook check-config``: validate the config and hooks files, change nothing."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path

from .accounts import AccountDirectory
from .config import ConfigError, load_config
from .hooks.model import Hook, uri_has_userinfo
from .hooks.yaml_file import load_hooks

DEFAULT_CONFIG = "conf/eslhook.yaml"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "check-config", help="validate the config and hooks files",
        description="Validate the configuration and its hooks file. Prints a one-line "
                    "summary, or every problem with its file, line and key; "
                    "exit status 0 when both are valid, 1 otherwise. A hooks file "
                    "holding secrets that others may read is a warning (exit 0).")
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
    note = ""
    if config.storage.postgresql:         # the hooks live in the database
        from .pg.commands import check_database
        stored = check_database(config, out)
        if stored is None:
            return 1
        hooks = stored
    elif not config.hooks_file.exists():  # not an error: eslhook creates it empty
        hooks = []
        note = " (%s does not exist yet; eslhook will create it empty)" % config.hooks_file
    else:
        try:
            hooks = load_hooks(config.hooks_file, AccountDirectory.from_config(config),
                               create_missing=False)
        except ConfigError as error:
            _print_issues(error, out)
            return 1
        warning = readable_secrets_warning(config.hooks_file, hooks)
        if warning:
            print("warning: %s" % warning, file=out)
    print("ok: %s, %s, %s (%d enabled)%s" % (
        _count(len(config.switches), "switch", "switches"),
        _count(len(config.accounts), "account", "accounts"),
        _count(len(hooks), "hook", "hooks"), sum(h.enabled for h in hooks), note), file=out)
    return 0


def readable_secrets_warning(path: Path, hooks: list[Hook]) -> str | None:
    """Why a hooks file holding signing secrets is readable by more than its owner."""
    with_secrets = sum(1 for h in hooks if h.secret or h.previous_secret
                       or h.custom_request_headers or uri_has_userinfo(h.uri))
    mode = stat.S_IMODE(os.stat(path).st_mode)
    readers = [who for who, bit in (("its group", stat.S_IRGRP), ("everyone", stat.S_IROTH))
               if mode & bit]
    if not with_secrets or not readers:
        return None
    return ("%s is readable by %s (mode %04o) and holds the signing secret%s or "
            "receiver credentials of %s: chmod 600 %s (eslhook writes it 0600)" % (
                path, " and ".join(readers), mode, "s" * (with_secrets != 1),
                _count(with_secrets, "hook", "hooks"), path))


def _count(n: int, one: str, many: str) -> str:
    return "%d %s" % (n, one if n == 1 else many)


def _print_issues(error: ConfigError, out) -> None:
    for issue in error.issues:
        print("error: %s" % issue, file=out)
    n = len(error.issues)
    print("%d problem%s found" % (n, "s" * (n != 1)), file=out)
