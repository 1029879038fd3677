"""Fleet mode's commands: ``eslhook migrate``, ``eslhook hooks import|export``, and
the database part of ``check-config``.  Every message names the database by its
redacted DSN only.  The driver is imported when a command runs, not when the
parsers are built (``eslhook --help`` and embedded mode never load it)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from ..accounts import AccountDirectory
from ..config import Config, ConfigError, load_config
from ..hooks.model import Hook
from ..hooks.yaml_file import hooks_yaml, load_hooks, write_hooks_file
from . import DatabaseUnavailable

if TYPE_CHECKING:
    from .database import Database
    from .hooks import PgHookRepository

DEFAULT_CONFIG = "conf/eslhook.yaml"


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    config_help = "configuration file (default: %s)" % DEFAULT_CONFIG
    migrate_parser = subparsers.add_parser(
        "migrate", help="bring the database's schema up to date (storage: postgresql)",
        description="Apply the schema migrations the database lacks, under a lock "
                    "(eslhook run does it too at start). Exit 0 when up to date.")
    migrate_parser.add_argument("--config", default=DEFAULT_CONFIG, help=config_help)
    migrate_parser.set_defaults(func=_guarded(_migrate))
    hooks = subparsers.add_parser(
        "hooks", help="move hooks between a hooks.yaml file and the database",
        description="import: make the database hold exactly the file's hooks; export: "
                    "write the database's hooks as a hooks.yaml (secrets included, 0600).")
    actions = hooks.add_subparsers(dest="hooks_command", required=True, metavar="ACTION")
    importing = actions.add_parser("import", help="replace the database's hooks by FILE's")
    importing.add_argument("file", metavar="FILE")
    importing.add_argument("--config", default=DEFAULT_CONFIG, help=config_help)
    importing.set_defaults(func=_guarded(_import))
    exporting = actions.add_parser("export", help="print (or --out) the database's hooks")
    exporting.add_argument("--config", default=DEFAULT_CONFIG, help=config_help)
    exporting.add_argument("--out", help="write this file (0600) instead of printing")
    exporting.set_defaults(func=_guarded(_export))


def _guarded(command):
    """Load the config (postgresql only), run, turn known failures into exit 1."""
    def run(args: argparse.Namespace) -> int:
        try:
            config = load_config(args.config)
            if not config.storage.postgresql:
                print("error: %s: storage.backend is embedded: this command needs "
                      "postgresql" % config.path, file=sys.stderr)
                return 1
            return command(args, config)
        except ConfigError as error:
            for issue in error.issues:
                print("error: %s" % issue, file=sys.stderr)
            return 1
        except DatabaseUnavailable as exc:
            print("error: %s" % exc, file=sys.stderr)
            return 1
    return run


def _opened(config: Config) -> "Database":
    from .database import Database
    database = Database(config.storage)
    database.open()
    return database


def _migrate(args: argparse.Namespace, config: Config) -> int:
    from .database import migrate
    database = _opened(config)
    try:
        before, after = migrate(database)
    finally:
        database.close()
    print("%s: schema version %d%s" % (database.location, after, "" if before == after
                                       else " (was %d)" % before))
    return 0


def _repository(config: Config, database: "Database") -> "PgHookRepository":
    from .database import migrate
    from .hooks import PgHookRepository
    migrate(database)
    return PgHookRepository(database, AccountDirectory.from_config(config))


def _import(args: argparse.Namespace, config: Config) -> int:
    hooks = load_hooks(args.file, AccountDirectory.from_config(config), create_missing=False)
    database = _opened(config)
    try:
        repository = _repository(config, database)
        repository.load()
        replaced = repository.update(lambda current: (hooks, len(current)))
    finally:
        database.close()
    print("imported %d hooks from %s into %s (replacing %d)" % (
        len(hooks), args.file, database.location, replaced))
    return 0


def _export(args: argparse.Namespace, config: Config) -> int:
    database = _opened(config)
    try:
        hooks = _repository(config, database).load()
    finally:
        database.close()
    if args.out:
        write_hooks_file(args.out, hooks)          # atomic, created 0600
        print("exported %d hooks from %s to %s" % (len(hooks), database.location, args.out))
    else:
        sys.stdout.write(hooks_yaml(hooks))
    return 0


def check_database(config: Config, out: TextIO) -> list[Hook] | None:
    """check-config's part: reachable, schema up to date, stored hooks valid.
    Prints each problem; returns the hooks, or None if something is wrong."""
    from .database import LATEST_VERSION, Database, DatabaseError, schema_version
    from .hooks import PgHookRepository
    database = Database(config.storage)
    try:
        database.open()
        with database.connection() as connection:
            version = schema_version(connection)
        if version != LATEST_VERSION:
            print("error: %s: schema version %d, this eslhook needs %d: %s" % (
                database.location, version, LATEST_VERSION,
                "run `eslhook migrate --config %s`" % config.path if version < LATEST_VERSION
                else "upgrade eslhook"), file=out)
            return None
        return PgHookRepository(database, AccountDirectory.from_config(config)).load()
    except DatabaseUnavailable as exc:
        print("error: %s" % exc, file=out)
    except DatabaseError as exc:
        print("error: %s: %s" % (database.location, str(exc).strip().splitlines()[0]), file=out)
    except ConfigError as error:
        for issue in error.issues:
            print("error: %s" % issue, file=out)
    finally:
        database.close()
    return None

