"""``/v{1,2}/accounts/{account_id}/webhooks[/{hook_id}]``: Crossbar's webhooks.

Every change is a locked read-modify-write of the hook repository (hooks.yaml
in embedded mode, ``HookStore.update``): validated first, spliced into the file
so only the touched entry changes, written atomically, in force for the next event; a
file edited by hand since it was last read, or being written, gets 409 and
is left alone.  The listing is paginated as Crossbar's (``paging.py``).  ``account_id`` always comes from the path: one in the body
must name the same account (a hook never moves between accounts), and an
``id`` in a create is ignored (the server assigns it).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from datetime import datetime, timezone
from typing import Callable

import falcon

from ..config import ConfigError
from ..delivery.signing import generate_secret, rotated
from ..hooks.model import (TLS_FILE_FIELDS, WRITTEN_BY_ACCOUNT, Hook, network_policy_of,
                           semantic_problems)
from ..hooks.repository import HooksConflict, HooksUnavailable
from .auth import Principal
from .context import ApiContext
from .envelope import ApiError, request_data, revision_of, send, validation_error
from .paging import page_envelope, page_request
from .listing import listing_filter
from .validation import add_error, kazoo_coerced, webhook_errors
from .writeonly import check_tls_writer, masked_view, unmasked

SUMMARY_FIELDS = ("id", "name", "uri", "hook", "enabled", "disable_reason", "group")
# Never returned (signing keys); kept as they are when a client replaces or
# patches the hook without naming them.
HIDDEN_FIELDS = frozenset({"secret", "previous_secret"})
SERVER_KEPT_FIELDS = HIDDEN_FIELDS | {"previous_secret_expires", *TLS_FILE_FIELDS}
# Never returned either: set from the token on every write (see writer())
NOT_SHOWN_FIELDS = HIDDEN_FIELDS | {"written_by"}
# "secret": "generate" asks for a new random secret, shown in that response only
GENERATE = "generate"
_HOOK_ID = re.compile(r"[0-9a-f]{32}")


def full_view(hook: Hook) -> dict:
    """The whole hook with every default filled in, secrets left out (write-only
    values masked: writeonly.py)."""
    view = dict(hook.to_dict(), custom_data=dict(hook.custom_data),
                disable_reason=hook.disable_reason)
    return masked_view({key: value for key, value in view.items()
                        if key not in NOT_SHOWN_FIELDS})


def _keep_server_fields(old: Hook, new: Hook, data: dict) -> Hook:
    kept = {name: getattr(old, name) for name in SERVER_KEPT_FIELDS
            if name not in data and hasattr(old, name)}
    return dataclasses.replace(new, **kept) if kept else new


def changed_hook(old: Hook, new: Hook, data: dict) -> Hook:
    """The hook a POST/PATCH stores: secrets not named are kept; a new ``secret``
    rotates (the old one signs too for 24 h, as ``previous_secret``); ``null``
    stops signing altogether.  Masked write-only values sent back keep old's."""
    new = _keep_server_fields(old, unmasked(new, old), data)
    if "secret" not in data or "previous_secret" in data or new.secret == old.secret:
        return new
    if new.secret is None:
        return dataclasses.replace(new, previous_secret=None, previous_secret_expires=None)
    before = dataclasses.replace(new, secret=old.secret, previous_secret=old.previous_secret,
                                 previous_secret_expires=old.previous_secret_expires)
    return rotated(before, new.secret, datetime.now(timezone.utc))


def shown_once(hook: Hook, data: dict) -> dict:
    """The response to a change: the full view, plus the secret if this request
    generated it (the only time it is ever shown)."""
    view = full_view(hook)
    if data.get("secret") == GENERATE:
        view["secret"] = hook.secret
    return view


def summary_view(hook: Hook) -> dict:
    """Kazoo's listing row; ``group`` only when the hook has one, as Kazoo's view."""
    view = full_view(hook)
    return {key: view[key] for key in SUMMARY_FIELDS if key in view}


def hook_revision(hook: Hook) -> str:
    return revision_of(full_view(hook))


def writer(principal: Principal, data: dict, old: Hook | None) -> str | None:
    """``written_by`` for a write: an account token makes the hook a tenant's; an admin
    token makes it the operator's only when it names the uri (renaming or re-enabling a
    tenant's hook does not vouch for where it points)."""
    if not principal.admin:
        return WRITTEN_BY_ACCOUNT
    if old is not None and "uri" not in data:
        return old.written_by
    return None


def build_hook(ctx: ApiContext, data: dict, *, account_id: str, hook_id: str,
               written_by: str | None) -> Hook:
    """A hook from request data, or a 400 naming every problem."""
    data = kazoo_coerced(data)
    errors: dict = {}
    if data.get("account_id", account_id) != account_id:
        add_error(errors, "account_id", "immutable",
                  "must be the account in the URL (%s); a hook cannot be moved to "
                  "another account: create it there and delete this one" % account_id,
                  target=account_id, value=data["account_id"])
    if data.get("id", hook_id) != hook_id:
        add_error(errors, "id", "immutable", "must be the id in the URL (%s)" % hook_id,
                  target=hook_id, value=data["id"])
    data["account_id"], data["id"] = account_id, hook_id
    if data.get("secret") == GENERATE:
        data["secret"] = generate_secret()
    errors.update(webhook_errors(data, ctx.policies.named(network_policy_of(written_by))))
    if "secret" in errors:
        for detail in errors["secret"].values():
            detail["message"] += ' (or "generate" for a new random secret)'
    if errors:
        raise validation_error(errors)
    if data.get("enabled", True):   # enabling clears why it was disabled
        data["disable_reason"] = None
    data["written_by"] = written_by
    hook = Hook.from_dict(data, validated=True)        # webhook_errors checked the schema
    for field, message in semantic_problems(hook):     # the checks past it, once
        add_error(errors, field, "invalid", "Value %s" % message)
    if errors:
        raise validation_error(errors)
    return hook


def find_hook(ctx: ApiContext, account_id: str, hook_id: str) -> Hook:
    """The account's hook as in the file now, or 404."""
    hooks = ctx.current_hooks()
    return hooks[_index_of(hooks, account_id, hook_id)]


def _index_of(hooks: list[Hook], account_id: str, hook_id: str) -> int:
    for index, hook in enumerate(hooks):
        if hook.id == hook_id and hook.account_id == account_id:
            return index
    raise ApiError(404, "bad identifier", {"webhook_id": {"not_found": {
        "message": "account %s has no webhook %s" % (account_id, hook_id)}}})


def _check_if_match(req: falcon.Request, hook: Hook) -> None:
    header = req.get_header("If-Match")
    if not header:
        return
    tags = [t.strip().removeprefix("W/").strip('"') for t in header.split(",")]
    current = hook_revision(hook)
    if "*" not in tags and current not in tags:
        raise ApiError(409, "conflict", {"revision": {"conflict": {
            "message": "the webhook changed since that revision; GET it again, "
                       "then retry with its current revision",
            "target": current, "value": header}}})


def update_store(ctx: ApiContext, change: Callable):
    """store.update, the file's trouble as 503, a hand edit (unread or being
    written) as 409: the hand edit wins, the client retries."""
    try:
        return ctx.store.update(change, refuse_if_edited=True)
    except ConfigError as error:
        raise ApiError(503, "hooks file invalid", {"message": (
            "the hooks file has errors (a hand edit?); nothing was changed. Fix the file "
            "(eslhook check-config lists the problems), then retry."),
            "issues": [{"path": i.path, "line": i.line, "message": i.message}
                       for i in error.issues]}) from None
    except HooksUnavailable:
        raise ApiError(503, "hooks unavailable", {"message": (
            "the database that holds the hooks cannot be reached now; nothing was "
            "changed and the hooks in force stay: retry in a moment")},
            headers={"Retry-After": "5"}) from None
    except HooksConflict as conflict:
        raise ApiError(409, "hooks file changed", {"message": (
            "the hooks file was edited by hand since eslhook last read it; nothing was "
            "changed and the edit is now in force: GET the webhook again and retry"
            if conflict.reason == "changed" else
            "the hooks file is being written (a hand edit in progress?); nothing was "
            "changed: retry in a moment"), "reason": conflict.reason},
            headers={"Retry-After": "1"}) from None


def listing_page(hooks: list[Hook], page_size: int | None, start_key: str | None
                 ) -> tuple[list[Hook], str | None]:
    """The page of ``hooks`` (file order) from the one with id ``start_key``,
    and the next page's first id; page_size None: all of them."""
    start = 0
    if start_key is not None:
        start = next((i for i, h in enumerate(hooks) if h.id == start_key), -1)
        if start < 0:
            raise validation_error({"start_key": {"not_found": {
                "message": "no webhook %s in this account (deleted since?); start again "
                           "without start_key" % start_key, "value": start_key}}})
    end = len(hooks) if page_size is None else start + page_size
    next_key = hooks[end].id if end < len(hooks) else None
    return hooks[start:end], next_key


class AccountWebhooks:
    """The account's collection: list (GET), create (PUT), re-enable (PATCH)."""

    def __init__(self, ctx: ApiContext):
        self.ctx = ctx

    def on_get(self, req, resp, account_id):
        self.ctx.authorize(req, account_id)
        page_size, start_key = page_request(req, _HOOK_ID.fullmatch, allow_all=True)
        matches = listing_filter(req.params)
        hooks = [h for h in self.ctx.current_hooks()
                 if h.account_id == account_id and matches(full_view(h))]
        page, next_key = listing_page(hooks, page_size, start_key)
        send(req, resp, [summary_view(h) for h in page],
             extra=page_envelope(page[0].id if page else None, next_key))

    def on_put(self, req, resp, account_id):
        principal = self.ctx.authorize(req, account_id)
        data = dict(request_data(req, self.ctx.max_body_bytes))
        data.pop("id", None)
        check_tls_writer(principal, data, None)
        hook = unmasked(build_hook(self.ctx, data, account_id=account_id,
                                   hook_id=uuid.uuid4().hex,
                                   written_by=writer(principal, data, None)), None)
        update_store(self.ctx, lambda hooks: (hooks + [hook], None))
        resp.location = "%s/%s" % (req.path.rstrip("/"), hook.id)
        send(req, resp, shown_once(hook, data), status=201, revision=hook_revision(hook))

    def on_patch(self, req, resp, account_id):
        reenable(self.ctx, req, resp, account_id, descendants=False)


class DescendantWebhooks:
    """``PATCH .../descendants/webhooks``: re-enable in the account and below."""

    def __init__(self, ctx: ApiContext):
        self.ctx = ctx

    def on_patch(self, req, resp, account_id):
        reenable(self.ctx, req, resp, account_id, descendants=True)


def reenable(ctx: ApiContext, req, resp, account_id: str, *, descendants: bool) -> None:
    """``{"data": {"re-enable": true}}``: enable the auto-disabled hooks (those
    with a ``disable_reason``); hooks disabled without a reason stay off.  Other
    keys (Monster UI adds ``ui_metadata``) are ignored, as Kazoo does."""
    ctx.authorize(req, account_id)
    data = request_data(req, ctx.max_body_bytes)
    if data.get("re-enable") is not True:
        errors: dict = {}
        add_error(errors, "re-enable", "required" if "re-enable" not in data else "enum",
                  'this PATCH only re-enables auto-disabled hooks: send '
                  '{"data": {"re-enable": true}}', target=[True])
        raise validation_error(errors)
    accounts = {account_id}
    if descendants:
        accounts.update(ctx.accounts.descendants(account_id))

    def change(hooks):
        enabled = []
        for index, hook in enumerate(hooks):
            if hook.account_id in accounts and hook.disable_reason is not None:
                hooks[index] = dataclasses.replace(hook, enabled=True, disable_reason=None)
                enabled.append(hooks[index])
        return (hooks if enabled else None), enabled

    enabled = update_store(ctx, change)
    ctx.resume_delivery(h.id for h in enabled)
    send(req, resp, [summary_view(h) for h in enabled])


class AccountWebhook:
    """One hook: GET, POST (replace), PATCH (merge), DELETE."""

    def __init__(self, ctx: ApiContext):
        self.ctx = ctx

    def on_get(self, req, resp, account_id, hook_id):
        self.ctx.authorize(req, account_id)
        hook = find_hook(self.ctx, account_id, hook_id)
        send(req, resp, full_view(hook), revision=hook_revision(hook))

    def on_post(self, req, resp, account_id, hook_id):
        principal = self.ctx.authorize(req, account_id)
        data = request_data(req, self.ctx.max_body_bytes)
        new = build_hook(self.ctx, data, account_id=account_id, hook_id=hook_id,
                         written_by=writer(principal, data, None))
        def replaced(old: Hook) -> Hook:
            check_tls_writer(principal, data, old)
            return changed_hook(old, new, data)

        self._replace(req, resp, account_id, hook_id, data, replaced)

    def on_patch(self, req, resp, account_id, hook_id):
        principal = self.ctx.authorize(req, account_id)
        data = request_data(req, self.ctx.max_body_bytes)

        def merged(old: Hook) -> Hook:
            check_tls_writer(principal, data, old)
            current = full_view(old)
            if current["disable_reason"] is None:
                del current["disable_reason"]
            new = build_hook(self.ctx, {**current, **data}, account_id=account_id,
                             hook_id=hook_id, written_by=writer(principal, data, old))
            return changed_hook(old, new, data)

        self._replace(req, resp, account_id, hook_id, data, merged)

    def on_delete(self, req, resp, account_id, hook_id):
        self.ctx.authorize(req, account_id)

        def change(hooks):
            index = _index_of(hooks, account_id, hook_id)
            _check_if_match(req, hooks[index])
            return hooks[:index] + hooks[index + 1:], hooks[index]

        deleted = update_store(self.ctx, change)
        send(req, resp, full_view(deleted), revision=hook_revision(deleted))

    def _replace(self, req, resp, account_id, hook_id, data: dict,
                 make: Callable[[Hook], Hook]):
        def change(hooks):
            index = _index_of(hooks, account_id, hook_id)
            _check_if_match(req, hooks[index])
            old, hooks[index] = hooks[index], make(hooks[index])
            return hooks, (old, hooks[index])

        old, hook = update_store(self.ctx, change)
        if hook.enabled and not old.enabled:   # what delivery held for it goes out now
            self.ctx.resume_delivery([hook.id])
        send(req, resp, shown_once(hook, data), revision=hook_revision(hook))
