"""A webhook as stored in hooks.yaml (field names follow Kazoo's webhooks.json)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Mapping

HOOK_EVENTS = ("channel_create", "channel_answer", "channel_destroy")
HTTP_VERBS = ("get", "post", "put")
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

    def __post_init__(self):
        # the schema (schemas/webhook.schema.json) gives the friendly errors;
        # this only keeps a hook built in code from being nonsense
        for name, ok, allowed in (
                ("hook", self.hook in HOOK_EVENTS + ("all",), "%s or all" % ", ".join(HOOK_EVENTS)),
                ("http_verb", self.http_verb in HTTP_VERBS, ", ".join(HTTP_VERBS)),
                ("format", self.format in BODY_FORMATS, ", ".join(BODY_FORMATS)),
                ("retries", type(self.retries) is int and 0 <= self.retries <= 10, "0..10")):
            if not ok:
                raise ValueError("Hook.%s: must be %s (got %r)" % (name, allowed,
                                                                    getattr(self, name)))
        if not isinstance(self.custom_data, MappingProxyType):  # keep it read-only
            object.__setattr__(self, "custom_data", MappingProxyType(dict(self.custom_data)))

    @property
    def events(self) -> tuple[str, ...]:
        return HOOK_EVENTS if self.hook == "all" else (self.hook,)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Hook":
        """Build from a validated hooks.yaml entry (absent keys take defaults)."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError("Hook: unknown key(s): %s" % ", ".join(map(str, unknown)))
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Field order as declared: the stable key order of hooks.yaml.

        ``disable_reason`` is left out when unset, ``custom_data`` when empty.
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "custom_data":
                if value:
                    out[f.name] = dict(value)
            elif not (f.name == "disable_reason" and value is None):
                out[f.name] = value
        return out
