"""``PUT /v{1,2}/api_auth`` ``{"data": {"api_key": ...}}``: Kazoo's login for scripts.

The key is one of an account's ``api_keys`` (eslhook.yaml); the answer (201, as
Kazoo) carries a new ``auth_token`` in the envelope, usable as X-Auth-Token for
that account and its sub-accounts for an hour (``auth.TokenBook.issue``).  A
wrong key counts as a failed authentication of the client's address, so the
limits of ``auth.authenticate`` (429 past the burst, asked before the key is
looked at) bound guessing.  The key is never logged nor echoed.
"""

from __future__ import annotations

from .context import ApiContext
from .envelope import ApiError, request_data, send, validation_error
from .limits import client_key
from .validation import add_error


class ApiAuth:
    def __init__(self, ctx: ApiContext):
        self.ctx = ctx

    def on_put(self, req, resp) -> None:
        ctx = self.ctx
        client = client_key(req.remote_addr)
        wait = ctx.throttle.retry_after(client)
        if wait:
            raise ApiError(429, "too many requests", {"message": (
                "too many failed authentications from %s; retry in %d s" % (client, wait))},
                headers={"Retry-After": str(wait)})
        api_key = request_data(req, ctx.max_body_bytes).get("api_key")
        if not isinstance(api_key, str) or not api_key.strip():
            errors: dict = {}
            add_error(errors, "api_key", "required", "Field is required: the account's "
                      "API key (accounts[].api_keys in eslhook.yaml)")
            raise validation_error(errors)
        account_id = ctx.tokens.account_of_api_key(api_key.strip())
        if account_id is None:
            ctx.throttle.failed(client)
            raise ApiError(401, "invalid credentials", {"message": "the API key is not valid"})
        token = ctx.tokens.issue(account_id)
        req.context.auth_token = token   # the envelope's auth_token, as Crossbar's
        account = ctx.accounts.accounts[account_id]
        send(req, resp, {"account_id": account_id, "account_name": account.name,
                         "apps": [], "is_reseller": False}, status=201)
