"""The configuration as plain frozen data, and the check of data built in code.

Validated once: a file's values are checked by ``schemas/config.schema.json``
plus the one semantic layer (``semantics.py``) as the file is loaded, and the
loader builds these dataclasses with ``trusted(...)``, which checks nothing
again.  A dataclass built directly in code (tests, the demo, benchmarks,
``ApiConfig()`` defaults) is checked by ``check(obj)`` from ``__post_init__``:
it is turned into the document a file would hold and run through the same
schema part and section rules, so bad values still fail loudly where they are
written, as ``ValueError("SwitchConfig.port: must be between 1 and 65535
(got -1)")``, and there is no second copy of the rules to drift apart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..netpolicy import DEFAULT_BLOCKED_NETWORKS
from .messages import file_message, findings, format_path, fragment_validator
from .semantics import (LEASE_SECONDS, RENEW_SECONDS, Problems, account_problems, api_problems,
                        delivery_problems, format_listen, non_finite_numbers, payload_problems,
                        storage_problems)

T = TypeVar("T")


def check(obj: Any) -> None:
    """ValueError naming every bad field of a config dataclass built in code."""
    rules = _RULES[type(obj)]
    document = rules.document(obj)
    errors = fragment_validator("config", rules.pointer).iter_errors(document)
    problems = [(f.path, file_message(f)) for f in findings(errors)]
    problems += list(non_finite_numbers(document))
    problems += list(rules.semantics(document))
    if problems:
        raise ValueError("; ".join("%s.%s: %s" % (
            type(obj).__name__, _field_path(rules, path), message)
            for path, message in problems))


def _field_path(rules: _Rules, path: tuple) -> str:
    """A document path as the dataclass's field path (``aliases`` renames the key)."""
    alias = rules.aliases.get(path[0]) if path else None
    return format_path(path) if alias is None else format_path((alias,) + tuple(path[1:]))


def register_rules(cls: type, pointer: str, document: Callable[[Any], dict],
                   aliases: dict[str, str]) -> None:
    """Let ``check`` validate a value object of another package (the delivery
    policies) against its part of config.schema.json: one copy of the rules."""
    _RULES[cls] = _Rules(pointer, document, aliases=aliases)


def trusted(cls: type[T], **values: Any) -> T:
    """``cls(**values)`` without ``check``: for values the loader already validated."""
    obj = object.__new__(cls)
    cls_fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # T: a dataclass
    unknown = set(values) - {f.name for f in cls_fields}
    if unknown:
        raise TypeError("%s: unknown field(s) %s" % (cls.__name__, sorted(unknown)))
    for f in cls_fields:
        if f.name not in values and f.default is dataclasses.MISSING:
            raise TypeError("%s: missing field %s" % (cls.__name__, f.name))
        object.__setattr__(obj, f.name, values.get(f.name, f.default))
    return obj


def _as_document(obj: Any) -> dict:
    """The fields as a file would hold them: tuples become lists."""
    return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


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

    def __post_init__(self):
        check(self)

    def __repr__(self) -> str:  # never show the password
        return "SwitchConfig(name=%r, host=%r, port=%r, format=%r)" % (
            self.name, self.host, self.port, self.format)


@dataclass(frozen=True)
class AccountConfig:
    id: str
    name: str = ""
    realms: tuple[str, ...] = ()
    parent_id: str | None = None
    reseller: bool = False         # its sub-accounts' payloads name it as reseller_id
    auth_tokens: tuple[str, ...] = field(default=(), repr=False)
    api_keys: tuple[str, ...] = field(default=(), repr=False)   # for PUT /v2/api_auth

    def __post_init__(self):
        check(self)


@dataclass(frozen=True)
class ApiConfig:
    host: str = "127.0.0.1"
    port: int = 8000                     # 0: any free port
    admin_tokens: tuple[str, ...] = field(default=(), repr=False)  # plain or sha256:<hex>
    max_body_bytes: int = 65536
    # abuse limits (eslhook/api/server.py, eslhook/api/limits.py)
    header_timeout_seconds: float = 10.0     # a request head (and each stalled read) this long
    idle_timeout_seconds: float = 30.0       # an idle keep-alive connection is closed after it
    max_connections: int = 1000              # served at once, all clients together
    max_connections_per_client: int = 64     # per address (IPv6: per /64); over it: closed
    auth_failure_burst: int = 20             # failed tokens a client may send at once ...
    auth_failures_per_minute: float = 6.0    # ... then this many a minute; beyond: 429
    abuse_log_interval_seconds: float = 60.0  # throttled clients: one log line per interval

    def __post_init__(self):
        check(self)


def _api_document(api: ApiConfig) -> dict:
    document = _as_document(api)
    document["listen"] = format_listen(document.pop("host"), document.pop("port"))
    return document


@dataclass(frozen=True)
class DeliveryConfig:
    timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 5.0
    max_in_flight: int = 200
    buffer_size: int = 100_000           # deliveries held in memory; beyond: counted, dropped
    # delays before retry 1, 2, ...; a hook's `retries` says how many are used
    retry_schedule_seconds: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0,
                                                 7200.0, 14400.0, 28800.0, 43200.0)
    jitter: float = 0.2                  # each delay varies by +-20 %
    max_connections_per_host: int = 32   # a slow receiver holds at most this many slots
    circuit_failures: int = 5            # failed attempts in a row that open a host's circuit
    circuit_open_seconds: float = 30.0   # then its first tries wait in the spool this long
    disable_after_seconds: float = 86400.0   # no success this long ...
    disable_after_failures: int = 6          # ... and this many failures: disable; 0: never
    max_age_seconds: float = 259200.0    # pending older than this is dropped on re-enable
    attempt_log_days: float = 7.0        # attempt log and finished deliveries kept this long
    # where hooks may make eslhook connect (eslhook/netpolicy.py): no hook reaches
    # blocked_networks; hooks written with an account token reach no private, loopback,
    # link-local... address either, except in tenant_allowed_networks
    blocked_networks: tuple[str, ...] = DEFAULT_BLOCKED_NETWORKS
    tenant_allowed_networks: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("retry_schedule_seconds", "blocked_networks", "tenant_allowed_networks"):
            if isinstance(getattr(self, name), list):   # a list from code: kept as a tuple
                object.__setattr__(self, name, tuple(getattr(self, name)))
        check(self)


@dataclass(frozen=True)
class PayloadConfig:
    channel_variables: tuple[str, ...] = ()   # globs, e.g. "cc_*"
    # Kazoo's cav_* / ecallmgr_* variables (custom_application_vars, custom_channel_vars
    # and the keys read from ecallmgr_*); false saves their scan of every event
    kazoo_variables: bool = True
    # emergency_resource_used: this channel variable is true, or the leg's
    # destination number matches this regular expression (whole number)
    emergency_variable: str = "ecallmgr_Emergency-Resource"
    emergency_numbers: str | None = None
    cluster_id: str | None = None             # sent as cluster_id when set

    def __post_init__(self):
        check(self)


@dataclass(frozen=True)
class ReconcileConfig:
    interval_seconds: float = 300.0   # periodic comparison with the switch's channels
    confirm_seconds: float = 3.0      # between the two reads (show channels lags)

    def __post_init__(self):
        check(self)


@dataclass(frozen=True)
class StorageConfig:
    """``storage``: embedded (files, one process) or postgresql (fleet mode)."""
    backend: str = "embedded"            # embedded | postgresql
    dsn: str | None = field(default=None, repr=False)   # may hold a password
    pool_size: int = 10                  # connections to the database at most
    connect_timeout_seconds: float = 5.0
    # fleet mode's lane leases: a dead instance's lanes wait this long for another
    lease_seconds: float = LEASE_SECONDS
    renew_seconds: float = RENEW_SECONDS  # below lease_seconds (checked)

    def __post_init__(self):
        check(self)

    @property
    def postgresql(self) -> bool:
        return self.backend == "postgresql"

    def __repr__(self) -> str:  # never show the password
        from ..pg.dsn import redacted
        return "StorageConfig(backend=%r, dsn=%r, pool_size=%r)" % (
            self.backend, redacted(self.dsn) if self.dsn else None, self.pool_size)


def _storage_document(storage: StorageConfig) -> dict:
    return {k: v for k, v in _as_document(storage).items() if v is not None}


@dataclass(frozen=True)
class _Rules:
    pointer: str                             # the part of config.schema.json
    document: Callable[[Any], dict] = _as_document
    semantics: Callable[[dict], Problems] = lambda document: iter(())
    aliases: dict = field(default_factory=dict)   # document key -> field names


_RULES = {
    SwitchConfig: _Rules("/$defs/switch"),
    AccountConfig: _Rules("/$defs/account", semantics=account_problems),
    ApiConfig: _Rules("/properties/api", _api_document, api_problems,
                      {"listen": "host/port"}),
    DeliveryConfig: _Rules("/properties/delivery", semantics=delivery_problems),
    PayloadConfig: _Rules("/properties/payload", semantics=payload_problems),
    ReconcileConfig: _Rules("/properties/reconcile"),
    StorageConfig: _Rules("/properties/storage", _storage_document, storage_problems),
}


@dataclass(frozen=True)
class Config:
    """The whole file; its parts check themselves, the loader checks how they relate."""
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
    reconcile: ReconcileConfig = ReconcileConfig()
    storage: StorageConfig = StorageConfig()
