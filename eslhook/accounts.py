"""The account tree: ids, SIP realms and parent/child links, from config."""

from __future__ import annotations

from collections.abc import Iterable

from .config import AccountConfig, Config


class AccountDirectory:
    """Read-only lookups over the configured accounts.

    ``account_variable`` and ``default_account_id`` travel with it because
    account resolution (in ``mapping``) needs them and nothing else does.
    """

    def __init__(self, accounts: Iterable[AccountConfig] = (), *,
                 account_variable: str = "account_id",
                 default_account_id: str | None = None):
        self.accounts = {a.id: a for a in accounts}
        self.account_variable = account_variable
        self.default_account_id = default_account_id
        self.by_realm: dict[str, str] = {}
        for account in self.accounts.values():
            for realm in account.realms:
                self.by_realm.setdefault(realm.lower(), account.id)
        self._children: dict[str, list[str]] = {}
        for account in self.accounts.values():
            if account.parent_id:
                self._children.setdefault(account.parent_id, []).append(account.id)
        # worked out once: the mapping asks for every event
        self._resellers = {a: self._find_reseller(a) for a in self.accounts}

    @classmethod
    def from_config(cls, config: Config) -> "AccountDirectory":
        return cls(config.accounts, account_variable=config.account_variable,
                   default_account_id=config.default_account_id)

    def __contains__(self, account_id: object) -> bool:
        return account_id in self.accounts

    def account_for_realm(self, realm: str | None) -> str | None:
        return self.by_realm.get(realm.lower()) if realm else None

    def ancestors(self, account_id: str) -> list[str]:
        """Parent, grandparent, ... (cycles are cut; config rejects them)."""
        chain, seen = [], {account_id}
        parent = self.accounts.get(account_id)
        parent_id = parent.parent_id if parent else None
        while parent_id and parent_id not in seen:
            chain.append(parent_id)
            seen.add(parent_id)
            parent = self.accounts.get(parent_id)
            parent_id = parent.parent_id if parent else None
        return chain

    def reseller_of(self, account_id: str) -> str | None:
        """The account's reseller_id: its nearest ancestor flagged ``reseller``,
        else the top of its tree (Kazoo falls back to the master account)."""
        return self._resellers.get(account_id)

    def _find_reseller(self, account_id: str) -> str:
        chain = self.ancestors(account_id)
        for ancestor in chain:
            known = self.accounts.get(ancestor)
            if known is not None and known.reseller:
                return ancestor
        return chain[-1] if chain else account_id

    def descendants(self, account_id: str) -> list[str]:
        out, stack, seen = [], list(self._children.get(account_id, ())), {account_id}
        while stack:
            child = stack.pop()
            if child in seen:
                continue
            seen.add(child)
            out.append(child)
            stack.extend(self._children.get(child, ()))
        return out
