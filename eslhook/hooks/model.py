"""A webhook as stored in hooks.yaml (field names follow Kazoo's webhooks.json)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import InitVar, dataclass, field, fields
from functools import lru_cache
from datetime import datetime
from types import MappingProxyType
from typing import Any, Mapping

from .. import events
from ..netpolicy import OPERATOR, TENANT, parse_uri, uri_problem

# All three from the registry (eslhook/events.py): the call events, the
# announcements eslhook makes itself (a webhook_disabled hook, or an "all" one,
# hears that another hook of its account was disabled), and every hook type.
HOOK_EVENTS = events.call_events()
NOTICE_EVENTS = events.notice_events()
HOOK_TYPES = events.hook_types()
HTTP_VERBS = ("get", "post", "put")
WRITTEN_BY_ACCOUNT = "account"
WRITERS = (None, WRITTEN_BY_ACCOUNT, "operator")
BODY_FORMATS = ("form-data", "json")


@dataclass(frozen=True)
class Hook:
    id: str                      # 32 lowercase hex
    account_id: str
    name: str
    uri: str
    hook: str | tuple[str, ...]  # one of HOOK_TYPES, or several of HOOK_EVENTS/NOTICE_EVENTS
    http_verb: str = "post"
    format: str = "form-data"
    retries: int = 2             # retries after the first try, 0..10
    enabled: bool = True
    include_subaccounts: bool = False
    include_internal_legs: bool = True
    custom_data: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # -- how requests reach the receiver (README "Hook reference"; delivery/request.py) --
    # Sent with every request; the values are write-only through the API (repr=False).
    custom_request_headers: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), repr=False)
    timeout_seconds: float | None = None     # per attempt, 1..60; None: delivery's
    # PEM files on the eslhook machine: only hooks.yaml or an admin token may set them
    tls_ca_file: str | None = None           # trust only this CA bundle for the receiver
    tls_client_cert_file: str | None = None  # client certificate chain (mTLS)
    tls_client_key_file: str | None = None   # its key, unless the cert file holds it
    disable_reason: str | None = None
    # Standard Webhooks signing key, "whsec_" + base64; never logged (repr=False).
    secret: str | None = field(default=None, repr=False)
    # The key before the last rotation, still signed with until previous_secret_expires
    # (ISO 8601 UTC) so receivers can switch over; see delivery/signing.py.
    previous_secret: str | None = field(default=None, repr=False)
    previous_secret_expires: str | None = None
    # Who last wrote the hook's uri, which decides where it may connect
    # (eslhook/netpolicy.py): "account" (an account token; the tenant policy), or
    # absent / "operator" (hooks.yaml, an admin token).  Set by the API, never by a client.
    written_by: str | None = None
    # Kept for Kazoo's clients: Monster UI's ui_metadata (a JSON object, as sent) and
    # the group its webhooks app lists the hook under
    ui_metadata: Mapping[str, Any] | None = None
    group: str | None = None
    # False: built from a document the schema and the hooks' semantic rules have
    # passed already (hooks.yaml, the API, the database): not checked twice
    check: InitVar[bool] = True

    def __post_init__(self, check: bool = True):
        given: object = self.hook           # typed str | tuple, but a file or the API
        if isinstance(given, list):         # gives a list
            object.__setattr__(self, "hook", tuple(given))
        for name in ("custom_data", "custom_request_headers"):   # keep them read-only
            if not isinstance(getattr(self, name), MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        if check:       # built in code: the rules a hooks.yaml entry must pass, once
            problems = hook_problems(self)
            if problems:
                raise ValueError("; ".join("Hook.%s: %s" % p for p in problems))

    def __repr__(self) -> str:   # the uri's password is never shown
        return "Hook(%s)" % ", ".join(
            "%s=%r" % (f.name, masked_uri(self.uri) if f.name == "uri" else getattr(self, f.name))
            for f in fields(self) if f.repr)

    @property
    def network_policy(self) -> str:
        """The name of the network policy its deliveries follow."""
        return network_policy_of(self.written_by)

    @property
    def events(self) -> tuple[str, ...]:
        if isinstance(self.hook, tuple):
            return self.hook
        return HOOK_EVENTS + NOTICE_EVENTS if self.hook == events.ALL else (self.hook,)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, validated: bool = False) -> "Hook":
        """Build from a hooks.yaml entry (absent keys take defaults); ``validated``:
        the schema and the hooks' semantic rules passed it already."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError("Hook: unknown key(s): %s" % ", ".join(map(str, unknown)))
        return cls(**data, check=not validated)

    def to_dict(self) -> dict[str, Any]:
        """Field order as declared: the stable key order of hooks.yaml.

        Optional fields (``disable_reason``, the secrets) are left out when unset,
        ``custom_data`` when empty.  This is what hooks.yaml stores, secrets
        included: use ``public_dict`` for anything shown to a client.
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _MAPPING_FIELDS:
                if value:
                    out[f.name] = dict(value)
            elif isinstance(value, tuple):
                out[f.name] = list(value)
            elif not (f.name in _OMIT_WHEN_NONE and value is None):
                out[f.name] = value
        return out

    def public_dict(self) -> dict[str, Any]:
        """``to_dict`` without the secrets (list/get responses, logs)."""
        out = self.to_dict()
        for name in SECRET_FIELDS:
            out.pop(name, None)
        return out


def network_policy_of(written_by: str | None) -> str:
    """A hook whose uri an account token wrote follows the tenant policy."""
    return TENANT if written_by == WRITTEN_BY_ACCOUNT else OPERATOR


SECRET_FIELDS = ("secret", "previous_secret")
_OMIT_WHEN_NONE = frozenset({"disable_reason", "secret", "previous_secret",
                             "previous_secret_expires", "written_by", "ui_metadata", "group",
                             "timeout_seconds", "tls_ca_file", "tls_client_cert_file",
                             "tls_client_key_file"})
_MAPPING_FIELDS = ("custom_data", "custom_request_headers")
SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24


def parse_utc(text: str) -> datetime | None:
    """An ISO 8601 time with a zone ("Z" or +hh:mm), or None."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return value if value.tzinfo is not None else None


def secret_problem(secret: str | None) -> str | None:
    """What is wrong with a hook secret (never quoting it), or None if it is usable."""
    if secret is None:
        return None
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        return "must be %r followed by base64" % SECRET_PREFIX
    text = secret[len(SECRET_PREFIX):].rstrip("=")
    try:    # padding optional, as the standardwebhooks libraries accept it
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return "must be %r followed by valid base64" % SECRET_PREFIX
    if len(key) < MIN_SECRET_BYTES:
        return "must decode to at least %d bytes (got %d)" % (MIN_SECRET_BYTES, len(key))
    return None


def hook_problems(hook: Hook) -> list[tuple[str, str]]:
    """(field path, problem) of a hook built in code, by the rules a hooks.yaml entry
    passes: the webhook schema, then ``semantic_problems``; [] when it is valid."""
    from ..config.messages import file_message, findings, format_path, schema_validator
    errors = schema_validator("webhook").iter_errors(hook.to_dict())
    problems = [(format_path(f.path), file_message(f)) for f in findings(errors)]
    reported = {path.split(".")[0].split("[")[0] for path, _ in problems}
    return problems + [(name, problem) for name, problem in semantic_problems(hook)
                       if name not in reported]


def semantic_problems(hook: Hook) -> list[tuple[str, str]]:
    """What the schema cannot say about a hook: a signing key that does not decode,
    a rotation time that is not one, and how requests reach the receiver."""
    problems = [(name, problem) for name in SECRET_FIELDS   # a key is never echoed
                for problem in [secret_problem(getattr(hook, name))] if problem]
    expires = hook.previous_secret_expires
    if isinstance(expires, str) and parse_utc(expires) is None:
        problems.append(("previous_secret_expires", "must be an ISO 8601 time with its zone "
                         "(got %r)" % (expires,)))
    problem = uri_problem(hook.uri) if isinstance(hook.uri, str) else None
    if problem:     # what the schema's pattern lets through (a NUL, port 99999...)
        problems.append(("uri", problem))
    return problems + receiver_problems(hook)


def hook_value_ok(value: Any) -> bool:
    """``hook``: one hook type (or ``all``), or a list of distinct event names."""
    if isinstance(value, str):
        return value in HOOK_TYPES
    return (isinstance(value, tuple) and len(value) > 0 and len(set(value)) == len(value)
            and all(isinstance(name, str) and name in HOOK_TYPES and name != events.ALL
                    for name in value))


# -- what a hook adds to its requests: headers, userinfo, timeout, TLS files --------

# Header names eslhook writes itself or that frame the message: a hook cannot set them
# (lower case).  Authorization and anything else a receiver asks for are the hook's.
RESERVED_HEADERS = frozenset({
    "host", "content-length", "content-type", "transfer-encoding", "connection",
    "keep-alive", "te", "trailer", "upgrade", "expect", "proxy-connection", "user-agent",
    "x-hook-id", "x-account-id", "webhook-id", "webhook-timestamp", "webhook-signature"})
MAX_CUSTOM_HEADERS = 32
MAX_HEADER_VALUE_CHARS = 4096
TIMEOUT_RANGE = (1, 60)
TLS_FILE_FIELDS = ("tls_ca_file", "tls_client_cert_file", "tls_client_key_file")
MASK = "********"          # what the API shows for a write-only value
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def header_problem(name: Any, value: Any) -> str | None:
    """What is wrong with one custom request header (the value is never quoted)."""
    if not isinstance(name, str) or not name or not set(name) <= _TOKEN_CHARS:
        return "header name %r: must be an HTTP token (letters, digits, -, ...)" % (name,)
    if name.lower() in RESERVED_HEADERS:
        return "header %s: eslhook sets it itself; a hook cannot" % name
    if not isinstance(value, str) or len(value) > MAX_HEADER_VALUE_CHARS:
        return "header %s: the value must be a string of at most %d characters" % (
            name, MAX_HEADER_VALUE_CHARS)
    if not all(char == "\t" or " " <= char <= "~" for char in value):
        return "header %s: the value must be printable ASCII (no CR, LF, NUL)" % name
    return None


def receiver_problems(hook: Hook) -> list[tuple[str, str]]:
    """(field, problem) for the fields of ``hook`` that decide how requests reach the
    receiver; [] when they are usable.  Shared by Hook, hooks.yaml and the API."""
    problems = []
    headers = hook.custom_request_headers
    if len(headers) > MAX_CUSTOM_HEADERS:
        problems.append(("custom_request_headers", "at most %d headers" % MAX_CUSTOM_HEADERS))
    found = [header_problem(name, value) for name, value in headers.items()]
    problems += [("custom_request_headers", p) for p in found if p]
    lower = [str(name).lower() for name in headers]
    if len(set(lower)) != len(lower):
        problems.append(("custom_request_headers", "a header named twice (names are "
                         "case-insensitive)"))
    if "authorization" in lower and uri_has_userinfo(hook.uri):
        problems.append(("custom_request_headers", "an Authorization header and user:password@ "
                         "in the uri: give one (the uri's makes Basic auth)"))
    timeout = hook.timeout_seconds
    low, high = TIMEOUT_RANGE
    if timeout is not None and (type(timeout) not in (int, float) or not low <= timeout <= high):
        problems.append(("timeout_seconds", "must be a number %d..%d" % TIMEOUT_RANGE))
    for name in TLS_FILE_FIELDS:
        path = getattr(hook, name)
        if path is not None and not (isinstance(path, str) and path.startswith("/")):
            problems.append((name, "must be an absolute file path"))
    if hook.tls_client_key_file and not hook.tls_client_cert_file:
        problems.append(("tls_client_key_file", "needs tls_client_cert_file"))
    return problems


def uri_has_userinfo(uri: str) -> bool:
    try:
        return parse_uri(uri).username is not None
    except ValueError:
        return False


@lru_cache(maxsize=4096)     # once per attempt in the attempt log: a hook's uri repeats
def masked_uri(uri: str) -> str:
    """``uri`` with the password of its userinfo shown as MASK (``http://u:********@h/``)."""
    try:
        parts = parse_uri(uri)
    except ValueError:
        return uri if "@" not in uri else "(a uri that cannot be shown)"
    if parts.password is None:
        return uri
    return parts.with_password(MASK)
