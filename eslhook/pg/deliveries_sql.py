"""The SQL of the delivery store on PostgreSQL (``pg/deliveries.py``): one function
per unit of work, each given a connection from the pool (tables: migrations 002 and 003).

A batch of the write-ahead log is ONE statement (data-modifying CTEs over
``unnest`` of one array per column) on an autocommit connection: one round trip
and one transaction whatever its size, so delivery throughput is not capped by
round trips.  New rows are inserted with ``ON CONFLICT ... DO NOTHING`` on the
(hook, event) key and the statement returns the ids it did insert: the others were
enqueued first by another instance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import psycopg

from eslhook.delivery.rows import (
    ATTEMPT_FIELDS, EVENT, AttemptFilter, AttemptPage, AttemptRecord, DeliveryRow,
    FinishedDelivery, SpoolContents, StoredDelivery, encode_payload)

ID_RANGE = 1 << 40          # delivery ids per instance: number * ID_RANGE + 1 ...

_DELIVERY_COLUMNS = ("id", "hook_id", "account_id", "call_id", "event_id", "hook_event",
                     "webhook_id", "payload", "created", "attempts", "next_attempt", "state",
                     "finished", "trigger")
_DELIVERY_TYPES = ("bigint", "text", "text", "text", "text", "text", "text", "text",
                   "float8", "integer", "float8", "text", "float8", "text")
_ATTEMPT_COLUMNS = ("account_id", "delivery_id", "webhook_id") + ATTEMPT_FIELDS
_ATTEMPT_TYPES = ("text", "bigint", "text", "text", "text", "text", "text", "text", "text",
                  "integer", "text", "text", "integer", "text", "integer", "float8", "text",
                  "text", "text", "integer", "float8")
assert len(_ATTEMPT_TYPES) == len(_ATTEMPT_COLUMNS)


def _unnest(types: Sequence[str]) -> str:
    return "unnest(%s)" % ", ".join("%%s::%s[]" % kind for kind in types)


_BATCH = (
    "WITH new AS (INSERT INTO deliveries (%s, once) SELECT * FROM %s "
    "ON CONFLICT (hook_id, event_id) WHERE once DO NOTHING RETURNING id), "
    "changed AS (UPDATE deliveries d SET attempts = u.attempts, "
    "next_attempt = u.next_attempt, state = u.state, finished = u.finished "
    "FROM %s AS u(attempts, next_attempt, state, finished, id) WHERE d.id = u.id), "
    "logged AS (INSERT INTO attempts (%s) SELECT * FROM %s) "
    "SELECT id FROM new" % (
        ", ".join(_DELIVERY_COLUMNS), _unnest(_DELIVERY_TYPES + ("boolean",)),
        _unnest(("integer", "float8", "text", "float8", "bigint")),
        ", ".join(_ATTEMPT_COLUMNS), _unnest(_ATTEMPT_TYPES))).encode()


@dataclass
class Batch:
    """What one commit writes: new rows (``Delivery.row()`` tuples, payload encoded
    here) with their ``once`` flag, changes (attempts, next_attempt, state, finished,
    id) and attempt records."""
    inserts: list[tuple] = field(default_factory=list)
    once: list[bool] = field(default_factory=list)
    updates: list[tuple] = field(default_factory=list)
    attempts: list[AttemptRecord] = field(default_factory=list)


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as one list per column (what unnest takes)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows)]


def apply(connection: psycopg.Connection, batch: Batch) -> set[int]:
    """Commit the batch in one statement; the ids of the new rows inserted."""
    inserts = [row[:7] + (encode_payload(row[7]),) + row[8:] for row in batch.inserts]
    # a row changed twice (a failed batch retried with newer changes) ends as the later
    updates = list({row[4]: row for row in batch.updates}.values())
    params = (_columns(inserts, len(_DELIVERY_COLUMNS)) + [batch.once]
              + _columns(updates, 5) + _columns(batch.attempts, len(_ATTEMPT_COLUMNS)))
    connection.autocommit = True       # the statement is its transaction: no BEGIN/COMMIT
    try:
        return {row[0] for row in connection.execute(_BATCH, params).fetchall()}
    finally:
        connection.autocommit = False


def instance_number(connection: psycopg.Connection, name: str) -> int:
    """The instance's number (its id range), given once per name."""
    connection.execute("INSERT INTO fleet_instances (name, number) VALUES "
                       "(%s, nextval('fleet_instance_numbers')) ON CONFLICT (name) DO NOTHING",
                       (name,))
    row = connection.execute("SELECT number FROM fleet_instances WHERE name = %s",
                             (name,)).fetchone()
    assert row is not None
    return int(row[0])


def contents(connection: psycopg.Connection, number: int) -> SpoolContents:
    """The instance's own pending lanes (ids in its range) and its next id.  Lanes
    of other instances are theirs: taking over a dead one's needs the lane leases
    (docs/fleet.md, what is next); resuming them here would deliver a live one's twice."""
    low, high = number * ID_RANGE + 1, (number + 1) * ID_RANGE - 1
    row = connection.execute("SELECT max(id) FROM deliveries WHERE id BETWEEN %s AND %s",
                             (low, high)).fetchone()
    next_id = (row[0] if row and row[0] is not None else low - 1) + 1
    lanes: dict[tuple[str, str | None], float | None] = {}
    pending = 0
    for hook_id, call_id, next_attempt, count in connection.execute(
            "SELECT DISTINCT ON (hook_id, call_id) hook_id, call_id, next_attempt, "
            "count(*) OVER (PARTITION BY hook_id, call_id) FROM deliveries "
            "WHERE state = 'pending' AND id BETWEEN %s AND %s "
            "ORDER BY hook_id, call_id, seq", (low, high)):
        pending += count
        lanes[(hook_id, call_id or None)] = next_attempt
    return SpoolContents(next_id, pending, lanes)


def lane(connection: psycopg.Connection, hook_id: str, call_id: str | None,
         limit: int) -> list[StoredDelivery]:
    rows = connection.execute(
        "SELECT id, hook_id, call_id, event_id, hook_event, webhook_id, payload, created, "
        "attempts, next_attempt, trigger FROM deliveries WHERE state = 'pending' "
        "AND hook_id = %s AND call_id = %s ORDER BY seq LIMIT %s",
        (hook_id, call_id or "", limit)).fetchall()
    return [StoredDelivery(r[0], r[1], r[2] or None, r[3], r[4], r[5], json.loads(r[6]),
                           r[7], r[8], r[9], r[10]) for r in rows]


def end_lane(connection: psycopg.Connection, hook_id: str, call_id: str | None,
             state: str, now: float) -> int:
    cursor = connection.execute(
        "UPDATE deliveries SET state = %s, finished = %s WHERE state = 'pending' "
        "AND hook_id = %s AND call_id = %s", (state, now, hook_id, call_id or ""))
    return cursor.rowcount


def attempts_page(connection: psycopg.Connection, account_id: str, hook_id: str | None,
                  page_size: int, start_key: int | None, only: AttemptFilter) -> AttemptPage:
    where = ["account_id = %s"]
    args: list[object] = [account_id]
    for clause, value in (("hook_id = %s", hook_id), ("id <= %s", start_key),
                          ("timestamp >= %s", only.created_from),
                          ("timestamp <= %s", only.created_to),
                          ("call_id = %s", only.call_id), ("result = %s", only.result)):
        if value is not None:
            where.append(clause)
            args.append(value)
    rows = connection.execute(
        ("SELECT id, %s FROM attempts WHERE %s ORDER BY id DESC LIMIT %%s"
         % (", ".join(ATTEMPT_FIELDS), " AND ".join(where))).encode(),
        args + [page_size + 1]).fetchall()
    records = [dict(zip(("id",) + ATTEMPT_FIELDS, row)) for row in rows[:page_size]]
    for record in records:
        record["id"] = str(record["id"])
    more = len(rows) > page_size
    return AttemptPage(records, str(rows[page_size][0]) if more else None)


def window(connection: psycopg.Connection, hook_id: str, since: float, until: float,
           limit: int) -> list[FinishedDelivery]:
    return [FinishedDelivery(*row) for row in connection.execute(
        "SELECT call_id, event_id, hook_event, webhook_id, payload FROM deliveries "
        "WHERE hook_id = %s AND created >= %s AND created < %s AND state <> 'pending' "
        "ORDER BY seq LIMIT %s", (hook_id, since, until, limit)).fetchall()]


def attempted_delivery(connection: psycopg.Connection, account_id: str, hook_id: str,
                       attempt_id: int) -> FinishedDelivery | None:
    row = connection.execute(
        "SELECT d.call_id, d.event_id, d.hook_event, d.webhook_id, d.payload "
        "FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
        "WHERE a.id = %s AND a.account_id = %s AND a.hook_id = %s",
        (attempt_id, account_id, hook_id)).fetchone()
    return FinishedDelivery(*row) if row is not None else None


def insert_copies(connection: psycopg.Connection, rows: list[DeliveryRow]) -> None:
    """Copies repeat an event on purpose: not under the (hook, event) key."""
    values = [row.values() for row in rows]
    connection.execute(("INSERT INTO deliveries (%s) SELECT * FROM %s"
                        % (", ".join(_DELIVERY_COLUMNS), _unnest(_DELIVERY_TYPES))).encode(),
                       _columns(values, len(_DELIVERY_COLUMNS)))


def prune(connection: psycopg.Connection, before: float) -> tuple[int, int]:
    attempts = connection.execute("DELETE FROM attempts WHERE timestamp < %s",
                                  (before,)).rowcount
    finished = connection.execute("DELETE FROM deliveries WHERE state <> 'pending' "
                                  "AND finished < %s", (before,)).rowcount
    return attempts, finished


def is_once(trigger: str, event_id: str | None) -> bool:
    """Under the (hook, event) key: a call event's delivery naming its event."""
    return trigger == EVENT and event_id is not None
