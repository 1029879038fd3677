"""Configuration: plain data, validated up front.

``load_config(path)`` reads ``eslhook.yaml``, validates it against
``schemas/config.schema.json`` and returns a frozen ``Config``.  Every problem
is reported at once as a ``ConfigError`` whose issues name the file and the
path of the offending key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    path: str          # e.g. "switches[0].port"; "" for the whole document
    message: str

    def __str__(self) -> str:
        where = "%s: %s" % (self.file, self.path) if self.path else self.file
        return "%s: %s" % (where, self.message)


class ConfigError(Exception):
    """A config or hooks file is invalid; ``issues`` lists every problem."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


@dataclass(frozen=True)
class SwitchConfig:
    name: str
    host: str = "127.0.0.1"
    port: int = 8021
    password: str = "ClueCon"
    format: str = "json"                 # json | plain
    connect_timeout_seconds: float = 5.0
    command_timeout_seconds: float = 10.0
    liveness_timeout_seconds: float = 60.0  # no bytes this long -> reconnect

    def __repr__(self) -> str:  # never show the password
        return "SwitchConfig(name=%r, host=%r, port=%r, format=%r)" % (
            self.name, self.host, self.port, self.format)


@dataclass(frozen=True)
class AccountConfig:
    id: str
    name: str = ""
    realms: tuple[str, ...] = ()
    parent_id: str | None = None
    auth_tokens: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class ApiConfig:
    host: str = "127.0.0.1"
    port: int = 8000


@dataclass(frozen=True)
class DeliveryConfig:
    timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 5.0
    max_in_flight: int = 200
    buffer_size: int = 100_000           # payloads waiting; beyond: counted, dropped
    retry_backoff_seconds: tuple[float, ...] = (1.0, 5.0, 15.0, 30.0, 60.0)


@dataclass(frozen=True)
class PayloadConfig:
    channel_variables: tuple[str, ...] = ()   # globs, e.g. "cc_*"


@dataclass(frozen=True)
class Config:
    path: Path
    switches: tuple[SwitchConfig, ...]
    hooks_file: Path
    state_dir: Path
    accounts: tuple[AccountConfig, ...] = ()
    account_variable: str = "account_id"
    default_account_id: str | None = None
    api: ApiConfig | None = None
    delivery: DeliveryConfig = DeliveryConfig()
    payload: PayloadConfig = PayloadConfig()
