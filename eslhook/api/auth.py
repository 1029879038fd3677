"""Who is asking: Crossbar's X-Auth-Token, checked in constant time.

Tokens come from ``accounts[].auth_tokens`` (the account and its
sub-accounts) and ``api.admin_tokens`` (every account), each either plain or
``sha256:<hex>`` of the token, so the config file need not hold the secret.
Only SHA-256 digests are kept in memory and compared, with
``hmac.compare_digest`` over every stored token (no early exit).

Failed tokens are throttled per client address (``limits.FailureThrottle``):
past the burst, every request of that address that needs a token gets 429
with Retry-After *before its token is looked at*, a good one included;
answering a good token would let the 429 tell a guesser it guessed right.
Requests without any token guess nothing and are not counted.

API keys (``accounts[].api_keys``, plain or ``sha256:``) are exchanged for a
token by ``PUT /v2/api_auth`` (``api_auth.py``): ``TokenBook.issue`` makes a
random one, valid ``ISSUED_TOKEN_SECONDS`` (Kazoo's default, 1 hour), for
that account as its ``auth_tokens`` are.  Issued tokens live in memory only: a
restart ends them and clients log in again, as they do when one expires.  At
most ``MAX_ISSUED_TOKENS`` live at once (the oldest goes first).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import falcon

from ..accounts import AccountDirectory
from .envelope import ApiError, request_json
from .limits import FailureThrottle, client_key

_BODY_METHODS = frozenset({"PUT", "POST", "PATCH"})
ISSUED_TOKEN_SECONDS = 3600.0
MAX_ISSUED_TOKENS = 10_000


@dataclass(frozen=True)
class Principal:
    """A valid token: admin, or the accounts whose token it is."""
    admin: bool
    accounts: frozenset[str]

    def reaches(self, account_id: str, directory: AccountDirectory) -> bool:
        """An account is in reach if it is, or descends from, a token's account."""
        if self.admin:
            return True
        if account_id not in directory:
            return False
        return account_id in self.accounts or any(
            a in self.accounts for a in directory.ancestors(account_id))


def _digest(token_spec: str) -> bytes:
    if token_spec.startswith("sha256:"):
        return bytes.fromhex(token_spec[len("sha256:"):])
    return hashlib.sha256(token_spec.encode("utf-8")).digest()


class TokenBook:
    """Token digests -> account (None: admin)."""

    def __init__(self, directory: AccountDirectory, admin_tokens: Iterable[str] = (),
                 clock=time.monotonic):
        self._entries: list[tuple[bytes, str | None]] = [
            (_digest(t), None) for t in admin_tokens]
        self._api_keys: list[tuple[bytes, str]] = []
        for account in directory.accounts.values():
            self._entries += [(_digest(t), account.id) for t in account.auth_tokens]
            self._api_keys += [(_digest(k), account.id) for k in account.api_keys]
        # digest of an issued token -> (account id, expiry on ``clock``), oldest first
        self._issued: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    def account_of_api_key(self, api_key: str) -> str | None:
        """The account whose API key this is (every key compared), or None."""
        presented = hashlib.sha256(api_key.encode("utf-8")).digest()
        found = None
        for stored, account_id in self._api_keys:
            if hmac.compare_digest(stored, presented):
                found = account_id
        return found

    def issue(self, account_id: str) -> str:
        """A new random token for the account, valid ISSUED_TOKEN_SECONDS."""
        token = secrets.token_hex(32)
        now = self._clock()
        while self._issued and (len(self._issued) >= MAX_ISSUED_TOKENS
                                or next(iter(self._issued.values()))[1] <= now):
            self._issued.popitem(last=False)
        self._issued[hashlib.sha256(token.encode("ascii")).digest()] = (
            account_id, now + ISSUED_TOKEN_SECONDS)
        return token

    def _issued_account(self, presented: bytes) -> str | None:
        # a 256-bit random token: a dict lookup's timing tells nothing usable
        issued = self._issued.get(presented)
        if issued is None or issued[1] <= self._clock():
            return None
        return issued[0]

    def identify(self, token: str) -> Principal | None:
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        issued = self._issued_account(presented)
        if issued is not None:
            return Principal(False, frozenset({issued}))
        admin, accounts = False, set()
        for stored, account_id in self._entries:   # every entry, match or not
            if hmac.compare_digest(stored, presented):
                if account_id is None:
                    admin = True
                else:
                    accounts.add(account_id)
        if not admin and not accounts:
            return None
        return Principal(admin, frozenset(accounts))


def presented_token(req: falcon.Request, max_body_bytes: int) -> str | None:
    """X-Auth-Token, else ``auth_token`` in the query, else in the JSON body."""
    token = req.get_header("X-Auth-Token") or req.get_param("auth_token")
    if token:
        return token.strip()
    if req.method in _BODY_METHODS:
        try:
            token = request_json(req, max_body_bytes).get("auth_token")
        except ApiError:  # the handler reports the body; here it just has no token
            return None
        return token.strip() if isinstance(token, str) else None
    return None


def authenticate(req: falcon.Request, book: TokenBook, max_body_bytes: int,
                 throttle: FailureThrottle | None = None) -> Principal:
    client = client_key(req.remote_addr)
    wait = throttle.retry_after(client) if throttle is not None else 0
    if wait:
        raise ApiError(429, "too many requests", {"message": (
            "too many failed authentications from %s; retry in %d s" % (client, wait))},
            headers={"Retry-After": str(wait)})
    token = presented_token(req, max_body_bytes)
    principal = book.identify(token) if token else None
    if principal is None:
        if token and throttle is not None:
            throttle.failed(client)
        raise ApiError(401, "invalid credentials", {"message": (
            "an X-Auth-Token header is required" if not token
            else "the auth token is not valid")})
    req.context.auth_token = token   # echoed in the envelope, as Crossbar does
    return principal


def authorize(req: falcon.Request, book: TokenBook, directory: AccountDirectory,
              account_id: str, max_body_bytes: int,
              throttle: FailureThrottle | None = None) -> Principal:
    """401 without a valid token, 403 outside its reach, 404 for an unknown account.

    An account token gets 403 for an account that does not exist, so it
    cannot probe which account ids exist elsewhere; an admin gets 404.
    """
    principal = authenticate(req, book, max_body_bytes, throttle)
    if not principal.reaches(account_id, directory):
        raise ApiError(403, "forbidden", {"message": (
            "this token may not act on account %s" % account_id)})
    if account_id not in directory:
        raise ApiError(404, "bad identifier", {"account_id": {"not_found": {
            "message": "account %s does not exist" % account_id}}})
    return principal
