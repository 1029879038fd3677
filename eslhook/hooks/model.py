"""A webhook as stored in hooks.yaml (field names follow Kazoo's webhooks.json)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field, fields
from datetime import datetime
from types import MappingProxyType
from typing import Any, Mapping

from .. import events
from ..netpolicy import OPERATOR, TENANT

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
    hook: str                    # one of HOOK_EVENTS or "all"
    http_verb: str = "post"
    format: str = "form-data"
    retries: int = 2             # retries after the first try, 0..10
    enabled: bool = True
    include_subaccounts: bool = False
    include_internal_legs: bool = True
    custom_data: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
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

    def __post_init__(self):
        # the schema (schemas/webhook.schema.json) gives the friendly errors;
        # this only keeps a hook built in code from being nonsense
        for name, ok, allowed in (
                ("hook", self.hook in HOOK_TYPES, ", ".join(HOOK_TYPES)),
                ("http_verb", self.http_verb in HTTP_VERBS, ", ".join(HTTP_VERBS)),
                ("format", self.format in BODY_FORMATS, ", ".join(BODY_FORMATS)),
                ("retries", type(self.retries) is int and 0 <= self.retries <= 10, "0..10"),
                ("written_by", self.written_by in WRITERS, "account, operator or absent")):
            if not ok:
                raise ValueError("Hook.%s: must be %s (got %r)" % (name, allowed,
                                                                    getattr(self, name)))
        for name in ("secret", "previous_secret"):
            problem = secret_problem(getattr(self, name))
            if problem:   # the value itself is never echoed
                raise ValueError("Hook.%s: %s" % (name, problem))
        if self.previous_secret_expires is not None \
                and parse_utc(self.previous_secret_expires) is None:
            raise ValueError("Hook.previous_secret_expires: must be an ISO 8601 time with "
                             "its zone (got %r)" % (self.previous_secret_expires,))
        if not isinstance(self.custom_data, MappingProxyType):  # keep it read-only
            object.__setattr__(self, "custom_data", MappingProxyType(dict(self.custom_data)))

    @property
    def network_policy(self) -> str:
        """The name of the network policy its deliveries follow."""
        return network_policy_of(self.written_by)

    @property
    def events(self) -> tuple[str, ...]:
        return HOOK_EVENTS + NOTICE_EVENTS if self.hook == events.ALL else (self.hook,)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Hook":
        """Build from a validated hooks.yaml entry (absent keys take defaults)."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError("Hook: unknown key(s): %s" % ", ".join(map(str, unknown)))
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Field order as declared: the stable key order of hooks.yaml.

        Optional fields (``disable_reason``, the secrets) are left out when unset,
        ``custom_data`` when empty.  This is what hooks.yaml stores, secrets
        included: use ``public_dict`` for anything shown to a client.
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "custom_data":
                if value:
                    out[f.name] = dict(value)
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
                             "previous_secret_expires", "written_by", "ui_metadata", "group"})
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
