"""A test-local FreeSWITCH that is busy the way a real one is (for reconciliation tests).

``eslhook.fakeswitch`` replays captures; this one generates calls and decides
every TCP write, so a test can put a switch's answer and its events where a
busy FreeSWITCH puts them:

- an ``api`` reply is written in ONE write together with the events queued for
  that connection and not yet written (``reply_first``: the reply overtakes
  them, as mod_event_socket's direct reply overtakes its event queue), and
  ``after_api(read_number)`` may create, answer or end calls "at that very
  moment": their events go in the same write, after (or before) the reply;
- events are otherwise written every ``flush_seconds``, many per write;
- ``show channels`` lags both ways, as FreeSWITCH's core database does: a
  channel is listed ``list_lag`` seconds after its CHANNEL_CREATE (``listed_after``
  per channel) and still listed ``list_lag`` seconds after its HANGUP_COMPLETE;
- a scheduled call stream (``schedule_calls``) only advances while someone is
  subscribed, so ``disconnect_all()`` is a clean reconnect (nothing is lost)
  unless ``lose_events=True`` (a real switch: nothing is replayed).

It speaks just what eslhook sends: auth, ``event json ...``, ``api
global_getvar core_uuid``, ``api show channels as json``, ``api uuid_dump
<uuid> json``, exit.
"""

from __future__ import annotations

import heapq
import json
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from gevent.server import StreamServer

ACCOUNT = "4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"


@dataclass
class Channel:
    uuid: str
    created: float                      # time.monotonic() of its CHANNEL_CREATE
    listed_after: float                 # seconds until show channels lists it
    created_epoch: int = field(default_factory=lambda: int(time.time()))
    answered: bool = False
    ended: float | None = None          # time.monotonic() of its HANGUP_COMPLETE

    def listed(self, now: float, lag: float) -> bool:
        return (now >= self.created + self.listed_after
                and (self.ended is None or now < self.ended + lag))


def event_frame(headers: dict[str, str]) -> bytes:
    body = json.dumps(headers).encode()
    return b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(body) + body


def api_frame(text: str) -> bytes:
    body = text.encode()
    return b"Content-Type: api/response\nContent-Length: %d\n\n" % len(body) + body


def reply_frame(text: str) -> bytes:
    return b"Content-Type: command/reply\nReply-Text: %s\n\n" % text.encode()


class Connection:
    def __init__(self, sock, switch: "BusySwitch"):
        self.sock, self.switch = sock, switch
        self.subscribed = False
        self.closed = False
        self.outbox = bytearray()       # events queued, not yet written
        self.show_reads = 0
        self._lock = Semaphore()

    def write(self, head: bytes = b"", tail: bytes = b"") -> None:
        """One sendall: ``head``, the queued events, ``tail``."""
        with self._lock:
            data, self.outbox = head + bytes(self.outbox) + tail, bytearray()
            if data and not self.closed:
                try:
                    self.sock.sendall(data)
                except OSError:
                    self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass
            self.switch.subscription_changed()

    def serve(self) -> None:
        self.write(b"Content-Type: auth/request\n\n")
        buf = b""
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            buf += data
            while b"\n\n" in buf:
                command, buf = buf.split(b"\n\n", 1)
                self.dispatch(command.decode().strip())
        self.close()

    def dispatch(self, line: str) -> None:
        verb, _, arg = line.partition(" ")
        if verb == "auth":
            self.write(reply_frame("+OK accepted" if arg == self.switch.password
                                   else "-ERR invalid"))
        elif verb == "event":
            self.subscribed = True
            self.write(reply_frame("+OK event listener enabled json"))
            self.switch.subscription_changed()
        elif verb == "api":
            self.api(arg)
        elif verb == "exit":
            self.write(reply_frame("+OK bye"))
            self.close()
        else:
            self.write(reply_frame("-ERR command not found"))

    def api(self, command: str) -> None:
        switch = self.switch
        read = 0
        if command == "show channels as json":
            self.show_reads += 1
            read = self.show_reads
            text = switch.show_channels()
        elif command == "global_getvar core_uuid":
            text = switch.core_uuid
        elif command.startswith("uuid_dump "):
            text = switch.dump(command.split()[1])
        else:
            text = "-ERR %s Command not found!\n" % command.split()[0]
        reply = api_frame(text)
        if read and switch.after_api is not None:
            switch.after_api(read)   # events of "this very moment": the same write
        if switch.reply_first:
            self.write(head=reply)
        else:
            self.write(tail=reply)


class BusySwitch:
    def __init__(self, *, list_lag: float = 0.0, flush_seconds: float = 0.005,
                 reply_first: bool = True, lose_events: bool = False,
                 password: str = "ClueCon"):
        self.core_uuid = str(uuidlib.uuid4())
        self.list_lag = list_lag
        self.flush_seconds = flush_seconds
        self.reply_first = reply_first
        self.lose_events = lose_events
        self.password = password
        self.after_api: Callable[[int], None] | None = None
        self.channels: dict[str, Channel] = {}
        self.listed_rows: list[int] = []    # rows of each show channels answer
        self.lost: set[tuple[str, str]] = set()   # (event name, call) nobody was subscribed to
        self._sequence = 0
        self._connections: set[Connection] = set()
        self._subscribed = Event()
        self._schedule: list[tuple[float, int, str, str]] = []   # (due, n, action, uuid)
        self._paused_since: float | None = None
        self._server: StreamServer | None = None
        self._greenlets: list[gevent.Greenlet] = []

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> tuple[str, int]:
        self._server = StreamServer(("127.0.0.1", 0), self._handle)
        self._server.start()
        self._greenlets = [gevent.spawn(self._flush_loop), gevent.spawn(self._run_schedule)]
        return self._server.address[:2]

    def stop(self) -> None:
        gevent.killall(self._greenlets, timeout=2)
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.close()

    def _handle(self, sock, address) -> None:
        conn = Connection(sock, self)
        self._connections.add(conn)
        try:
            conn.serve()
        finally:
            self._connections.discard(conn)
            conn.close()

    def subscription_changed(self) -> None:
        if any(c.subscribed and not c.closed for c in self._connections):
            self._subscribed.set()
        else:
            self._subscribed.clear()

    def disconnect_all(self) -> None:
        """Close every connection, after writing what is queued (events of the
        stream are lost from now until a new subscription only if ``lose_events``)."""
        for conn in list(self._connections):
            conn.write()
            conn.close()

    # -- calls ----------------------------------------------------------------

    def create(self, call_id: str, listed_after: float | None = None, *,
               publish: bool = True) -> None:
        """A new channel; ``publish=False`` holds its CHANNEL_CREATE back (``publish()`` it)."""
        lag = self.list_lag if listed_after is None else listed_after
        self.channels[call_id] = Channel(call_id, time.monotonic(), lag)
        if publish:
            self.publish("CHANNEL_CREATE", call_id)

    def answer(self, call_id: str) -> None:
        self.channels[call_id].answered = True
        self.publish("CHANNEL_ANSWER", call_id)

    def hangup(self, call_id: str) -> None:
        self.channels[call_id].ended = time.monotonic()
        self.publish("CHANNEL_HANGUP_COMPLETE", call_id)

    def headers(self, name: str, call_id: str) -> dict[str, str]:
        self._sequence += 1
        answered = self.channels[call_id].answered
        headers = {"Event-Name": name, "Core-UUID": self.core_uuid,
                   "Event-Sequence": str(self._sequence),
                   "Event-Date-Timestamp": str(int(time.time() * 1_000_000)),
                   "Unique-ID": call_id, "Call-Direction": "inbound",
                   "Channel-Name": "sofia/internal/1000@127.0.0.1",
                   "Answer-State": "answered" if answered else "ringing",
                   "Caller-Caller-ID-Number": "1000", "Caller-Destination-Number": "2000",
                   "variable_account_id": ACCOUNT, "variable_sip_call_id": "sip-" + call_id}
        if name == "CHANNEL_HANGUP_COMPLETE":
            headers.update({"Hangup-Cause": "NORMAL_CLEARING",
                            "variable_sip_term_status": "200"})
        return headers

    def publish(self, name: str, call_id: str) -> None:
        frame = event_frame(self.headers(name, call_id))
        heard = False
        for conn in self._connections:
            if conn.subscribed and not conn.closed:
                conn.outbox += frame
                heard = True
        if not heard:
            self.lost.add((name, call_id))

    def flush(self) -> None:
        """Write what is queued, one write per connection."""
        for conn in list(self._connections):
            if conn.outbox:
                conn.write()

    def _flush_loop(self) -> None:
        while True:
            gevent.sleep(self.flush_seconds)
            self.flush()

    # -- api --------------------------------------------------------------------

    def show_channels(self) -> str:
        now = time.monotonic()
        rows = [{"uuid": c.uuid, "direction": "inbound", "created_epoch": str(c.created_epoch),
                 "name": "sofia/internal/1000@127.0.0.1", "state": "CS_EXECUTE",
                 "cid_num": "1000", "dest": "2000",
                 "callstate": "ACTIVE" if c.answered else "RINGING"}
                for c in self.channels.values() if c.listed(now, self.list_lag)]
        self.listed_rows.append(len(rows))
        if not rows:
            return '{"row_count": 0}\n'
        return json.dumps({"row_count": len(rows), "rows": rows})

    def dump(self, call_id: str) -> str:
        channel = self.channels.get(call_id)   # there as long as it is listed
        if channel is None or not channel.listed(time.monotonic(), self.list_lag):
            return "-ERR No such channel!\n"
        return json.dumps(self.headers("CHANNEL_DATA", call_id))

    # -- a stream of overlapping calls ----------------------------------------------

    def schedule_calls(self, count: int, per_second: float, duration: tuple[float, float],
                       answer_after: float = 0.02, prefix: str = "load") -> list[str]:
        """``count`` calls starting ``per_second``, each lasting within ``duration``
        (spread evenly, so the stream is the same every run)."""
        now, low, high = time.monotonic(), duration[0], duration[1]
        ids = []
        for n in range(count):
            call_id = "%s-%04d-%s" % (prefix, n, uuidlib.uuid4().hex[:8])
            start = now + n / per_second
            length = low + (high - low) * ((n * 7919) % count) / max(count - 1, 1)
            for due, action in ((start, "create"), (start + answer_after, "answer"),
                                (start + length, "hangup")):
                heapq.heappush(self._schedule, (due, len(self._schedule), action, call_id))
            ids.append(call_id)
        return ids

    @property
    def schedule_done(self) -> bool:
        return not self._schedule

    def _run_schedule(self) -> None:
        while True:
            if not self._schedule:
                gevent.sleep(0.01)
                continue
            if not self.lose_events and not self._subscribed.is_set():
                self._pause_until_subscribed()
                continue
            due, _, action, call_id = self._schedule[0]
            wait = due - time.monotonic()
            if wait > 0:
                gevent.sleep(min(wait, 0.01))
                continue
            heapq.heappop(self._schedule)
            getattr(self, action)(call_id)

    def _pause_until_subscribed(self) -> None:
        """Nobody listening and nothing may be lost: the stream's clock stops."""
        paused = time.monotonic()
        while not self._subscribed.wait(0.05):
            pass
        shift = time.monotonic() - paused
        self._schedule = [(due + shift, n, action, call_id)
                          for due, n, action, call_id in self._schedule]
        heapq.heapify(self._schedule)
