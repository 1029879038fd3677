"""The SQL of the delivery store on PostgreSQL (``pg/deliveries.py``): one function
per unit of work, each given a connection from the pool (tables: migrations 002 to 007).

A batch of the write-ahead log is ONE statement (data-modifying CTEs over
``unnest`` of one array per column) on an autocommit connection: one round trip
and one transaction whatever its size, so delivery throughput is not capped by
round trips.  New rows are inserted with ``ON CONFLICT ... DO NOTHING`` on the
(hook, ``once_key``) key and the statement returns the ids it did insert: the others
were enqueued first by another instance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import psycopg

from eslhook.delivery.rows import (
    ATTEMPT_FIELDS, EVENT, AttemptFilter, AttemptPage, AttemptRecord, DeliveryRow,
    FinishedDelivery, SpoolContents, StoredDelivery, attempt_page, encode_payload)
from eslhook.events import once_per_call_events

LaneKey = tuple[str, "str | None"]
ONCE_PER_CALL = once_per_call_events()
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
    # %b: arrays go in binary; psycopg's text format escapes every element through a
    # regex (a 1,000-row text column: ~10 ms to dump, binary ~0.13 ms)
    return "unnest(%s)" % ", ".join("%%b::%s[]" % kind for kind in types)


# a lease row that exists is ours when we hold it already or its holder let it expire
_TAKE_LEASE = ("ON CONFLICT (hook_id, call_id) DO UPDATE SET owner = EXCLUDED.owner, "
               "expires_at = EXCLUDED.expires_at "
               "WHERE lanes.owner = EXCLUDED.owner OR lanes.expires_at < now()")

_BATCH = (
    "WITH new AS (INSERT INTO deliveries (%s, once_key, sequence) SELECT * FROM %s "
    "ON CONFLICT (hook_id, once_key) WHERE once_key IS NOT NULL DO NOTHING RETURNING id), "
    "changed AS (UPDATE deliveries d SET attempts = u.attempts, "
    "next_attempt = u.next_attempt, state = u.state, finished = u.finished "
    "FROM %s AS u(attempts, next_attempt, state, finished, id) WHERE d.id = u.id), "
    "logged AS (INSERT INTO attempts (%s) SELECT * FROM %s), "
    # the lanes of the new rows: claimed when free, renewed when ours, else another's
    "claimed AS (INSERT INTO lanes (hook_id, call_id, owner, expires_at) "
    "SELECT c.hook_id, c.call_id, %%s, now() + %%s * interval '1 second' "
    "FROM unnest(%%b::text[], %%b::text[]) AS c(hook_id, call_id) "
    "ORDER BY c.hook_id, c.call_id "     # one lock order for all instances: no deadlock
    "%s RETURNING hook_id, call_id) "
    "SELECT id, NULL, NULL FROM new UNION ALL SELECT NULL, hook_id, call_id FROM claimed" % (
        ", ".join(_DELIVERY_COLUMNS), _unnest(_DELIVERY_TYPES + ("text", "bigint")),
        _unnest(("integer", "float8", "text", "float8", "bigint")),
        ", ".join(_ATTEMPT_COLUMNS), _unnest(_ATTEMPT_TYPES), _TAKE_LEASE)).encode()


@dataclass
class Batch:
    """What one commit writes: new rows (``Delivery.row()`` tuples, payload encoded
    here) with their ``once_key`` (None: not under the key), changes (attempts,
    next_attempt, state, finished, id) and attempt records; with an ``owner``, the
    leases of the new rows' lanes are claimed for it (fleet mode) for
    ``lease_seconds``."""
    inserts: list[tuple] = field(default_factory=list)
    once_keys: list[str | None] = field(default_factory=list)
    updates: list[tuple] = field(default_factory=list)
    attempts: list[AttemptRecord] = field(default_factory=list)
    owner: str | None = None
    lease_seconds: float = 0.0


@dataclass
class Applied:
    """What a batch did: the ids of the new rows inserted (the others were another
    instance's first) and the lanes whose lease the owner holds now."""
    inserted: set[int]
    owned: list[LaneKey]


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as one list per column (what unnest takes)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows)]


def apply(connection: psycopg.Connection, batch: Batch) -> Applied:
    """Commit the batch in one statement."""
    sequences = [lane_sequence(row[7]) for row in batch.inserts]
    inserts = [row[:7] + (encode_payload(row[7]),) + row[8:] for row in batch.inserts]
    # a row changed twice (a failed batch retried with newer changes) ends as the later
    updates = list({row[4]: row for row in batch.updates}.values())
    lanes = sorted({(row[1], row[3] or "") for row in inserts}) if batch.owner else []
    params = (_columns(inserts, len(_DELIVERY_COLUMNS))
              + [batch.once_keys, sequences]
              + _columns(updates, 5) + _columns(batch.attempts, len(_ATTEMPT_COLUMNS))
              + [batch.owner, batch.lease_seconds] + _columns(lanes, 2))
    connection.autocommit = True       # the statement is its transaction: no BEGIN/COMMIT
    try:
        rows = connection.execute(_BATCH, params).fetchall()
        applied = Applied({row[0] for row in rows if row[0] is not None},
                          [(row[1], row[2] or None) for row in rows if row[0] is None])
        if batch.owner:
            _notify_holders(connection, batch.owner, inserts, applied)
    finally:
        connection.autocommit = False
    return applied


LANES_CHANNEL = "eslhook_lanes"     # payload: owner TAB hook_id TAB call_id
_NOTIFY_HOLDERS = (
    "SELECT pg_notify(%s, l.owner || E'\\t' || l.hook_id || E'\\t' || l.call_id) "
    "FROM lanes l JOIN unnest(%b::text[], %b::text[]) AS c(hook_id, call_id) "
    "ON l.hook_id = c.hook_id AND l.call_id = c.call_id WHERE l.owner <> %s")


def _notify_holders(connection: psycopg.Connection, owner: str, inserts: list[tuple],
                    applied: Applied) -> None:
    """Rows inserted into lanes another instance holds: tell it (NOTIFY, delivered at
    commit), so it reads them at once instead of at its next renewal.  A second round
    trip only for a batch that has such rows."""
    owned = set(applied.owned)
    others = sorted({(row[1], row[3] or "") for row in inserts if row[0] in applied.inserted
                     and (row[1], row[3] or None) not in owned})
    if others:
        connection.execute(_NOTIFY_HOLDERS, [LANES_CHANNEL, [h for h, _ in others],
                                             [c for _, c in others], owner])


def lane_sequence(payload: Mapping[str, Any]) -> int | None:
    """Where a delivery goes in its lane: its payload's ``sequence`` (fleet mode: the
    switch's Event-Sequence), None for one without (after those with, by commit)."""
    sequence = payload.get("sequence")
    return sequence if type(sequence) is int and 0 <= sequence < 1 << 63 else None


def parse_lane_notice(payload: str) -> tuple[str, LaneKey] | None:
    """(owner, lane) of a LANES_CHANNEL payload; None if it is not one."""
    parts = payload.split("\t")
    if len(parts) != 3:
        return None
    owner, hook_id, call_id = parts
    return owner, (hook_id, call_id or None)


# -- lane leases (fleet mode) ------------------------------------------------------------

def renew_leases(connection: psycopg.Connection, owner: str,
                 lease_seconds: float) -> list[LaneKey]:
    """Extend the owner's leases, release those of lanes with nothing pending, and
    take over expired leases (their owner died: ``FOR UPDATE SKIP LOCKED``, so two
    scanners never wait on each other) and lanes pending without a lease; the lanes
    the owner holds now, each with pending rows (another instance may have added
    some to a lane leased here)."""
    # the owner's rows locked in the batches' order (sorted): a batch committing at the
    # same time waits, never deadlocks
    connection.execute("UPDATE lanes l SET expires_at = now() + %s * interval '1 second' "
                       "FROM (SELECT hook_id, call_id FROM lanes WHERE owner = %s "
                       "ORDER BY hook_id, call_id FOR UPDATE) o "
                       "WHERE l.hook_id = o.hook_id AND l.call_id = o.call_id",
                       (lease_seconds, owner))
    connection.execute("DELETE FROM lanes l WHERE owner = %s AND NOT EXISTS "
                       "(SELECT 1 FROM deliveries d WHERE d.state = 'pending' "
                       "AND d.hook_id = l.hook_id AND d.call_id = l.call_id)", (owner,))
    connection.execute(_TAKE_OVER, {"owner": owner, "lease": lease_seconds})
    rows = connection.execute("SELECT hook_id, call_id FROM lanes WHERE owner = %s "
                              "ORDER BY hook_id, call_id", (owner,)).fetchall()
    connection.commit()
    return [(hook_id, call_id or None) for hook_id, call_id in rows]


_TAKE_OVER = (
    "WITH expired AS (SELECT hook_id, call_id FROM lanes WHERE expires_at < now() "
    "ORDER BY hook_id, call_id FOR UPDATE SKIP LOCKED), "
    "taken AS (UPDATE lanes l SET owner = %(owner)s, "
    "expires_at = now() + %(lease)s * interval '1 second' FROM expired e "
    "WHERE l.hook_id = e.hook_id AND l.call_id = e.call_id RETURNING l.hook_id) "
    # pending rows without a lease: a lease released as another instance added to it
    "INSERT INTO lanes (hook_id, call_id, owner, expires_at) "
    "SELECT DISTINCT d.hook_id, d.call_id, %(owner)s, "
    "now() + %(lease)s * interval '1 second' FROM deliveries d WHERE d.state = 'pending' "
    "AND NOT EXISTS (SELECT 1 FROM lanes l WHERE l.hook_id = d.hook_id "
    "AND l.call_id = d.call_id) ORDER BY 1, 2 ON CONFLICT DO NOTHING")


def release_leases(connection: psycopg.Connection, owner: str) -> None:
    """At a clean stop: the owner's lanes are free for the others at once."""
    connection.execute("DELETE FROM lanes WHERE owner = %s", (owner,))
    connection.commit()


def instance_number(connection: psycopg.Connection, name: str) -> int:
    """The instance's number (its id range), given once per name."""
    connection.execute("INSERT INTO fleet_instances (name, number) VALUES "
                       "(%s, nextval('fleet_instance_numbers')) ON CONFLICT (name) DO NOTHING",
                       (name,))
    row = connection.execute("SELECT number FROM fleet_instances WHERE name = %s",
                             (name,)).fetchone()
    assert row is not None
    return int(row[0])


def contents(connection: psycopg.Connection, number: int,
             owner: str | None = None) -> SpoolContents:
    """The instance's next id and the pending lanes it resumes: with an ``owner``
    (fleet mode), the lanes whose lease it holds (its own from before a restart, not
    those taken over meanwhile); without, those of its own ids (another instance's are
    live: resuming them here would deliver them twice)."""
    low, high = number * ID_RANGE + 1, (number + 1) * ID_RANGE - 1
    row = connection.execute("SELECT max(id) FROM deliveries WHERE id BETWEEN %s AND %s",
                             (low, high)).fetchone()
    next_id = (row[0] if row and row[0] is not None else low - 1) + 1
    args: tuple[object, ...]
    if owner is None:
        where, args = "id BETWEEN %s AND %s", (low, high)
    else:
        where, args = ("EXISTS (SELECT 1 FROM lanes l WHERE l.owner = %s AND "
                       "l.hook_id = d.hook_id AND l.call_id = d.call_id)", (owner,))
    lanes: dict[tuple[str, str | None], float | None] = {}
    pending = 0
    for hook_id, call_id, next_attempt, count in connection.execute(
            ("SELECT DISTINCT ON (hook_id, call_id) hook_id, call_id, next_attempt, "
             "count(*) OVER (PARTITION BY hook_id, call_id) FROM deliveries d "
             "WHERE state = 'pending' AND %s ORDER BY hook_id, call_id, sequence, seq"
             % where).encode(),
            args):
        pending += count
        lanes[(hook_id, call_id or None)] = next_attempt
    return SpoolContents(next_id, pending, lanes)


def lanes(connection: psycopg.Connection, keys: Sequence[LaneKey],
          limit: int) -> dict[LaneKey, list[StoredDelivery]]:
    """Several lanes' pending rows in one round trip: each lane's first ``limit``, in
    lane order (sequence, then commit order)."""
    rows = connection.execute(
        "SELECT id, hook_id, call_id, event_id, hook_event, webhook_id, payload, created, "
        "attempts, next_attempt, trigger FROM (SELECT d.*, row_number() OVER (PARTITION BY "
        "d.hook_id, d.call_id ORDER BY d.sequence, d.seq) AS n FROM deliveries d JOIN "
        "unnest(%b::text[], %b::text[]) AS k(hook_id, call_id) ON d.hook_id = k.hook_id "
        "AND d.call_id = k.call_id WHERE d.state = 'pending') AS r WHERE n <= %s "
        "ORDER BY hook_id, call_id, sequence, seq",
        ([hook_id for hook_id, _ in keys], [call_id or "" for _, call_id in keys],
         limit)).fetchall()
    found: dict[LaneKey, list[StoredDelivery]] = {key: [] for key in keys}
    for r in rows:
        found[(r[1], r[2] or None)].append(StoredDelivery(
            r[0], r[1], r[2] or None, r[3], r[4], r[5], json.loads(r[6]), r[7], r[8], r[9],
            r[10]))
    return found


def end_lane(connection: psycopg.Connection, hook_id: str, call_id: str | None,
             state: str, now: float) -> int:
    cursor = connection.execute(
        "UPDATE deliveries SET state = %s, finished = %s WHERE state = 'pending' "
        "AND hook_id = %s AND call_id = %s", (state, now, hook_id, call_id or ""))
    return cursor.rowcount


def attempts_page(connection: psycopg.Connection, account_id: str, hook_id: str | None,
                  page_size: int, start_key: int | None, only: AttemptFilter) -> AttemptPage:
    where, args = only.conditions(account_id, hook_id, start_key, "%s")
    rows = connection.execute(
        ("SELECT id, %s FROM attempts WHERE %s ORDER BY id DESC LIMIT %%s"
         % (", ".join(ATTEMPT_FIELDS), " AND ".join(where))).encode(),
        args + [page_size + 1]).fetchall()
    return attempt_page(rows, page_size)


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


def insert_copies(connection: psycopg.Connection, rows: list[DeliveryRow],
                  owner: str | None = None, lease_seconds: float = 0.0) -> list[LaneKey]:
    """Copies repeat an event on purpose: not under the (hook, event) key.  With an
    ``owner``, their lanes' leases are claimed in the same transaction: the lanes it
    holds now (the others' owners deliver the copies)."""
    values = [row.values() for row in rows]
    connection.execute(("INSERT INTO deliveries (%s) SELECT * FROM %s"
                        % (", ".join(_DELIVERY_COLUMNS), _unnest(_DELIVERY_TYPES))).encode(),
                       _columns(values, len(_DELIVERY_COLUMNS)))
    if owner is None:
        return []
    lanes = sorted({(row.hook_id, row.call_id or "") for row in rows})
    claimed = connection.execute(
        ("INSERT INTO lanes (hook_id, call_id, owner, expires_at) SELECT c.hook_id, "
         "c.call_id, %%s, now() + %%s * interval '1 second' FROM unnest(%%s::text[], "
         "%%s::text[]) AS c(hook_id, call_id) ORDER BY 1, 2 %s RETURNING hook_id, call_id"
         % _TAKE_LEASE).encode(), [owner, lease_seconds] + _columns(lanes, 2)).fetchall()
    return [(hook_id, call_id or None) for hook_id, call_id in claimed]


def prune(connection: psycopg.Connection, before: float) -> tuple[int, int]:
    attempts = connection.execute("DELETE FROM attempts WHERE timestamp < %s",
                                  (before,)).rowcount
    finished = connection.execute("DELETE FROM deliveries WHERE state <> 'pending' "
                                  "AND finished < %s", (before,)).rowcount
    return attempts, finished


def once_key(trigger: str, event_id: str | None, hook_event: str | None,
             payload: Mapping[str, Any]) -> str | None:
    """The key a call event's delivery is enqueued once under, per hook, whichever
    instance enqueues it: the event (``event_id``), except for an event a channel
    fires at most once, keyed by the call, so a reconciled create or destroy that
    one instance makes after a restart never doubles the real one another instance
    heard (their event_ids differ).  None: not under the key (copies: replay, resend)."""
    if trigger != EVENT or event_id is None:
        return None
    call_id = payload.get("call_id")
    if hook_event in ONCE_PER_CALL and call_id:
        return "%s/%s/%s" % (hook_event, payload.get("switch") or "", call_id)
    return event_id
