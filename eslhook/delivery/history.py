"""Attempt history: the attempt log's records, its paging, replay copies, pruning.

Pure builders (``attempt_record``, ``page_start``, ``replay_copies``) and the
pruning loop the queue runs; the rows themselves live in the delivery store.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable

import gevent

from eslhook.delivery.policy import Decision, Outcome, RETRY, is_success
from eslhook.delivery.rows import AttemptRecord, Delivery, DeliveryRow, FinishedDelivery
from eslhook.delivery.store import DeliveryStore, DeliveryStoreError
from eslhook.hooks.model import Hook, masked_uri

log = logging.getLogger("eslhook.delivery.queue")    # the operator's lines stay where they were

REPLAY_LIMIT = 10_000               # deliveries one replay call may re-send
PRUNE_INTERVAL_SECONDS = 600.0


def attempt_record(delivery: Delivery, hook: Hook, outcome: Outcome, decision: Decision,
                   now: float) -> AttemptRecord:
    request = delivery.request
    return AttemptRecord(
        hook.account_id, delivery.id, delivery.webhook_id, hook.id, delivery.event_id,
        delivery.call_id, delivery.hook_event, masked_uri(hook.uri),
        request.method if request is not None else hook.http_verb.upper(),
        delivery.attempts, "success" if is_success(outcome) else "failure",
        outcome.reason, outcome.status, outcome.body_excerpt.decode("utf-8", "replace"),
        decision.retries_left if decision.action == RETRY else 0, now)


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
                  now: float) -> list[DeliveryRow]:
    """New pending rows re-sending ``rows``: new ids, the same ``webhook-id``."""
    return [DeliveryRow(take_id(), hook.id, hook.account_id, row.call_id, row.event_id,
                        row.hook_event, row.webhook_id, row.payload, now)
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
