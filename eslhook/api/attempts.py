"""The attempt log and replay, as Kazoo's ``webhooks/attempts``:

- ``GET .../accounts/{A}/webhooks/attempts`` and ``.../webhooks/{ID}/attempts``:
  every delivery attempt, newest first, in Crossbar's pagination (``page_size``,
  ``start_key`` in the query; ``start_key``/``next_start_key`` in the envelope).
  ``timestamp`` is gregorian seconds, as in Kazoo's attempts and in payloads.
  Filters in the query: Crossbar's ``created_from`` / ``created_to`` (gregorian
  seconds, both included), ``call_id``, ``result`` (success | failure);
  ``paginate=false`` ("load all") returns up to ``MAX_PAGE_SIZE`` records, with
  ``next_start_key`` when there are more.  Each record carries Kazoo's names
  too: ``resp_status_code`` and ``retries`` (tries left, the next included,
  as Monster UI reads it: it shows ``retries - 1``); ``duration_ms`` is
  eslhook's own (Kazoo's attempts have none; null for attempts logged before it).
- ``POST .../accounts/{A}/webhooks/{ID}/replay`` ``{"data": {"since", "until"}}``:
  send the hook's recorded deliveries of that window again (same ``webhook-id``).
- ``POST .../webhooks/{ID}/attempts/{ATTEMPT}/resend`` and ``.../webhooks/{ID}/test``:
  the support tools, in ``support.py``.

Both need the running bridge's delivery queue, through the context's
``DeliveryControl`` port (eslhook/ports.py; 503 without one).  An account
sees its own hooks' attempts only; the token rules are those of the rest of
the API.
"""

from __future__ import annotations

import json

from ..delivery.queue import REPLAY_LIMIT
from ..delivery.rows import AttemptFilter
from ..hooks.model import parse_utc
from ..mapping import GREGORIAN_UNIX_OFFSET_SECONDS
from ..ports import DeliveryControl
from .context import ApiContext
from .envelope import ApiError, request_data, send, validation_error
from .paging import MAX_PAGE_SIZE, page_envelope, page_request
from .validation import add_error
from .webhooks import find_hook

MAX_ROWID = 2 ** 63 - 1


def is_attempt_key(text: str) -> bool:
    """A key the log could have returned: decimal, and an SQLite rowid (a signed
    64-bit integer; a 30-digit one overflowed the query)."""
    return text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= MAX_ROWID


RESULTS = ("success", "failure")
_GREGORIAN_MAX = 10 ** 12          # year ~31,700: beyond any attempt, within a float


def attempt_view(record: dict) -> dict:
    """An attempt-log record with Kazoo's gregorian-seconds ``timestamp``, Kazoo's
    names beside eslhook's, the request headers as an object."""
    view = dict(record)
    view["timestamp"] = int(record["timestamp"]) + GREGORIAN_UNIX_OFFSET_SECONDS
    view["resp_status_code"] = record["response_code"]
    # Kazoo's counts this try too (Monster UI shows retries - 1 as "retries left")
    view["retries"] = record["retries_left"] + 1
    view["request_headers"] = json.loads(record["request_headers"] or "{}")
    return view


def attempt_filter(req) -> AttemptFilter:
    """The query's filters, or a 400 naming each bad one."""
    errors: dict = {}
    times: dict[str, float | None] = {}
    for name in ("created_from", "created_to"):
        text = req.get_param(name)
        times[name] = None
        if text is None:
            continue
        if not (text.isascii() and text.isdigit() and len(text) <= 13
                and int(text) <= _GREGORIAN_MAX):
            add_error(errors, name, "type", "Value must be gregorian seconds (an integer, "
                      "as Kazoo's timestamps)", target="integer", value=text)
            continue
        times[name] = float(int(text) - GREGORIAN_UNIX_OFFSET_SECONDS)
    result = req.get_param("result")
    if result is not None and result not in RESULTS:
        add_error(errors, "result", "enum", "Value must be one of: success, failure",
                  target=list(RESULTS), value=result)
    if errors:
        raise validation_error(errors)
    return AttemptFilter(times["created_from"], times["created_to"],
                         req.get_param("call_id"), result)


def running_delivery(ctx: ApiContext) -> DeliveryControl:
    delivery = ctx.delivery
    if delivery is None:
        raise ApiError(503, "delivery not running", {"message": (
            "the attempt log and replay are served by a running eslhook (eslhook run); "
            "this API has no delivery queue")})
    return delivery


class Attempts:
    """The account's attempt log (``on_get``) or one hook's (``on_get_hook``)."""

    def __init__(self, ctx: ApiContext):
        self.ctx = ctx

    def on_get(self, req, resp, account_id):
        self._page(req, resp, account_id, None)

    def on_get_hook(self, req, resp, account_id, hook_id):
        self._page(req, resp, account_id, hook_id)

    def _page(self, req, resp, account_id: str, hook_id: str | None) -> None:
        self.ctx.authorize(req, account_id)
        page_size, start_key = page_request(req, is_attempt_key, allow_all=True)
        only = attempt_filter(req)
        if hook_id is not None:
            find_hook(self.ctx, account_id, hook_id)      # 404 if not the account's
        delivery = running_delivery(self.ctx)
        try:
            page = delivery.attempts(account_id, hook_id, page_size=page_size or MAX_PAGE_SIZE,
                                     start_key=start_key, only=only)
        except ValueError as exc:   # the queue's own checks; ours above should match them
            raise ApiError(400, "validation error", {"message": str(exc)}) from None
        first = page.attempts[0]["id"] if page.attempts else None
        send(req, resp, [attempt_view(a) for a in page.attempts],
             extra=page_envelope(first, page.next_start_key))


def replay_window(data: dict) -> tuple[float, float]:
    """(since, until) as unix seconds, or a 400 naming each problem."""
    errors: dict = {}
    times = {}
    for name in ("since", "until"):
        value = data.get(name)
        if name not in data:
            add_error(errors, name, "required", "Field is required but missing")
            continue
        parsed = parse_utc(value) if isinstance(value, str) and "T" in value else None
        if parsed is None:
            add_error(errors, name, "format", "Value must be an ISO 8601 date and time with "
                      "its zone, e.g. 2026-01-31T12:00:00Z", value=value)
        else:
            times[name] = parsed.timestamp()
    for name in sorted(set(data) - {"since", "until"}):
        add_error(errors, name, "additionalProperties",
                  "Field is not allowed; allowed fields: since, until")
    if len(times) == 2 and not times["since"] < times["until"]:
        add_error(errors, "until", "minimum", "Value must be after since",
                  target=data["since"], value=data["until"])
    if errors:
        raise validation_error(errors)
    return times["since"], times["until"]


class Replay:
    def __init__(self, ctx: ApiContext):
        self.ctx = ctx

    def on_post(self, req, resp, account_id, hook_id):
        self.ctx.authorize(req, account_id)
        data = request_data(req, self.ctx.max_body_bytes)
        since, until = replay_window(data)
        hook = find_hook(self.ctx, account_id, hook_id)
        if not hook.enabled:
            raise ApiError(409, "webhook disabled", {"enabled": {"conflict": {
                "message": "the webhook is disabled: enable it (PATCH "
                           '{"data": {"enabled": true}}), then replay', "value": False}}})
        replayed = running_delivery(self.ctx).replay(hook, since, until)
        send(req, resp, {"hook_id": hook.id, "since": data["since"], "until": data["until"],
                         "replayed": replayed, "limit": REPLAY_LIMIT,
                         "limit_reached": replayed >= REPLAY_LIMIT}, status=202)
