"""What eslhook tells hooks about itself, and per-call sequence numbers (pure)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any, Iterable, Mapping

from eslhook.hooks.model import Hook

GREGORIAN_OFFSET = 62167219200      # seconds from year 0 to 1970: Kazoo's timestamps
DISABLED_EVENT = "webhook_disabled"
MAX_OPEN_CALLS = 100_000


def disabled_notice(hook: Hook, reason: str, now: float) -> dict[str, Any]:
    """The ``webhook_disabled`` payload announcing that ``hook`` was disabled.
    Never carries the hook's secret."""
    return {"hook_event": DISABLED_EVENT, "account_id": hook.account_id,
            "event_id": "webhook_disabled-%s" % uuid.uuid4().hex,
            "timestamp": int(now) + GREGORIAN_OFFSET, "hook_id": hook.id,
            "hook_name": hook.name, "hook_uri": hook.uri, "disable_reason": reason}


def notice_targets(hooks: Iterable[Hook], disabled: Hook) -> list[Hook]:
    """The account's other enabled hooks of type webhook_disabled or all."""
    return [h for h in hooks if h.account_id == disabled.account_id and h.id != disabled.id
            and h.enabled and h.hook in (DISABLED_EVENT, "all")]


class CallSequences:
    """Per-call counters (1, 2, 3...) stamped on payloads as ``sequence`` so a receiver
    can check order itself.  A call is forgotten after its channel_destroy; the oldest
    calls are forgotten beyond MAX_OPEN_CALLS (their destroy was lost)."""

    def __init__(self, max_calls: int = MAX_OPEN_CALLS):
        self._next: dict[str, int] = {}
        self._max_calls = max_calls

    def stamp(self, payload: dict) -> None:
        call_id = payload.get("call_id")
        if not call_id:
            return
        number = self._next.pop(call_id, 1)   # re-inserted: the dict stays oldest first
        payload["sequence"] = number
        if payload.get("hook_event") != "channel_destroy":
            self._next[call_id] = number + 1
            if len(self._next) > self._max_calls:
                del self._next[next(iter(self._next))]

    def __len__(self) -> int:
        return len(self._next)


def disable_change(hook_id: str, reason: str):
    """A ``HookStore.update`` change: the hook disabled with ``reason`` (result: the hook
    as it was, or None if it is gone or already disabled)."""
    def change(hooks: list[Hook]):
        for index, hook in enumerate(hooks):
            if hook.id == hook_id and hook.enabled:
                hooks[index] = replace(hook, enabled=False, disable_reason=reason)
                return hooks, hook
        return None, None
    return change


def hooks_by_id(hooks: Iterable[Hook]) -> Mapping[str, Hook]:
    return {hook.id: hook for hook in hooks}
