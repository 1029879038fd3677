"""``GET /v{1,2}/accounts``: the accounts a token can act on, with names and parents.

An admin token reaches every configured account; an account token its own and
their descendants (the same reach as ``Principal.reaches``).  The console's
account picker reads it; a script can too.  Config order is kept.
"""

from __future__ import annotations

import falcon

from ..accounts import AccountDirectory
from .auth import Principal
from .context import ApiContext
from .envelope import send


def reachable_accounts(principal: Principal, directory: AccountDirectory) -> list[dict]:
    """Each account in reach as ``{id, name, parent_id}``, in config order (pure)."""
    return [{"id": account.id, "name": account.name, "parent_id": account.parent_id}
            for account in directory.accounts.values()
            if principal.reaches(account.id, directory)]


class Accounts:
    def __init__(self, context: ApiContext):
        self.context = context

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal = self.context.authenticate(req)
        send(req, resp, reachable_accounts(principal, self.context.accounts))
