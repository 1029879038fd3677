"""The values a delivery store takes and gives (``delivery/store.py``): a delivery on
its way, the rows read back, attempt-log records and pages.  No storage here: every
backend (SQLite today) maps them to its own tables.

A row's fields are in one fixed order, the columns of every backend's deliveries
table: ``Delivery.row()`` and ``DeliveryRow.values()`` give a tuple in that order,
which the SQLite backend hands over as it is (one tuple per delivery costs less on the
hot path than a dict).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, NamedTuple

from eslhook.delivery.request import encode_json
from eslhook.hooks.model import Hook

PENDING, DELIVERED, FAILED, EXPIRED, DROPPED = "pending", "delivered", "failed", "expired", \
    "dropped"
DELIVERY_STATES = (PENDING, DELIVERED, FAILED, EXPIRED, DROPPED)
# AttemptRecord's fields after account_id, delivery_id and webhook_id: what the API shows
ATTEMPT_FIELDS = ("hook_id", "event_id", "call_id", "hook_event", "uri", "method", "attempt",
                  "result", "reason", "response_code", "response_body", "retries_left",
                  "timestamp", "trigger", "request_headers", "request_body",
                  "request_body_size", "duration_ms")
# Why a delivery was made: a call event, a replay of a window, a resend of one recorded
# delivery, a test from the API (one attempt, no retries)
EVENT, REPLAY, RESEND, TEST = "event", "replay", "resend", "test"
TRIGGERS = (EVENT, REPLAY, RESEND, TEST)
# The attempt log keeps the first 4 KiB of each request body (request_body_size says
# how long it was): a day of attempts of a busy hook stays MBs, not GBs
REQUEST_BODY_KEPT_BYTES = 4096


@dataclass(eq=False)
class Delivery:
    """One (hook, payload) on its way, in memory; a store mirrors it as a row."""
    id: int
    hook: Hook
    payload: Mapping[str, Any]
    call_id: str | None
    event_id: str | None
    hook_event: str | None
    webhook_id: str
    created: float
    attempts: int = 0
    next_attempt: float | None = None
    state: str = PENDING
    finished: float | None = None
    request: Any = None                # HttpRequest, built by the first attempt
    trigger: str = EVENT               # one of TRIGGERS
    sent_headers: Mapping[str, str] | None = None   # the last attempt's signature headers

    def row(self) -> tuple:
        """DeliveryRow's fields, in order (the payload not encoded yet)."""
        return (self.id, self.hook.id, self.hook.account_id, self.call_id or "", self.event_id,
                self.hook_event, self.webhook_id, self.payload, self.created, self.attempts,
                self.next_attempt, self.state, self.finished, self.trigger)


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """A delivery as stored (``replay``'s copies)."""
    id: int
    hook_id: str
    account_id: str
    call_id: str | None
    event_id: str | None
    hook_event: str | None
    webhook_id: str
    payload: str                       # JSON, as stored
    created: float
    attempts: int = 0
    next_attempt: float | None = None
    state: str = PENDING
    finished: float | None = None
    trigger: str = EVENT

    def values(self) -> tuple:
        """The fields, in order (a missing call id as '')."""
        return (self.id, self.hook_id, self.account_id, self.call_id or "", self.event_id,
                self.hook_event, self.webhook_id, self.payload, self.created, self.attempts,
                self.next_attempt, self.state, self.finished, self.trigger)


@dataclass(frozen=True, slots=True)
class FinishedDelivery:
    """A finished delivery, as ``window`` reads it for a replay (or
    ``attempted_delivery`` for a resend)."""
    call_id: str | None
    event_id: str | None
    hook_event: str | None
    webhook_id: str
    payload: str                       # JSON, as stored


class AttemptRecord(NamedTuple):
    """One record of the attempt log (what the REST API's attempts list shows):
    account_id, delivery_id, webhook_id, then ``ATTEMPT_FIELDS``.  A named tuple: one
    is built for every attempt, and a backend can bind it as it is."""
    account_id: str
    delivery_id: int
    webhook_id: str
    hook_id: str
    event_id: str | None
    call_id: str | None
    hook_event: str | None
    uri: str
    method: str
    attempt: int
    result: str                        # success | failure
    reason: str
    response_code: int | None
    response_body: str
    retries_left: int
    timestamp: float
    trigger: str = EVENT
    request_headers: str = "{}"        # JSON object; values redacted but a few (history.py)
    request_body: str = ""             # its first REQUEST_BODY_KEPT_BYTES
    request_body_size: int = 0         # the whole body's length in bytes
    duration_ms: float | None = None   # request sent to response read; None: logged before


@dataclass(frozen=True)
class StoredDelivery:
    """A pending delivery as read back (the hook is looked up by the caller)."""
    id: int
    hook_id: str
    call_id: str | None
    event_id: str | None
    hook_event: str | None
    webhook_id: str
    payload: Mapping[str, Any]
    created: float
    attempts: int
    next_attempt: float | None
    trigger: str = EVENT

    @classmethod
    def of(cls, d: Delivery) -> "StoredDelivery":
        """A delivery held in memory, as if read back."""
        return cls(d.id, d.hook.id, d.call_id, d.event_id, d.hook_event, d.webhook_id,
                   d.payload, d.created, d.attempts, d.next_attempt, d.trigger)


def overlaid(row: StoredDelivery, delivery: Delivery | None) -> StoredDelivery | None:
    """A row read back, as changed since in memory (None: no longer pending)."""
    if delivery is None:
        return row
    if delivery.state != PENDING:
        return None
    return replace(row, attempts=delivery.attempts, next_attempt=delivery.next_attempt)


def attempt_page(rows: list, page_size: int) -> AttemptPage:
    """A page of attempt records from the rows of ``SELECT id, <ATTEMPT_FIELDS>
    ... ORDER BY id DESC LIMIT page_size + 1`` (the one more says there is a next)."""
    records = [dict(zip(("id",) + ATTEMPT_FIELDS, row)) for row in rows[:page_size]]
    for record in records:
        record["id"] = str(record["id"])
    more = len(rows) > page_size
    return AttemptPage(records, str(rows[page_size][0]) if more else None)


@dataclass(frozen=True)
class AttemptFilter:
    """Which attempt-log records a page holds: accepted ``created_from`` <= timestamp
    <= ``created_to`` (unix seconds, either open), of one call, of one result."""
    created_from: float | None = None
    created_to: float | None = None
    call_id: str | None = None
    result: str | None = None          # success | failure

    def __post_init__(self) -> None:
        if self.result not in (None, "success", "failure"):
            raise ValueError("AttemptFilter.result: success or failure, not %r"
                             % (self.result,))

    def conditions(self, account_id: str, hook_id: str | None, start_key: int | None,
                   placeholder: str) -> tuple[list[str], list[object]]:
        """The attempts table's WHERE conditions and their arguments for a page of
        these records (both backends' SQL; ``placeholder``: ``?`` or ``%s``)."""
        where = ["account_id = " + placeholder]
        args: list[object] = [account_id]
        for column, value in (("hook_id = ", hook_id), ("id <= ", start_key),
                              ("timestamp >= ", self.created_from),
                              ("timestamp <= ", self.created_to),
                              ("call_id = ", self.call_id), ("result = ", self.result)):
            if value is not None:
                where.append(column + placeholder)
                args.append(value)
        return where, args


@dataclass(frozen=True)
class SpoolContents:
    """What a store holds when opened: the next free id, and the head of each pending
    lane."""
    next_id: int
    pending: int
    lanes: dict[tuple[str, str | None], float | None]   # (hook id, call id) -> next attempt


@dataclass(frozen=True)
class AttemptPage:
    attempts: list[dict]                # newest first
    next_start_key: str | None          # pass as start_key for the next page; None: last


def encode_payload(payload: Any) -> str:
    """A payload as every backend stores it (JSON text)."""
    try:
        return encode_json(payload).decode("utf-8")
    except ValueError:
        # cannot be stored (nor sent: the attempt gives it up as an invalid payload)
        return "null"
