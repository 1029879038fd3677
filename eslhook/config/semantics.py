"""The one semantic layer: rules a JSON Schema cannot state.

Cross-field and cross-item rules (unique switch names and account ids,
known parents without cycles, one owner per realm, a default account that
exists) and values that must parse (``api.listen``, networks, hashed
tokens).  Each rule yields ``(key path, message)`` for data the schema has
already seen; it skips what the schema reports (wrong types), so a problem
is reported once.  Section rules (``delivery_problems``, ``api_problems``,
``account_problems``) also check the dataclasses built in code
(``eslhook/config/model.py``).
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Iterable, Iterator

from .messages import KeyPath

Problems = Iterator[tuple[KeyPath, str]]
NETWORK_KEYS = ("blocked_networks", "tenant_allowed_networks")
_SHA256_TOKEN = re.compile(r"sha256:[0-9a-f]{64}")
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


def format_listen(host: str, port: int) -> str:
    """(host, port) -> the ``api.listen`` text ``parse_listen`` reads back."""
    return "[%s]:%s" % (host, port) if ":" in str(host) else "%s:%s" % (host, port)


def is_network(text) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except (TypeError, ValueError):
        return False
    return True


def items(data: dict, key: str) -> Iterator[tuple[int, dict]]:
    """(index, item) of the well-formed items of a list (the schema reports the rest)."""
    value = data.get(key)
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                yield index, item


def duplicates(data: dict, list_key: str, key: str, what: str) -> Problems:
    first: dict = {}
    for index, item in items(data, list_key):
        value = item.get(key)
        if not isinstance(value, str):
            continue
        seen = first.setdefault(value, index)
        if seen != index:
            yield (list_key, index, key), "duplicate %s %r (also %s[%d])" % (
                what, value, list_key, seen)


def known_accounts(account_ids: Iterable[str]) -> str:
    ids = sorted(account_ids)
    if not ids:
        return "; no accounts are configured"
    more = ", ..." if len(ids) > 5 else ""
    return "; configured accounts: %s%s" % (", ".join(ids[:5]), more)


# -- sections: also the checks of dataclasses built in code --------------------------

def _networks(key: str, networks) -> Problems:
    for index, text in enumerate(networks if isinstance(networks, list) else ()):
        if isinstance(text, str) and not is_network(text):
            yield (key, index), (
                "not a network; write e.g. 169.254.0.0/16 or fe80::/10 (got %r)" % text)


def delivery_problems(delivery: dict) -> Problems:
    for key in NETWORK_KEYS:
        yield from _networks(key, delivery.get(key))


def _tokens(key: str, tokens) -> Problems:
    for index, token in enumerate(tokens if isinstance(tokens, list) else ()):
        if (isinstance(token, str) and token.startswith("sha256:")
                and not _SHA256_TOKEN.fullmatch(token)):
            yield (key, index), ("a hashed token must be sha256: and 64 lowercase "
                                 "hex digits (sha256sum of the token)")


def api_problems(api: dict) -> Problems:
    if isinstance(api.get("listen"), str):
        try:
            parse_listen(api["listen"])
        except ValueError as exc:
            yield ("listen",), str(exc)
    yield from _networks("blocked_networks", api.get("blocked_networks"))
    yield from _tokens("admin_tokens", api.get("admin_tokens"))


# storage's lease defaults (StorageConfig's): here, where a file that sets only one
# of the two is checked against the other's default
LEASE_SECONDS, RENEW_SECONDS = 10.0, 2.0


def storage_problems(storage: dict) -> Problems:
    from ..pg.dsn import dsn_problem      # pure: no driver
    dsn = storage.get("dsn")
    if storage.get("backend") == "postgresql" and dsn is None:
        yield ("dsn",), "backend postgresql needs a dsn (postgresql://user@host:port/db)"
    if isinstance(dsn, str):
        problem = dsn_problem(dsn)
        if problem:
            yield ("dsn",), problem
    lease = storage.get("lease_seconds", LEASE_SECONDS)
    renew = storage.get("renew_seconds", RENEW_SECONDS)
    if isinstance(lease, (int, float)) and isinstance(renew, (int, float)) \
            and not renew < lease:
        yield ("renew_seconds",), ("must be below lease_seconds (%g): a lease must be "
                                   "renewed before it runs out" % lease)


def payload_problems(payload: dict) -> Problems:
    pattern = payload.get("emergency_numbers")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as exc:
            yield ("emergency_numbers",), "not a regular expression: %s" % exc


def account_problems(account: dict) -> Problems:
    yield from _tokens("auth_tokens", account.get("auth_tokens"))
    yield from _tokens("api_keys", account.get("api_keys"))


# -- the whole eslhook.yaml -----------------------------------------------------------

def non_finite_numbers(document: object, path: KeyPath = ()) -> Problems:
    """YAML's ``.nan`` and ``.inf`` are numbers to a JSON Schema, but no delay,
    timeout or fraction of eslhook can be one (a NaN timeout never fires)."""
    if isinstance(document, float) and not math.isfinite(document):
        yield path, "must be a finite number (got %r)" % document
    elif isinstance(document, dict):
        for key, value in document.items():
            yield from non_finite_numbers(value, path + (key,))
    elif isinstance(document, (list, tuple)):
        for index, value in enumerate(document):
            yield from non_finite_numbers(value, path + (index,))


def _under(prefix: KeyPath, problems: Problems) -> Problems:
    return ((prefix + path, message) for path, message in problems)


def config_problems(data: dict) -> Problems:
    yield from non_finite_numbers(data)
    yield from duplicates(data, "switches", "name", "switch name")
    yield from duplicates(data, "accounts", "id", "account id")
    account_ids = {a["id"] for _, a in items(data, "accounts") if isinstance(a.get("id"), str)}
    yield from _account_tree(data, account_ids)
    default = data.get("default_account_id")
    if isinstance(default, str) and default not in account_ids:
        yield ("default_account_id",), "unknown account %r%s" % (
            default, known_accounts(account_ids))
    api, delivery = _mapping(data, "api"), _mapping(data, "delivery")
    yield from _under(("api",), api_problems(api))
    if "blocked_networks" in api and "blocked_networks" in delivery:
        yield ("api", "blocked_networks"), (
            "api.blocked_networks is the old name of delivery.blocked_networks (which now "
            "also applies when delivering); keep only delivery.blocked_networks")
    yield from _under(("delivery",), delivery_problems(delivery))
    yield from _under(("storage",), storage_problems(_mapping(data, "storage")))
    yield from _under(("payload",), payload_problems(_mapping(data, "payload")))
    for index, account in items(data, "accounts"):
        yield from _under(("accounts", index), account_problems(account))


def _mapping(data: dict, key: str) -> dict:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _account_tree(data: dict, account_ids: set[str]) -> Problems:
    parents: dict[str, tuple[int, str]] = {}
    realm_owner: dict[str, tuple[int, int]] = {}
    for index, account in items(data, "accounts"):
        parent_id = account.get("parent_id")
        if isinstance(parent_id, str):
            if parent_id not in account_ids:
                yield ("accounts", index, "parent_id"), "unknown account %r%s" % (
                    parent_id, known_accounts(account_ids))
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


def _parent_cycles(parents: dict[str, tuple[int, str]]) -> Problems:
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
