"""Attempt history: the attempt log's records, its paging, replay copies, pruning.

Pure builders (``attempt_record``, ``page_start``, ``replay_copies``) and the
pruning loop the queue runs; the rows themselves live in the delivery store.

A record keeps the request as sent: its headers, each value but those of
``SHOWN_HEADERS`` replaced by ``REDACTED`` (signatures, Authorization, a hook's
custom headers: anything a receiver may treat as a credential), and the first
``REQUEST_BODY_KEPT_BYTES`` of its body.  The uri's userinfo password is redacted too.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Mapping

import gevent
import orjson

from eslhook.delivery.policy import Decision, Outcome, RETRY, is_success
from eslhook.delivery.rows import (
    REPLAY, REQUEST_BODY_KEPT_BYTES, AttemptRecord, Delivery, DeliveryRow, FinishedDelivery)
from eslhook.delivery.store import DeliveryStore, DeliveryStoreError
from eslhook.hooks.model import Hook, masked_uri

log = logging.getLogger("eslhook.delivery.queue")    # the operator's lines stay where they were

REPLAY_LIMIT = 10_000               # deliveries one replay call may re-send
PRUNE_INTERVAL_SECONDS = 600.0
# Header values the attempt log shows (lower case); every other value is REDACTED
SHOWN_HEADERS = frozenset({"content-type", "user-agent", "x-hook-id", "x-account-id",
                           "webhook-id", "webhook-timestamp"})
REDACTED = "[redacted]"


def redacted_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value if name.lower() in SHOWN_HEADERS else REDACTED
            for name, value in headers.items()}


def attempt_record(delivery: Delivery, hook: Hook, outcome: Outcome, decision: Decision,
                   now: float, sent_headers: Mapping[str, str] | None = None) -> AttemptRecord:
    """The log's record of one attempt; ``sent_headers``: those added to the request's
    own as it was sent (the signature's)."""
    request = delivery.request
    headers = {**(request.headers if request is not None else {}), **(sent_headers or {})}
    body = request.body if request is not None else b""
    return AttemptRecord(
        hook.account_id, delivery.id, delivery.webhook_id, hook.id, delivery.event_id,
        delivery.call_id, delivery.hook_event, masked_uri(hook.uri),
        request.method if request is not None else hook.http_verb.upper(),
        delivery.attempts, "success" if is_success(outcome) else "failure",
        outcome.reason, outcome.status, outcome.body_excerpt.decode("utf-8", "replace"),
        decision.retries_left if decision.action == RETRY else 0, now, delivery.trigger,
        orjson.dumps(redacted_headers(headers)).decode(),   # per attempt: orjson, not json
        body[:REQUEST_BODY_KEPT_BYTES].decode("utf-8", "replace"), len(body),
        round(outcome.duration_seconds * 1000, 3))


def page_start(page_size: object, start_key: object) -> int | None:
    """The attempt id a page starts at (None: the newest), for the API's ``page_size``
    and ``start_key`` (a previous page's ``next_start_key``).  ValueError naming the
    parameter when either is not one this API accepts."""
    if type(page_size) is not int or not 1 <= page_size <= 1000:
        raise ValueError("page_size: must be an integer 1..1000, got %r" % (page_size,))
    if start_key is None:
        return None
    if not (isinstance(start_key, str) and start_key.isdigit()):
        raise ValueError("start_key: not a key this API returned: %r" % (start_key,))
    return int(start_key)


def replay_copies(rows: Iterable[FinishedDelivery], hook: Hook, take_id: Callable[[], int],
                  now: float, trigger: str = REPLAY) -> list[DeliveryRow]:
    """New pending rows re-sending ``rows``: new ids, the same ``webhook-id``."""
    return [DeliveryRow(take_id(), hook.id, hook.account_id, row.call_id, row.event_id,
                        row.hook_event, row.webhook_id, row.payload, now, trigger=trigger)
            for row in rows]


def prune_loop(store: DeliveryStore, clock: Callable[[], float], days: float) -> None:
    """Forever: drop attempts and finished deliveries older than ``days``."""
    while True:
        before = clock() - days * 86400
        try:
            attempts, finished = store.prune(before)
            if attempts or finished:
                log.info("pruned %d attempts and %d finished deliveries older than %g "
                         "days", attempts, finished, days)
        except DeliveryStoreError as exc:     # a full disk: said once, not a traceback
            log.error("pruning the attempt log failed: %s", exc)
        except Exception:
            log.exception("pruning the attempt log failed")
        gevent.sleep(PRUNE_INTERVAL_SECONDS)
