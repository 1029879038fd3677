"""Which hooks receive a payload: one dict lookup per event.

Everything that depends only on the hooks and the account tree (enabled,
event type, ``all``, inheritance through ``include_subaccounts``,
``include_internal_legs``) is resolved when the index is built, so matching
costs the same for 10 hooks or 10,000.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..accounts import AccountDirectory
from ..payload import ChannelPayload
from .model import Hook

_Table = dict[tuple[str, str], tuple[Hook, ...]]


class HookIndex:
    """Immutable once built; a reload builds a new index and swaps it in."""

    def __init__(self, hooks: Iterable[Hook], accounts: AccountDirectory):
        self.hooks: tuple[Hook, ...] = tuple(hooks)
        # every enabled hook takes ordinary legs; only some take internal ones
        self._for_ordinary_legs, self._for_internal_legs = _build_tables(self.hooks, accounts)

    def appended(self, new: Iterable[Hook], accounts: AccountDirectory) -> "HookIndex":
        """This index with ``new`` hooks added after the others (an API create):
        only the keys they reach are copied, not the whole index rebuilt."""
        new = tuple(new)
        index = object.__new__(HookIndex)
        index.hooks = self.hooks + new
        added_ordinary, added_internal = _build_tables(new, accounts)
        index._for_ordinary_legs = _merged(self._for_ordinary_legs, added_ordinary)
        index._for_internal_legs = _merged(self._for_internal_legs, added_internal)
        return index

    def match(self, payload: ChannelPayload) -> tuple[Hook, ...]:
        """The hooks, in file order, that receive ``payload``.

        Uses the payload's ``account_id``, ``hook_event`` and ``is_internal_leg``;
        a payload without an account or event matches nothing.
        """
        account_id = payload.get("account_id")
        event = payload.get("hook_event")
        if not account_id or not event:
            return ()
        table = (self._for_internal_legs if _is_true(payload.get("is_internal_leg"))
                 else self._for_ordinary_legs)
        return table.get((account_id, event), ())

    def __len__(self) -> int:
        return len(self.hooks)

    def __repr__(self) -> str:
        return "HookIndex(%d hooks, %d keys)" % (len(self.hooks), len(self._for_ordinary_legs))


def _is_true(value: Any) -> bool:
    # a bool from mapping; tolerate the string form a header would carry
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _merged(table: _Table, added: _Table) -> _Table:
    merged = dict(table)
    for key, hooks in added.items():
        merged[key] = merged.get(key, ()) + hooks
    return merged


def _build_tables(hooks: tuple[Hook, ...], accounts: AccountDirectory) -> tuple[_Table, _Table]:
    ordinary: dict[tuple[str, str], list[Hook]] = {}
    internal: dict[tuple[str, str], list[Hook]] = {}
    for hook in hooks:
        if not hook.enabled:
            continue
        reached = [hook.account_id]
        if hook.include_subaccounts:
            reached += accounts.descendants(hook.account_id)
        for account_id in reached:
            for event in hook.events:
                ordinary.setdefault((account_id, event), []).append(hook)
                if hook.include_internal_legs:
                    internal.setdefault((account_id, event), []).append(hook)
    return ({key: tuple(found) for key, found in ordinary.items()},
            {key: tuple(found) for key, found in internal.items()})
