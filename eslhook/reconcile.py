"""No call left open: compare what eslhook believes with the switch's list.

After every (re)connect, and every ``interval_seconds``, the switch is asked
for its live channels (``api show channels as json``) twice,
``confirm_seconds`` apart, because that list lags both ways (it shows a new
channel late, and a gone one for a while).  Then, with what eslhook believes
*now* (real events that arrived in the meantime win):

- an open call is over if eslhook knew it ``confirm_seconds`` before the
  first read was sent, had no event for it since, and both reads lack it
  (a live channel is listed by then, however late): a ``channel_destroy``
  with ``reconciled: true`` and ``hangup_cause`` ``UNKNOWN`` is emitted (or
  ``SWITCH_RESTARTED`` at once when the switch's Core-UUID changed).  A call
  heard of later cannot be judged by those reads: a busy switch writes its
  answer in the same packet as newer events (``OpenCalls.mark`` draws the line);
- a live channel present in both reads that eslhook never saw created, and
  that did not just end, gets a ``channel_create`` (and ``channel_answer``
  when it is answered), built from ``uuid_dump`` when the switch answers it,
  else from the list row.

Synthetic payloads go through the same dispatch as real ones, so per-call
ordering holds: a synthetic destroy queues behind everything already sent
for that call.  ``plan()`` is pure and holds every decision.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import cast

from gevent.event import Event
from gevent.pool import Group

from .calls_store import OpenCall, OpenCallStore, kept_fields
from .config import ReconcileConfig
from .mapping import GREGORIAN_UNIX_OFFSET_SECONDS
from .payload import ChannelPayload
from .supervise import KILL_GRACE_SECONDS, RESTART, Deadline, Supervisor

log = logging.getLogger(__name__)

ANSWERED_CALLSTATES = frozenset(("ACTIVE", "HELD"))


@dataclass(frozen=True)
class Plan:
    destroy: tuple[tuple[OpenCall, str], ...]   # (call, hangup_cause)
    create: tuple[dict, ...]                    # show-channels rows

    def __bool__(self) -> bool:
        return bool(self.destroy or self.create)


def parse_channels(text: str) -> dict[str, dict]:
    """Rows of ``show channels as json`` by uuid; ValueError if not that."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or "row_count" not in data:
        raise ValueError("not a show channels answer: %r" % text[:120])
    # Idle FreeSWITCH answers {"row_count": 0} with no "rows" at all.
    return {row["uuid"]: row for row in data.get("rows", ()) if row.get("uuid")}


def plan(open_calls: Mapping[str, OpenCall], ended: Collection[str],
         first: Mapping[str, dict], second: Mapping[str, dict], core_uuid: str | None,
         *, mark: int, seen_before: float) -> Plan:
    """What to emit, given two reads of the switch's channels and what we believe.

    A call is judged by the reads only if it was first seen before
    ``seen_before`` (the first read's sending time less ``confirm_seconds``,
    so a live one is listed by then, however late the list is) and had no
    event since the first read was sent (``call.epoch < mark``,
    ``OpenCalls.mark``).  ``ended``: calls that ended recently, which the list
    may still show.
    """
    destroy, create = [], []
    for call in open_calls.values():
        if call.epoch >= mark:
            continue
        if core_uuid and call.core_uuid and call.core_uuid != core_uuid:
            destroy.append((call, "SWITCH_RESTARTED"))   # that switch is gone: at once
        elif (call.first_seen <= seen_before
              and call.call_id not in first and call.call_id not in second):
            destroy.append((call, "UNKNOWN"))
    for uuid, row in second.items():
        if uuid in first and uuid not in open_calls and uuid not in ended:
            create.append(row)
    return Plan(tuple(destroy), tuple(create))


def destroy_payload(call: OpenCall, cause: str, now: float) -> ChannelPayload:
    # kept_fields are keys of the call's last payload (or the state file's copy of them)
    payload = cast(ChannelPayload, kept_fields(call))
    payload.update({"hook_event": "channel_destroy", "hangup_cause": cause, "reconciled": True,
                    "timestamp": int(now) + GREGORIAN_UNIX_OFFSET_SECONDS,
                    "event_id": "%s-reconciled-destroy-%s" % (call.core_uuid or "unknown",
                                                              call.call_id)})
    return payload


def row_event(row: Mapping[str, str], core_uuid: str | None, event_name: str) -> dict:
    """Event headers a show-channels row can stand for (no channel variables)."""
    epoch = row.get("created_epoch", "")
    event = {"Event-Name": event_name, "Core-UUID": core_uuid or "",
             "Unique-ID": row["uuid"], "Call-Direction": row.get("direction", ""),
             "Channel-Name": row.get("name", ""),
             "Caller-Caller-ID-Name": row.get("cid_name", ""),
             "Caller-Caller-ID-Number": row.get("cid_num", ""),
             "Caller-Destination-Number": row.get("dest", ""),
             "Caller-Callee-ID-Name": row.get("callee_name", ""),
             "Caller-Callee-ID-Number": row.get("callee_num", "")}
    if epoch.isdigit():
        event["Event-Date-Timestamp"] = str(int(epoch) * 1_000_000)
    return event


class Reconciler:
    """Runs ``plan()`` for one switch after each connect and periodically.

    ``emit(payload, core_uuid)`` is the bridge's dispatch (maps nothing: it
    records, matches and submits).  ``to_payload(event, switch)`` is the
    bridge's mapping of event headers, used for channels we never saw.
    """

    def __init__(self, switch: str, calls: OpenCallStore,
                 emit: Callable[[ChannelPayload, str | None], None],
                 to_payload: Callable[[Mapping[str, str], str], ChannelPayload | None],
                 settings: ReconcileConfig = ReconcileConfig(), *,
                 supervisor: Supervisor | None = None):
        self.switch = switch
        self.calls = calls
        self.emit = emit
        self.to_payload = to_payload
        self.settings = settings
        self.runs = 0
        self.synthesised = 0
        self._group = Group()
        self._supervisor = supervisor or Supervisor()
        self._conn = None
        self._wake = Event()
        # The list may show a gone channel through both reads: its end must be
        # remembered longer than that, or it would be "found open".
        calls.remember_ended_for(4 * settings.confirm_seconds)

    def connected(self, source, conn) -> None:
        """``SwitchSource.on_connected``: must not block the source."""
        self._conn = conn
        self._group.kill(block=False)
        # restarted: a bug in one run must not end reconciling for this connection
        self._supervisor.spawn_supervised("reconciler " + self.switch, self._run, conn,
                                          how=RESTART, group=self._group)

    def stop(self, deadline: Deadline | None = None) -> None:
        """Intake: a run emits what it found, so it is killed, not waited for."""
        self._group.kill(timeout=KILL_GRACE_SECONDS)

    def _run(self, conn) -> None:
        while not conn.closed.is_set():
            try:
                self.run_once(conn)
            except Exception as exc:  # a broken answer must not end reconciling
                if conn.closed.is_set():
                    return
                log.warning("switch %s: reconciliation failed: %s", self.switch, exc)
            if conn.closed.wait(self.settings.interval_seconds):
                return

    def run_once(self, conn) -> Plan:
        core_uuid = conn.api("global_getvar core_uuid").data.strip()
        if not core_uuid or core_uuid.startswith("-"):   # -ERR / -USAGE: not known
            core_uuid = None
        # No yield between the mark and sending the read: any event seen after
        # the mark arrived after the read was sent.
        sent = self.calls.clock()
        mark = self.calls.mark(self.switch)
        first = parse_channels(conn.api("show channels as json").data)
        if conn.closed.wait(self.settings.confirm_seconds):
            return Plan((), ())
        second = parse_channels(conn.api("show channels as json").data)
        todo = plan(self.calls.of_switch(self.switch), self.calls.ended_of(self.switch),
                    first, second, core_uuid, mark=mark,
                    seen_before=sent - self.settings.confirm_seconds)
        for call, cause in todo.destroy:
            if self.calls.is_open(self.switch, call.call_id):   # a real event wins
                self._emit(destroy_payload(call, cause, time.time()), call.core_uuid)
        for row in todo.create:
            self._create(conn, row, core_uuid)
        self.runs += 1   # counted once all it decided is emitted
        if todo:
            log.warning("switch %s reconciled: %d call(s) closed, %d found open",
                        self.switch, len(todo.destroy), len(todo.create))
        return todo

    def _create(self, conn, row: dict, core_uuid: str | None) -> None:
        event = self._dump(conn, row["uuid"]) or row_event(row, core_uuid, "CHANNEL_CREATE")
        answered = (row.get("callstate") in ANSWERED_CALLSTATES
                    or event.get("Answer-State") == "answered")
        for name in ("CHANNEL_CREATE", "CHANNEL_ANSWER") if answered else ("CHANNEL_CREATE",):
            if name == "CHANNEL_CREATE" and self.calls.is_known(self.switch, row["uuid"]):
                return   # its real CHANNEL_CREATE (or its end) arrived meanwhile
            payload = self.to_payload({**event, "Event-Name": name}, self.switch)
            if payload is None:
                return
            payload.update({"reconciled": True, "event_id": "%s-reconciled-%s-%s" % (
                core_uuid or "unknown", payload["hook_event"], row["uuid"])})
            self._emit(payload, core_uuid)

    def _dump(self, conn, uuid: str) -> dict | None:
        """The channel's own headers and variables, when the switch tells."""
        reply = conn.api("uuid_dump %s json" % uuid).data
        try:
            event = json.loads(reply)
        except ValueError:
            return None
        return event if isinstance(event, dict) and event.get("Unique-ID") == uuid else None

    def _emit(self, payload: ChannelPayload, core_uuid: str | None) -> None:
        self.synthesised += 1
        self.emit(payload, core_uuid)

