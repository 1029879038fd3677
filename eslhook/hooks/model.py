"""A webhook as stored in hooks.yaml (field names follow Kazoo's webhooks.json)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

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

    @property
    def events(self) -> tuple[str, ...]:
        return HOOK_EVENTS if self.hook == "all" else (self.hook,)
