"""What eslhook tells hooks about itself (pure)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Final, Iterable, Mapping

from eslhook.hooks.model import Hook, masked_uri
from eslhook.mapping import GREGORIAN_UNIX_OFFSET_SECONDS
from eslhook.payload import DisabledNotice

if TYPE_CHECKING:       # a type only: the store is I/O, this module is pure
    from eslhook.hooks.repository import Change

DISABLED_EVENT: Final = "webhook_disabled"


def disabled_notice(hook: Hook, reason: str, now: float) -> DisabledNotice:
    """The ``webhook_disabled`` payload announcing that ``hook`` was disabled.
    Never carries the hook's secret."""
    return {"hook_event": DISABLED_EVENT, "account_id": hook.account_id,
            "event_id": "webhook_disabled-%s" % uuid.uuid4().hex,
            "timestamp": int(now) + GREGORIAN_UNIX_OFFSET_SECONDS, "hook_id": hook.id,
            "hook_name": hook.name, "hook_uri": masked_uri(hook.uri), "disable_reason": reason}


def notice_targets(hooks: Iterable[Hook], disabled: Hook) -> list[Hook]:
    """The account's other enabled hooks of type webhook_disabled or all."""
    return [h for h in hooks if h.account_id == disabled.account_id and h.id != disabled.id
            and h.enabled and DISABLED_EVENT in h.events]


def disable_change(hook_id: str, reason: str) -> Change[Hook | None]:
    """A ``HookStore.update`` change: the hook disabled with ``reason`` (result: the hook
    as it was, or None if it is gone or already disabled)."""
    def change(hooks: list[Hook]) -> tuple[list[Hook] | None, Hook | None]:
        for index, hook in enumerate(hooks):
            if hook.id == hook_id and hook.enabled:
                hooks[index] = replace(hook, enabled=False, disable_reason=reason)
                return hooks, hook
        return None, None
    return change


def hooks_by_id(hooks: Iterable[Hook]) -> Mapping[str, Hook]:
    return {hook.id: hook for hook in hooks}
