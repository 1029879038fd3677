"""Configuration: plain data, validated up front.

``load_config(path)`` reads ``eslhook.yaml``, validates it against
``schemas/config.schema.json`` and returns a frozen ``Config``;
``load_hooks(path, accounts)`` does the same for ``hooks.yaml`` against
``schemas/hooks.schema.json``.  Every problem is reported at once as a
``ConfigError`` whose issues name the file, the path of the offending key
(``switches[0].port``) and, where YAML tells us, its line.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import os
import re
import uuid
from datetime import date
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from .hooks.files import write_atomically
from .hooks.layout import new_entry
from .hooks.model import Hook
from .netpolicy import DEFAULT_BLOCKED_NETWORKS, uri_problem

if TYPE_CHECKING:
    from .accounts import AccountDirectory

@dataclass(frozen=True)
class ConfigIssue:
    file: str
    path: str          # e.g. "switches[0].port"; "" for the whole document
    message: str
    line: int | None = None   # 1-based line in the file, when YAML told us

    def __str__(self) -> str:
        where = self.file if self.line is None else "%s:%d" % (self.file, self.line)
        if self.path:
            where = "%s: %s" % (where, self.path)
        return "%s: %s" % (where, self.message)


class ConfigError(Exception):
    """A config or hooks file is invalid; ``issues`` lists every problem."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


def _check(obj, name: str, ok: bool, message: str) -> None:
    """Dataclass validation: raise ValueError naming the class and field."""
    if not ok:
        raise ValueError("%s.%s: %s (got %r)" % (
            type(obj).__name__, name, message,
            "<hidden>" if name == "password" else getattr(obj, name)))


def _is_port(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535


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
        _check(self, "name", bool(self.name), "must not be empty")
        _check(self, "port", _is_port(self.port), "must be an integer 0..65535")
        _check(self, "format", self.format in ("json", "plain"), "must be json or plain")
        for name in ("connect_timeout_seconds", "command_timeout_seconds",
                     "liveness_timeout_seconds"):
            _check(self, name, getattr(self, name) > 0, "must be > 0")

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

    def __post_init__(self):
        # a bare string would be iterated letter by letter
        _check(self, "realms", not isinstance(self.realms, str), "must be a sequence")
        _check(self, "auth_tokens", not isinstance(self.auth_tokens, str),
               "must be a sequence")


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
        _check(self, "port", _is_port(self.port), "must be an integer 0..65535")
        for name in ("header_timeout_seconds", "idle_timeout_seconds", "auth_failures_per_minute",
                     "abuse_log_interval_seconds"):
            _check(self, name, getattr(self, name) > 0, "must be > 0")
        for name in ("max_connections", "max_connections_per_client", "auth_failure_burst"):
            _check(self, name, getattr(self, name) >= 1, "must be >= 1")
        _check(self, "admin_tokens", not isinstance(self.admin_tokens, str),
               "must be a sequence")
        _check(self, "max_body_bytes", self.max_body_bytes >= 1024, "must be >= 1024")


def _is_network(text) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except (TypeError, ValueError):
        return False
    return True


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
        for name in ("blocked_networks", "tenant_allowed_networks"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
            _check(self, name, all(_is_network(n) for n in getattr(self, name)),
                   "must all be networks such as 169.254.0.0/16 or fd00::/8")
        _check(self, "timeout_seconds", self.timeout_seconds > 0, "must be > 0")
        _check(self, "connect_timeout_seconds", self.connect_timeout_seconds > 0,
               "must be > 0")
        _check(self, "max_in_flight", self.max_in_flight >= 1, "must be >= 1")
        _check(self, "buffer_size", self.buffer_size >= 1, "must be >= 1")
        _check(self, "retry_schedule_seconds", len(self.retry_schedule_seconds) >= 1
               and all(d >= 0 for d in self.retry_schedule_seconds),
               "must hold at least one delay, all >= 0")
        _check(self, "jitter", 0 <= self.jitter < 1, "must be in [0, 1)")
        for name in ("max_connections_per_host", "circuit_failures"):
            _check(self, name, getattr(self, name) >= 1, "must be >= 1")
        _check(self, "disable_after_failures", self.disable_after_failures >= 0, "must be >= 0")
        for name in ("circuit_open_seconds", "disable_after_seconds", "max_age_seconds",
                     "attempt_log_days"):
            _check(self, name, getattr(self, name) >= 0, "must be >= 0")


@dataclass(frozen=True)
class PayloadConfig:
    channel_variables: tuple[str, ...] = ()   # globs, e.g. "cc_*"


@dataclass(frozen=True)
class ReconcileConfig:
    interval_seconds: float = 300.0   # periodic comparison with the switch's channels
    confirm_seconds: float = 3.0      # between the two reads (show channels lags)

    def __post_init__(self):
        _check(self, "interval_seconds", self.interval_seconds > 0, "must be > 0")
        _check(self, "confirm_seconds", self.confirm_seconds >= 0, "must be >= 0")


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
    reconcile: ReconcileConfig = ReconcileConfig()


# --------------------------------------------------------------------------
# YAML documents with line numbers

_Path = tuple  # of str keys and int indexes, as jsonschema's absolute_path
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SECRET_KEYS = frozenset({"password", "auth_tokens", "admin_tokens", "secret",
                          "previous_secret"})


def format_path(parts: Iterable[str | int]) -> str:
    """("switches", 0, "port") -> "switches[0].port"."""
    out = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out += "[%d]" % part
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass(frozen=True)
class _Document:
    """Parsed YAML plus the line of every key and list item, by path."""
    file: str
    data: Any
    lines: dict
    issues: tuple = ()     # found while parsing (duplicate keys)
    node: Any = None       # PyYAML's composed node: where each hook's text lies

    def issue(self, path: _Path, message: str) -> ConfigIssue:
        return ConfigIssue(self.file, format_path(path), message, self._line(path))

    def _line(self, path: _Path) -> int | None:
        path = tuple(path)
        while path not in self.lines and path:  # a missing key: its parent's line
            path = path[:-1]
        return self.lines.get(path)


def _parse_yaml(text: str, file: str) -> _Document:
    loader = _YamlLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError([ConfigIssue(file, "", "YAML syntax error: %s" % what,
                                       mark.line + 1 if mark else None)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(file, "", "YAML error: %s" % exc)]) from None
    finally:
        loader.dispose()
    lines: dict = {}
    duplicates: list[ConfigIssue] = []
    try:
        if node is not None:
            _collect_lines(node, (), node.start_mark.line + 1, lines, duplicates, file)
    except (RecursionError, _TooBig):  # nested or aliased far beyond any config
        raise ConfigError([ConfigIssue(file, "", "document too large or nested too "
                                       "deeply (%d values seen)" % len(lines))]) from None
    # duplicate keys: YAML would silently keep the last one, a lost edit
    return _Document(file, data, lines, tuple(duplicates), node)


class _TooBig(Exception):
    pass


_MAX_VALUES = 1_000_000   # ~10x a 10,000-hook file; stops alias bombs (&a [*b, *b, ...])


def _collect_lines(node, path, line, lines, duplicates, file) -> None:
    lines[path] = line
    if len(lines) > _MAX_VALUES:
        raise _TooBig()
    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for key_node, value_node in node.value:
            key = _scalar_key(key_node)
            key_line = key_node.start_mark.line + 1
            if key in seen:
                duplicates.append(ConfigIssue(
                    file, format_path(path + (key,)),
                    "duplicate key (first on line %d); YAML keeps only this last one"
                    % seen[key], key_line))
            seen.setdefault(key, key_line)  # later lines win below: that value is kept
            _collect_lines(value_node, path + (key,), key_line, lines, duplicates, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_lines(item, path + (index,), item.start_mark.line + 1,
                           lines, duplicates, file)


def _scalar_key(key_node):
    """The key as the constructed mapping holds it (``1:`` is the int 1)."""
    if not isinstance(key_node, yaml.ScalarNode):
        return repr(key_node.value)
    if key_node.tag == "tag:yaml.org,2002:str":
        return key_node.value
    try:  # rare: int, bool or null keys
        return yaml.load(key_node.value, Loader=_YamlLoader)
    except yaml.YAMLError:
        return key_node.value


def _read_document(path: Path) -> _Document:
    file = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(file, "", "file not found")]) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue(file, "", "cannot read: %s" % exc.strerror)]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError([ConfigIssue(file, "", "not UTF-8 text", line)]) from None
    return _parse_yaml(text, file)


# --------------------------------------------------------------------------
# JSON Schema validation with messages a person can act on

def _schema_resources() -> dict[str, dict]:
    folder = resources.files("eslhook") / "schemas"
    return {entry.name: json.loads(entry.read_text("utf-8"))
            for entry in folder.iterdir() if entry.name.endswith(".schema.json")}


@cache
def schema_validator(name: str) -> Draft202012Validator:
    """Validator for ``eslhook/schemas/<name>.schema.json`` (config, webhook, hooks)."""
    schemas = _schema_resources()
    registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas.values())
    return Draft202012Validator(schemas["%s.schema.json" % name], registry=registry)


def schema_issues(name: str, data: Any, file: str) -> list[ConfigIssue]:
    """Check ``data`` against a shipped schema (e.g. a REST request body)."""
    return _schema_issues(name, _Document(file, data, {}))


def _schema_issues(name: str, doc: _Document) -> list[ConfigIssue]:
    issues = []
    for error in schema_validator(name).iter_errors(doc.data):
        for path, message in _describe(error):
            issues.append(doc.issue(path, message))
    return issues


_TYPE_WORDS = {"string": "a string", "integer": "an integer", "number": "a number",
               "boolean": "true or false", "object": "a mapping", "array": "a list",
               "null": "null (empty)"}


def _type_word(value) -> str:
    for kind, word in ((bool, "true/false"), (int, "an integer"), (float, "a number"),
                       (str, "a string"), (dict, "a mapping"), (list, "a list"),
                       (date, "a date")):
        if isinstance(value, kind):
            return word
    return "empty (null)" if value is None else type(value).__name__


def _is_secret(path: _Path) -> bool:
    return any(part in _SECRET_KEYS for part in path)


def _shown(path: _Path, value) -> str:
    """The offending value for a message, unless it may be a secret."""
    if _is_secret(path) or isinstance(value, (dict, list)):
        return ""
    return " (got %r)" % (value,)


def _describe(error) -> list[tuple[_Path, str]]:
    path = tuple(error.absolute_path)
    kind, expected, value, schema = (error.validator, error.validator_value,
                                     error.instance, error.schema)
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        return [(path + (key,), _unknown_key(key, allowed))
                for key in value if key not in allowed]
    if kind == "required":
        return [(path + (key,), _missing_key(key)) for key in expected if key not in value]
    if kind == "type":
        words = " or ".join(_TYPE_WORDS.get(t, t) for t in
                            (expected if isinstance(expected, list) else [expected]))
        # YAML reads 123, 1.5, yes, no, on, off... as numbers and booleans
        quote = ("; put it in quotes" if expected == "string"
                 and isinstance(value, (int, float, bool, date)) else "")
        return [(path, "must be %s, not %s%s%s" % (words, _type_word(value),
                                                    _shown(path, value), quote))]
    if kind == "enum":
        return [(path, "must be one of: %s%s" % (
            ", ".join("null" if v is None else str(v) for v in expected),
            _shown(path, value)))]
    if kind in ("minimum", "maximum"):
        low, high = schema.get("minimum"), schema.get("maximum")
        bounds = ("must be between %s and %s" % (low, high) if None not in (low, high)
                  else "must be at least %s" % low if high is None
                  else "must be at most %s" % high)
        return [(path, bounds + _shown(path, value))]
    if kind == "exclusiveMinimum":
        return [(path, "must be greater than %s%s" % (expected, _shown(path, value)))]
    if kind == "minLength":
        return [(path, "must not be empty" if expected == 1
                 else "must be at least %d characters" % expected)]
    if kind == "minItems":
        return [(path, "must list at least %d item%s" % (expected, "s" * (expected != 1)))]
    if kind == "pattern":
        return [(path, schema.get("x-error", "must match %s" % expected)
                 + _shown(path, value))]
    # jsonschema's own message quotes the value: not for secrets
    return [(path, "fails the %r check" % kind if _is_secret(path) else error.message)]


def _unknown_key(key, allowed: list[str]) -> str:
    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
    if close:
        return "unknown key %r: did you mean %r?" % (key, close[0])
    return "unknown key %r; allowed keys: %s" % (key, ", ".join(allowed))


def _missing_key(key: str) -> str:
    if key == "id":
        return "required key is missing; add a unique id, for example  id: %s" % (
            uuid.uuid4().hex)
    return "required key is missing"


# --------------------------------------------------------------------------
# eslhook.yaml

def load_config(path: str | os.PathLike) -> Config:
    """Read, validate and build the configuration; ConfigError lists every problem."""
    path = Path(path)
    doc = _read_document(path)
    data = {} if doc.data is None else doc.data
    doc = _Document(doc.file, data, doc.lines, doc.issues)
    issues = list(doc.issues) + _schema_issues("config", doc)
    if isinstance(data, dict):
        issues += [doc.issue(p, m) for p, m in _config_semantics(data)]
    if issues:
        raise ConfigError(_sorted(issues))
    return _build_config(data, path)


def _sorted(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    return sorted(issues, key=lambda i: (i.line or 0, i.path))


def _items(data: dict, key: str) -> Iterator[tuple[int, dict]]:
    """(index, item) of the well-formed items of a list (the schema reports the rest)."""
    value = data.get(key)
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                yield index, item


def _duplicates(data: dict, list_key: str, key: str, what: str,
                normalise=lambda v: v) -> Iterator[tuple[_Path, str]]:
    first: dict = {}
    for index, item in _items(data, list_key):
        value = item.get(key)
        if not isinstance(value, str):
            continue
        seen = first.setdefault(normalise(value), index)
        if seen != index:
            yield (list_key, index, key), "duplicate %s %r (also %s[%d])" % (
                what, value, list_key, seen)


def _config_semantics(data: dict) -> Iterator[tuple[_Path, str]]:
    yield from _duplicates(data, "switches", "name", "switch name")
    yield from _duplicates(data, "accounts", "id", "account id")
    account_ids = {a["id"] for _, a in _items(data, "accounts") if isinstance(a.get("id"), str)}
    yield from _account_semantics(data, account_ids)
    default = data.get("default_account_id")
    if isinstance(default, str) and default not in account_ids:
        yield ("default_account_id",), "unknown account %r%s" % (
            default, _known_accounts(account_ids))
    api = data.get("api")
    if isinstance(api, dict) and isinstance(api.get("listen"), str):
        try:
            parse_listen(api["listen"])
        except ValueError as exc:
            yield ("api", "listen"), str(exc)
    yield from _api_semantics(api if isinstance(api, dict) else {}, data)


_SHA256_TOKEN = re.compile(r"sha256:[0-9a-f]{64}")


def _network_semantics(api: dict, delivery: dict) -> Iterator[tuple[_Path, str]]:
    lists = [(("api", "blocked_networks"), api.get("blocked_networks"))]
    lists += [(("delivery", key), delivery.get(key))
              for key in ("blocked_networks", "tenant_allowed_networks")]
    for path, networks in lists:
        for index, text in enumerate(networks if isinstance(networks, list) else ()):
            if isinstance(text, str) and not _is_network(text):
                yield path + (index,), (
                    "not a network; write e.g. 169.254.0.0/16 or fe80::/10 (got %r)" % text)
    if "blocked_networks" in api and "blocked_networks" in delivery:
        yield ("api", "blocked_networks"), (
            "api.blocked_networks is the old name of delivery.blocked_networks (which now "
            "also applies when delivering); keep only delivery.blocked_networks")


def _api_semantics(api: dict, data: dict) -> Iterator[tuple[_Path, str]]:
    delivery = data.get("delivery")
    yield from _network_semantics(api, delivery if isinstance(delivery, dict) else {})
    token_lists = [(("api", "admin_tokens"), api.get("admin_tokens"))]
    token_lists += [(("accounts", i, "auth_tokens"), a.get("auth_tokens"))
                    for i, a in _items(data, "accounts")]
    for path, tokens in token_lists:
        for index, token in enumerate(tokens if isinstance(tokens, list) else ()):
            if (isinstance(token, str) and token.startswith("sha256:")
                    and not _SHA256_TOKEN.fullmatch(token)):
                yield path + (index,), ("a hashed token must be sha256: and 64 lowercase "
                                        "hex digits (sha256sum of the token)")


def _account_semantics(data: dict, account_ids: set[str]) -> Iterator[tuple[_Path, str]]:
    parents = {}
    realm_owner: dict[str, tuple[int, int]] = {}
    for index, account in _items(data, "accounts"):
        parent_id = account.get("parent_id")
        if isinstance(parent_id, str):
            if parent_id not in account_ids:
                yield ("accounts", index, "parent_id"), "unknown account %r%s" % (
                    parent_id, _known_accounts(account_ids))
            elif isinstance(account.get("id"), str):
                parents.setdefault(account["id"], (index, parent_id))
        realms = account.get("realms")
        for r_index, realm in enumerate(realms if isinstance(realms, list) else ()):
            if isinstance(realm, str):  # realms match case-insensitively
                owner = realm_owner.setdefault(realm.lower(), (index, r_index))
                if owner != (index, r_index):
                    yield ("accounts", index, "realms", r_index), (
                        "realm %r is already listed at accounts[%d].realms[%d]"
                        % ((realm,) + owner))
    yield from _parent_cycles(parents)


def _parent_cycles(parents: dict[str, tuple[int, str]]) -> Iterator[tuple[_Path, str]]:
    """Report each parent_id loop once, at its first account in file order."""
    reported: set[str] = set()
    for start, (index, _) in sorted(parents.items(), key=lambda kv: kv[1][0]):
        chain, current = [start], parents[start][1]
        while current in parents and current not in chain:
            chain.append(current)
            current = parents[current][1]
        if current == start and start not in reported:
            reported.update(chain)
            yield ("accounts", index, "parent_id"), (
                "parent_id forms a cycle: %s" % " -> ".join(chain + [start]))


def _known_accounts(account_ids: Iterable[str]) -> str:
    ids = sorted(account_ids)
    if not ids:
        return "; no accounts are configured"
    more = ", ..." if len(ids) > 5 else ""
    return "; configured accounts: %s%s" % (", ".join(ids[:5]), more)


_LISTEN = re.compile(r"\[(?P<v6>[0-9A-Fa-f:.]+)\]:(?P<p6>\d{1,5})"
                     r"|(?P<host>[^\s:\[\]]+):(?P<port>\d{1,5})")


def parse_listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:8000' or '[::1]:8000' -> (host, port); ValueError otherwise."""
    match = _LISTEN.fullmatch(text.strip())
    port = int(match["p6"] or match["port"]) if match else -1
    if not match or not 0 <= port <= 65535:
        raise ValueError("must be host:port with a port 0..65535, e.g. 127.0.0.1:8000 "
                         "or [::1]:8000 (got %r)" % text)
    return match["v6"] or match["host"], port


def _resolve(base: Path, value: str) -> Path:
    return (base / Path(value).expanduser()).resolve()


def _build_config(data: dict, path: Path) -> Config:
    base = path.resolve().parent
    api = data.get("api")
    host, port = parse_listen(api["listen"]) if api else (None, None)
    return Config(
        path=path.resolve(),
        switches=tuple(SwitchConfig(**s) for s in data["switches"]),
        hooks_file=_resolve(base, data.get("hooks_file", "hooks.yaml")),
        state_dir=_resolve(base, data.get("state_dir", "state")),
        accounts=tuple(_build_account(a) for a in data.get("accounts") or ()),
        account_variable=data.get("account_variable", "account_id"),
        default_account_id=data.get("default_account_id"),
        api=_build_api(api, host, port) if api else None,
        delivery=_build_delivery(data.get("delivery") or {}, api or {}),
        payload=PayloadConfig(tuple((data.get("payload") or {}).get("channel_variables", ()))),
        reconcile=ReconcileConfig(**(data.get("reconcile") or {})),
    )


def _build_api(data: dict, host: str, port: int) -> ApiConfig:
    options = {key: tuple(data[key]) for key in ("admin_tokens",) if key in data}
    for key in ("max_body_bytes", *_API_LIMITS):
        if key in data:
            options[key] = data[key]
    return ApiConfig(host=host, port=port, **options)


_API_LIMITS = ("header_timeout_seconds", "idle_timeout_seconds", "max_connections",
               "max_connections_per_client", "auth_failure_burst", "auth_failures_per_minute",
               "abuse_log_interval_seconds")


def _build_account(data: dict) -> AccountConfig:
    return AccountConfig(id=data["id"], name=data.get("name", ""),
                         realms=tuple(data.get("realms", ())),
                         parent_id=data.get("parent_id"),
                         auth_tokens=tuple(data.get("auth_tokens", ())))


def _build_delivery(data: dict, api: dict) -> DeliveryConfig:
    if "retry_schedule_seconds" in data:
        data = dict(data, retry_schedule_seconds=tuple(
            float(d) for d in data["retry_schedule_seconds"]))
    if "blocked_networks" in api:    # its old place (load_config refuses both at once)
        data = dict(data, blocked_networks=api["blocked_networks"])
    return DeliveryConfig(**data)


# --------------------------------------------------------------------------
# hooks.yaml

HOOKS_FILE_HEADER = """\
# eslhook webhooks. This file is managed by eslhook (its REST API edits only the
# hooks it changes; comments stay) and may also be edited by hand: eslhook reloads
# it within a couple of seconds, and keeps the last good hooks if an edit is
# invalid (see the log, or run `eslhook check-config`). It holds signing secrets:
# keep it 0600. Keys: see conf/hooks.yaml in the eslhook sources.
"""


def load_hooks(path: str | os.PathLike, accounts: "AccountDirectory", *,
               create_missing: bool = True) -> list[Hook]:
    """Read and validate the hooks file; a missing one is created empty."""
    path = Path(path)
    if create_missing and not path.exists():
        write_hooks_file(path, [])
        return []
    return hooks_from_document(_read_document(path), accounts)


def parse_hooks(text: str, accounts: "AccountDirectory", file: str) -> list[Hook]:
    """Validate hooks.yaml text (already read) and build the hooks."""
    return hooks_from_document(_parse_yaml(text, file), accounts)


def parse_hooks_text(text: str, accounts: "AccountDirectory", file: str
                     ) -> tuple[list[Hook], Any]:
    """``parse_hooks``, also returning PyYAML's node of the document (None when
    empty): the store reads from it where each hook's lines are."""
    doc = _parse_yaml(text, file)
    return hooks_from_document(doc, accounts), doc.node


def hooks_from_document(doc: _Document, accounts: "AccountDirectory") -> list[Hook]:
    if doc.data is None and not doc.issues:  # an empty file: no hooks
        return []
    issues = list(doc.issues) + _schema_issues("hooks", doc)
    if isinstance(doc.data, dict):
        issues += [doc.issue(p, m) for p, m in _hooks_semantics(doc.data, accounts)]
    if issues:
        raise ConfigError(_sorted(issues))
    return [Hook.from_dict(item) for item in doc.data.get("webhooks") or ()]


def validate_hooks(hooks: Iterable[Hook], accounts: "AccountDirectory",
                   file: str = "hooks") -> None:
    """Check hooks built in memory (e.g. by the REST API) as if loaded from a file."""
    data = {"webhooks": [hook.to_dict() for hook in hooks]}
    hooks_from_document(_Document(file, data, {}), accounts)


def validate_changed_hooks(hooks: list[Hook], changed: Iterable[int],
                           accounts: "AccountDirectory", file: str = "hooks") -> None:
    """``validate_hooks`` for a write that changed only ``hooks[i]`` for i in
    ``changed``: those are checked in full, the rest only for duplicate ids
    (they were valid when loaded), so a write costs one hook's validation."""
    issues: list[ConfigIssue] = []
    for index in changed:
        try:
            validate_hooks([hooks[index]], accounts, file)
        except ConfigError as error:
            issues += [dataclasses.replace(issue, path=issue.path.replace(
                "webhooks[0]", "webhooks[%d]" % index, 1)) for issue in error.issues]
    if len({hook.id for hook in hooks}) != len(hooks):
        ids = {"webhooks": [{"id": hook.id} for hook in hooks]}
        issues += [ConfigIssue(file, format_path(p), m)
                   for p, m in _duplicates(ids, "webhooks", "id", "hook id")]
    if issues:
        raise ConfigError(issues)


def _hooks_semantics(data: dict, accounts: "AccountDirectory") -> Iterator[tuple[_Path, str]]:
    yield from _duplicates(data, "webhooks", "id", "hook id")
    for index, item in _items(data, "webhooks"):
        problem = _uri_problem_past_schema(item.get("uri"))
        if problem:
            yield ("webhooks", index, "uri"), problem
        account_id = item.get("account_id")
        if isinstance(account_id, str) and account_id not in accounts:
            yield ("webhooks", index, "account_id"), "unknown account %r%s" % (
                account_id, _known_accounts(accounts.accounts))


def _uri_problem_past_schema(uri) -> str | None:
    """What is wrong with a uri the schema's pattern lets through (a NUL, port 99999...);
    None when the schema already reports it or it is fine."""
    pattern = schema_validator("webhook").schema["properties"]["uri"]["pattern"]
    if not isinstance(uri, str) or not re.search(pattern, uri):
        return None
    return uri_problem(uri)


def hooks_yaml(hooks: Iterable[Hook]) -> str:
    """The hooks file text: header comment, then hooks in a stable key order.

    Laid out as people write it by hand: list items indented under
    ``webhooks:``, a blank line between hooks.
    """
    entries = [new_entry(hook, data=hook.to_dict()) for hook in hooks]
    body = "webhooks:\n" + "\n".join(entries) if entries else "webhooks: []\n"
    return HOOKS_FILE_HEADER + "\n" + body


def write_hooks_file(path: str | os.PathLike, hooks: Iterable[Hook]) -> str:
    """Replace the file atomically (temp file created 0600, fsync, rename).

    Returns the text written (the store keeps its digest to spot later hand edits).
    """
    text = hooks_yaml(hooks)
    write_atomically(Path(path), text)
    return text
