"""HookIndex: which hooks receive a payload."""

from __future__ import annotations

import pytest

from eslhook.accounts import AccountDirectory
from eslhook.config import AccountConfig
from eslhook.hooks.index import HookIndex
from eslhook.hooks.model import HOOK_EVENTS, Hook

# an account tree: RESELLER > ACME > ACME_SUPPORT, and OTHER beside it
RESELLER = "a0" * 16
ACME = "4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"
ACME_SUPPORT = "9a3e5d7c1b2f4e6a8c0d2e4f6a8b0c1d"
OTHER = "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"
ACCOUNTS = AccountDirectory([
    AccountConfig(id=RESELLER),
    AccountConfig(id=ACME, parent_id=RESELLER),
    AccountConfig(id=ACME_SUPPORT, parent_id=ACME),
    AccountConfig(id=OTHER),
])


def hook(n: int, account_id: str, event: str = "all", **fields) -> Hook:
    return Hook(id="%032x" % n, account_id=account_id, name="hook %d" % n,
                uri="http://127.0.0.1:9000/%d" % n, hook=event, **fields)


def payload(account_id: str | None, event: str = "channel_create", **fields) -> dict:
    out = {"hook_event": event, "call_id": "c1", "is_internal_leg": False, **fields}
    if account_id is not None:
        out["account_id"] = account_id
    return out


def names(hooks) -> list[str]:
    return [h.name for h in hooks]


def test_a_hook_receives_only_its_event_type_and_all_receives_every_type():
    index = HookIndex([hook(1, ACME, "channel_create"), hook(2, ACME, "channel_answer"),
                       hook(3, ACME, "channel_destroy"), hook(4, ACME, "all")], ACCOUNTS)
    assert names(index.match(payload(ACME, "channel_create"))) == ["hook 1", "hook 4"]
    assert names(index.match(payload(ACME, "channel_answer"))) == ["hook 2", "hook 4"]
    assert names(index.match(payload(ACME, "channel_destroy"))) == ["hook 3", "hook 4"]
    assert index.match(payload(ACME, "channel_park")) == ()  # not a webhook event


def test_hooks_of_other_accounts_do_not_fire():
    index = HookIndex([hook(1, ACME), hook(2, OTHER)], ACCOUNTS)
    assert names(index.match(payload(ACME))) == ["hook 1"]
    assert names(index.match(payload(OTHER))) == ["hook 2"]
    assert index.match(payload("f" * 32)) == ()  # an account nobody configured


def test_a_disabled_hook_never_fires():
    index = HookIndex([hook(1, ACME, enabled=False, disable_reason="paused"), hook(2, ACME)],
                      ACCOUNTS)
    assert [names(index.match(payload(ACME, e))) for e in HOOK_EVENTS] == [["hook 2"]] * len(
        HOOK_EVENTS)


def test_include_subaccounts_reaches_every_descendant_and_only_them():
    index = HookIndex([hook(1, RESELLER, include_subaccounts=True),
                       hook(2, ACME, include_subaccounts=True),
                       hook(3, ACME)], ACCOUNTS)
    assert names(index.match(payload(RESELLER))) == ["hook 1"]
    assert names(index.match(payload(ACME))) == ["hook 1", "hook 2", "hook 3"]
    assert names(index.match(payload(ACME_SUPPORT))) == ["hook 1", "hook 2"]  # not hook 3
    assert index.match(payload(OTHER)) == ()  # not a descendant


def test_without_include_subaccounts_a_parent_hook_ignores_sub_account_calls():
    index = HookIndex([hook(1, ACME, include_subaccounts=False)], ACCOUNTS)
    assert index.match(payload(ACME_SUPPORT)) == ()
    assert names(index.match(payload(ACME))) == ["hook 1"]


def test_include_internal_legs_false_drops_internal_legs_only():
    index = HookIndex([hook(1, ACME, include_internal_legs=False), hook(2, ACME)], ACCOUNTS)
    assert names(index.match(payload(ACME, is_internal_leg=True))) == ["hook 2"]
    assert names(index.match(payload(ACME, is_internal_leg=False))) == ["hook 1", "hook 2"]
    # a payload that does not say is treated as an ordinary leg
    no_flag = payload(ACME)
    del no_flag["is_internal_leg"]
    assert names(index.match(no_flag)) == ["hook 1", "hook 2"]
    assert names(index.match(payload(ACME, is_internal_leg="true"))) == ["hook 2"]


def test_inherited_hooks_also_honour_internal_legs():
    index = HookIndex([hook(1, ACME, include_subaccounts=True, include_internal_legs=False)],
                      ACCOUNTS)
    assert names(index.match(payload(ACME_SUPPORT))) == ["hook 1"]
    assert index.match(payload(ACME_SUPPORT, is_internal_leg=True)) == ()


@pytest.mark.parametrize("unassigned", [payload(None), payload(""), payload(ACME, event=""),
                                        {"call_id": "c1"}])
def test_a_payload_without_account_or_event_matches_nothing(unassigned):
    index = HookIndex([hook(1, ACME), hook(2, RESELLER, include_subaccounts=True)], ACCOUNTS)
    assert index.match(unassigned) == ()


def test_matches_keep_file_order_and_are_the_hook_objects():
    hooks = [hook(n, ACME if n % 2 else OTHER) for n in range(10)]
    index = HookIndex(hooks, ACCOUNTS)
    matched = index.match(payload(ACME))
    assert matched == tuple(hooks[1::2])
    assert all(m is h for m, h in zip(matched, hooks[1::2]))
    assert len(index) == 10


def test_an_empty_index_matches_nothing():
    assert HookIndex([], ACCOUNTS).match(payload(ACME)) == ()


def test_ten_thousand_hooks_match_exactly_the_right_ones():
    """Spread over many accounts: the lookup still returns exactly each account's hooks."""
    accounts = [AccountConfig(id="%032x" % (0xacc << 100 | n)) for n in range(1000)]
    directory = AccountDirectory(accounts)
    hooks = [hook(n, accounts[n % 1000].id, HOOK_EVENTS[n % 3]) for n in range(10_000)]
    index = HookIndex(hooks, directory)
    for n in (0, 1, 499, 999):
        for event in HOOK_EVENTS:
            expected = [h for h in hooks if h.account_id == accounts[n].id and h.hook == event]
            assert index.match(payload(accounts[n].id, event)) == tuple(expected)
    assert sum(len(index.match(payload(a.id, e))) for a in accounts for e in HOOK_EVENTS) == 10_000
