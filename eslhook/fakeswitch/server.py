"""The fake FreeSWITCH: an ESL inbound-socket server replaying captures.

Replay semantics: one shared timeline, like a real switch's event stream.
- The timeline starts ``settle_seconds`` (default 0.25 s) after the last
  subscription change (``event``, ``nixevent``, ``noevents``, ``myevents``,
  ``filter``) once a client is subscribed, so a client's usual start
  (several ``event``/``filter`` commands in a row) loses nothing; each
  change within the settle time restarts it.  The same holds when the
  timeline resumes after a pause.  It then walks the capture(s) in order,
  paced by ``speed``.  Each event goes to
  every connected client whose subscription (names, filters) wants it, in
  that client's format: the recorded bytes when the formats agree, converted
  otherwise.  A client that subscribes later sees the timeline from there on.
- While no client is subscribed the timeline *pauses* (nothing is lost), so
  a client that reconnects after a drop, ``disconnect_all()`` or
  ``restart()`` continues with the next event.  With
  ``lose_events_while_disconnected()`` it keeps running instead and events
  nobody was subscribed to are gone, as with a real switch.
- Writes are synchronous per event (the event goes to each subscriber in
  turn): ``speed="max"`` is as fast as the slowest subscriber reads.  A
  client that reads nothing for WRITE_TIMEOUT_SECONDS is dropped.
- A capture ending in a ``text/disconnect-notice`` (FreeSWITCH shutting
  down) sends that notice to every client and closes them when the
  timeline reaches it.
- ``replay_done`` is set once every event of the capture(s) was written
  (the end of the first pass when looping).
- Looping rewrites ids, sequence numbers and clocks per iteration: see
  ``eslhook.fakeswitch.rewrite``.
- HEARTBEAT events are generated every ``heartbeat_seconds`` (None/0: off)
  besides those in the capture; ``bgapi`` results come as BACKGROUND_JOB.
- ``uuid_kill`` (or ``sendmsg`` ``hangup``) ends a live channel at once
  with generated CHANNEL_HANGUP / HANGUP_COMPLETE / DESTROY events; the
  replay then skips that channel's remaining recorded events.
  ``originate`` creates a channel from a recorded one (a template) with a
  new Unique-ID: CHANNEL_CREATE and CHANNEL_ANSWER, then it stays up until
  killed.  ``sendevent`` events reach every subscriber.

(Over 400 lines: ``FakeSwitch`` is the one object a test or a user's script
drives, so the timeline, the live channels and the fault injections
(``stall``, ``drop_mid_frame``, ``restart``...) are its methods; the pieces
with logic of their own live beside it: ``client`` (a connection's commands),
``api`` (channel table, ``show``/``status`` text), ``calls`` (generated call
events), ``rewrite`` (loop ids and clocks), ``capture`` (reading files).)
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import gevent
import gevent.event
import gevent.pool
from gevent.server import StreamServer

from eslhook.fakeswitch import api, calls
from eslhook.fakeswitch.capture import Capture, CapturedEvent, load_capture
from eslhook.fakeswitch.client import Client
from eslhook.fakeswitch.events import EventData, convert, event_frame, render_plain
from eslhook.fakeswitch.rewrite import (
    LoopShift, loop_shift, replace_core_uuid, rewrite_for_iteration)
from eslhook.source.framing import Frame
from eslhook.source.parsing import parse_event

log = logging.getLogger(__name__)

MAX_CLIENTS = 256
_YIELD_EVERY = 64  # at speed max, let other greenlets run this often
_POLL_SECONDS = 0.25
DEFAULT_SETTLE_SECONDS = 0.25
_MAX_SETTLE_WAIT_SECONDS = 5.0  # a client changing subscriptions forever cannot hold it longer


def parse_speed(speed: str | float) -> float | None:
    """Replay factor: None for "max", 1.0 for "realtime", else a float > 0."""
    if isinstance(speed, str) and speed.strip().lower() == "max":
        return None
    if isinstance(speed, str) and speed.strip().lower() == "realtime":
        return 1.0
    try:
        factor = float(speed)
    except (TypeError, ValueError):
        raise ValueError("speed: expected 'max', 'realtime' or a number > 0, got %r"
                         % (speed,)) from None
    if not math.isfinite(factor) or factor <= 0:
        raise ValueError("speed: the factor must be a finite number > 0, got %r" % (speed,))
    return factor


@dataclass(frozen=True)
class ReplayPolicy:
    speed: str | float = "max"
    loop: bool = False
    heartbeat_seconds: float | None = 20.0
    settle_seconds: float = DEFAULT_SETTLE_SECONDS

    def __post_init__(self):
        parse_speed(self.speed)
        settle = self.settle_seconds
        if not isinstance(settle, (int, float)) or not math.isfinite(settle) or settle < 0:
            raise ValueError("settle_seconds: expected a number >= 0, got %r" % (settle,))
        if not isinstance(self.loop, bool):
            raise ValueError("loop: expected a bool, got %r" % (self.loop,))
        hb = self.heartbeat_seconds
        if hb is not None and (not isinstance(hb, (int, float)) or not math.isfinite(hb)
                               or hb < 0):
            raise ValueError("heartbeat_seconds: expected None or a number >= 0, got %r"
                             % (hb,))

    @property
    def factor(self) -> float | None:
        return parse_speed(self.speed)


class Outgoing:
    """One event being published, rendered lazily per format."""

    def __init__(self, event: CapturedEvent, iteration: int, shift: LoopShift,
                 core_uuid: str, converted: dict) -> None:
        self.event = event
        self.name = event.name
        self.subclass = event.subclass
        self._iteration = iteration
        self._shift = shift
        self._core_uuid = core_uuid
        self._converted = converted
        self._frames: dict[str, bytes] = {}
        self._headers: dict[str, str] | None = None

    @property
    def as_recorded(self) -> bool:
        return self._iteration == 0 and self.event.core_uuid in ("", self._core_uuid)

    def body(self, fmt: str) -> bytes:
        event = self.event
        key = (id(event), fmt)
        body = self._converted.get(key)
        if body is None:
            body = self._converted[key] = convert(event.body, event.fmt, fmt)
        body = rewrite_for_iteration(body, fmt, self._iteration, self._shift, event.core_uuid)
        return replace_core_uuid(body, event.core_uuid, self._core_uuid)

    def frame(self, fmt: str) -> bytes:
        frame = self._frames.get(fmt)
        if frame is None:
            frame = self._frames[fmt] = event_frame(self.body(fmt), fmt)
        return frame

    def headers(self):
        """Decoded headers as sent (for filters and the channel table)."""
        if self.as_recorded:
            return self.event.headers
        if self._headers is None:
            fmt = self.event.fmt
            frame = Frame({"Content-Type": "text/event-" + fmt}, self.body(fmt))
            self._headers = dict(parse_event(frame) or {})
        return self._headers


class FakeSwitch:
    def __init__(self, captures=(), *, host="127.0.0.1", port=0, password="ClueCon",
                 speed="max", loop=False, core_uuid=None, heartbeat_seconds=20.0,
                 settle_seconds=DEFAULT_SETTLE_SECONDS):
        self.policy = ReplayPolicy(speed=speed, loop=loop, heartbeat_seconds=heartbeat_seconds,
                                   settle_seconds=settle_seconds)
        self._captures: list[Capture] = [
            c if isinstance(c, Capture) else load_capture(Path(c)) for c in captures]
        self.password = password
        self.address: tuple[str, int] = (host, port)
        recorded_core = next((c.core_uuid for c in self._captures if c.core_uuid), "")
        self.core_uuid: str = core_uuid or recorded_core or str(uuid.uuid4())
        self.replay_done = gevent.event.Event()
        self.events_sent = 0
        self._clients: set[Client] = set()
        self._subscribed = gevent.event.Event()
        self._last_subscription_change = time.monotonic()
        self._killed: set[str] = set()  # channels uuid_kill ended: their recording is skipped
        self._after_reply: list = []
        self._group = gevent.pool.Group()
        self._handlers = gevent.pool.Pool(MAX_CLIENTS)
        self._server: StreamServer | None = None
        self._stall_until = 0.0
        self._cut_next = False
        self._lose_events = False
        self._channels = api.ChannelTable()
        self._started = time.monotonic()
        self._sequence = 0
        self._converted: dict = {}
        all_events = [e for c in self._captures for e in c.events]
        self._shift = loop_shift(
            [int(e.headers["Event-Sequence"]) for e in all_events
             if e.headers.get("Event-Sequence", "").isdigit()],
            [e.timestamp_us for e in all_events if e.timestamp_us is not None])
        self._identity = _switch_identity(all_events)
        self._recorded_ids = {e.unique_id for e in all_events if e.unique_id}
        self._template = calls.pick_template(all_events)

    # -- lifecycle -------------------------------------------------------
    def start(self) -> tuple[str, int]:
        if self._server is not None:
            raise RuntimeError("FakeSwitch already started")
        self._server = StreamServer(self.address, self._handle, spawn=self._handlers)
        self._server.start()
        bound = self._server.address
        assert isinstance(bound, tuple)     # a StreamServer on (host, port)
        self.address = bound[:2]
        self._started = time.monotonic()
        self._spawn(self._run_timeline)
        if self.policy.heartbeat_seconds:
            self._spawn(self._run_heartbeats, self.policy.heartbeat_seconds)
        log.info("fake switch listening on %s:%d (%d capture(s), Core-UUID %s)",
                 self.address[0], self.address[1], len(self._captures), self.core_uuid)
        return self.address

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._group.kill(timeout=2)
        self.disconnect_all()
        self._handlers.kill(timeout=2)

    def __enter__(self) -> FakeSwitch:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _spawn(self, func, *args) -> gevent.Greenlet:
        greenlet = self._group.spawn(func, *args)
        greenlet.link_exception(
            lambda g: log.error("fake switch greenlet %s died: %r", func.__name__, g.exception))
        return greenlet

    # -- connections -----------------------------------------------------
    @property
    def connections(self) -> int:
        return len(self._clients)

    @property
    def subscribers(self) -> int:
        return sum(1 for c in self._clients if c.subscription.enabled and not c.closed)

    def wait_for_clients(self, n: int = 1, timeout: float = 5.0) -> bool:
        return _wait_until(lambda: self.connections >= n, timeout)

    def wait_for_subscribers(self, n: int = 1, timeout: float = 5.0) -> bool:
        return _wait_until(lambda: self.subscribers >= n, timeout)

    def _handle(self, sock, address) -> None:
        client = Client(sock, address, self)
        self._clients.add(client)
        log.info("client %s:%s connected", *address[:2])
        try:
            client.serve()
        except Exception:
            log.exception("client %s:%s: handler failed", *address[:2])
        finally:
            self._clients.discard(client)
            client.close()
            self.subscription_changed()
            log.info("client %s:%s disconnected", *address[:2])

    def subscription_changed(self) -> None:
        self._last_subscription_change = time.monotonic()
        if self.subscribers:
            self._subscribed.set()
        else:
            self._subscribed.clear()

    # -- the timeline ----------------------------------------------------
    def _run_timeline(self) -> None:
        self._wait_for_subscriber(first=True)
        has_events = any(c.events for c in self._captures)
        iteration = 0
        while True:
            self._replay_pass(iteration)
            self.replay_done.set()
            if not (self.policy.loop and has_events):
                return
            iteration += 1

    def _replay_pass(self, iteration: int) -> None:
        factor, count = self.policy.factor, 0
        for capture in self._captures:
            previous = None  # no pause for the gap between two recordings
            for event in capture.events:
                previous = self._pace(factor, event.timestamp_us, previous)
                count += 1
                if factor is None and count % _YIELD_EVERY == 0:
                    gevent.sleep(0)
                self._wait_for_subscriber()
                outgoing = Outgoing(event, iteration, self._shift, self.core_uuid,
                                    self._converted)
                if not (event.unique_id and self._was_killed(outgoing)):
                    self._publish(outgoing)
            if capture.disconnect_notice is not None:
                self._shut_down_clients(capture.disconnect_notice)

    @staticmethod
    def _pace(factor: float | None, stamp: int | None, previous: int | None):
        if factor is not None and stamp is not None and previous is not None:
            delay = (stamp - previous) / 1_000_000 / factor
            if delay > 0:
                gevent.sleep(delay)
        return stamp if stamp is not None else previous

    def _wait_for_subscriber(self, first: bool = False) -> None:
        if self._subscribed.is_set() and not first:
            return
        # Bounded waits, re-checked: the flag may change while we wait.
        while not self._subscribed.wait(timeout=_POLL_SECONDS):
            if self._lose_events and not first:
                return
        self._wait_for_settle()

    def _wait_for_settle(self) -> None:
        """Until no subscription changed for ``settle_seconds`` (bounded)."""
        settle = self.policy.settle_seconds
        give_up = time.monotonic() + _MAX_SETTLE_WAIT_SECONDS
        while (left := self._last_subscription_change + settle - time.monotonic()) > 0:
            if time.monotonic() >= give_up:
                return
            gevent.sleep(min(left, _POLL_SECONDS))

    def _was_killed(self, outgoing: Outgoing) -> bool:
        return bool(self._killed) and outgoing.headers().get("Unique-ID") in self._killed

    def _publish(self, outgoing: Outgoing) -> None:
        self._observe(outgoing)
        for client in list(self._clients):
            if client.authed and not client.closed and client.send_event(outgoing):
                self.events_sent += 1

    def _observe(self, outgoing: Outgoing) -> None:
        headers = outgoing.headers()
        sequence = headers.get("Event-Sequence", "")
        if sequence.isdigit():
            self._sequence = max(self._sequence, int(sequence))
        self._channels.observe(outgoing.name, headers, headers.get("Unique-ID", ""))

    def _shut_down_clients(self, notice: bytes) -> None:
        for client in list(self._clients):
            client.send(notice)
            client.close()
        self._channels.clear()

    # -- generated events ------------------------------------------------
    def publish_generated(self, name: str, extra: list[tuple[str, str]], *,
                          body: str | None = None,
                          calling: tuple[str, str, str] = ("switch_event.c", "fake", "0")) -> None:
        self._sequence += 1
        now = time.time()
        headers = [
            ("Event-Name", name), ("Core-UUID", self.core_uuid), *self._identity,
            ("Event-Date-Local", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))),
            ("Event-Date-GMT", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now))),
            ("Event-Date-Timestamp", str(int(now * 1_000_000))),
            ("Event-Calling-File", calling[0]), ("Event-Calling-Function", calling[1]),
            ("Event-Calling-Line-Number", calling[2]), ("Event-Sequence", str(self._sequence)),
            *extra]
        data = EventData(headers, body)
        fields = dict(headers)
        event = CapturedEvent(fmt="plain", body=render_plain(data), name=name,
                              subclass=fields.get("Event-Subclass", ""),
                              unique_id=fields.get("Unique-ID", ""), core_uuid=self.core_uuid,
                              timestamp_us=int(now * 1_000_000), headers=dict(headers))
        self._publish(Outgoing(event, 0, self._shift, self.core_uuid, {}))

    def _run_heartbeats(self, interval: float) -> None:
        while True:
            gevent.sleep(interval)
            self.publish_generated("HEARTBEAT", self._heartbeat_headers(),
                                   calling=("switch_core.c", "send_heartbeat", "95"))

    def _heartbeat_headers(self) -> list[tuple[str, str]]:
        up = time.monotonic() - self._started
        return [
            ("Event-Info", "System Ready"),
            ("Up-Time", api.status_text(self._started, self._channels).split("\n")[0][3:]),
            ("FreeSWITCH-Version", "1.10.12-release+git~20240802T210227Z~a88d069d6f~64bit"),
            ("Uptime-msec", str(int(up * 1000))), ("Session-Count", str(len(self._channels))),
            ("Max-Sessions", "2000"), ("Session-Per-Sec", "200"),
            ("Session-Per-Sec-Last", "0"), ("Session-Per-Sec-Max", "0"),
            ("Session-Per-Sec-FiveMin", "0"),
            ("Session-Since-Startup", str(self._channels.sessions_since_startup)),
            ("Session-Peak-Max", str(self._channels.peak)),
            ("Session-Peak-FiveMin", str(self._channels.peak)), ("Idle-CPU", "100.000000")]

    # -- api and channel control -----------------------------------------
    def run_api(self, command: str, arg: str) -> str:
        cmd = command.lower()
        if cmd == "uuid_kill":
            return self._api_uuid_kill(arg)
        if cmd == "originate":
            return self._api_originate(arg)
        hostname = dict(self._identity).get("FreeSWITCH-Hostname", "fakeswitch")
        return api.run_api(command, arg, self._channels, self._started, hostname,
                           self.core_uuid)

    def live_channels(self) -> api.ChannelTable:
        return self._channels

    def knows_channel(self, unique_id: str) -> bool:
        """Alive now, or a channel the recording will replay (myevents <uuid>)."""
        return unique_id in self._channels or unique_id in self._recorded_ids

    def _api_uuid_kill(self, arg: str) -> str:
        words = arg.split()
        if not words:
            return "-USAGE: %s\n" % api.UUID_KILL_SYNTAX
        if words[0] not in self._channels:
            return "-ERR No such channel!\n"
        # The hangup events follow the reply, as on a real switch.
        cause = words[1] if len(words) > 1 else "NORMAL_CLEARING"
        self._after_reply.append(lambda: self.kill_channel(words[0], cause))
        return "+OK\n"

    def run_after_reply(self) -> None:
        """What the last api command left to do once its reply is written."""
        while self._after_reply:
            self._after_reply.pop(0)()

    def kill_channel(self, unique_id: str, cause: str = "NORMAL_CLEARING") -> None:
        """Hang a live channel up now; its recorded rest is skipped."""
        snapshot = self._channels.snapshot(unique_id)
        if snapshot is None:
            return
        self._killed.add(unique_id)
        for name, extra in calls.hangup_events(snapshot, cause):
            self.publish_generated(name, extra, calling=calls.CALLING[name])

    def _api_originate(self, arg: str) -> str:
        request = calls.parse_originate(arg)
        if request is None:
            return "-USAGE: %s\n" % calls.ORIGINATE_SYNTAX
        unique_id = self.new_uuid()
        for name, extra in calls.originate_events(self._template, request, unique_id,
                                                  self.core_uuid):
            self.publish_generated(name, extra, calling=calls.CALLING[name])
        return "+OK %s\n" % unique_id

    def run_message(self, unique_id: str, headers) -> None:
        """``sendmsg <uuid>``: execute an application, or hang up."""
        snapshot = self._channels.snapshot(unique_id)
        if snapshot is None:
            return
        command = headers.get("call-command", "").lower()
        if command == "hangup":
            self.kill_channel(unique_id, headers.get("hangup-cause") or "NORMAL_CLEARING")
            return
        if command != "execute":
            return
        app = headers.get("execute-app-name", "")
        app_arg = headers.get("execute-app-arg", "")
        app_uuid = headers.get("Event-UUID") or self.new_uuid()
        for name, extra in calls.execute_events(snapshot, app, app_arg, app_uuid):
            self.publish_generated(name, extra, calling=calls.CALLING[name])
        if app.lower() == "hangup":
            self.kill_channel(unique_id, app_arg or "NORMAL_CLEARING")

    def publish_sent_event(self, name: str, pairs: list[tuple[str, str]], event_uuid: str,
                           body: str | None) -> None:
        """``sendevent NAME``: the client's headers, stamped like a fired event."""
        sent = {k.lower(): v for k, v in pairs}
        name = name or sent.get("event-name", "CUSTOM").upper()
        skip = calls.STAMPED_HEADERS | {"content-length"}
        extra = [(k, v) for k, v in pairs if k.lower() not in skip]
        self.publish_generated(name, extra + [("Event-UUID", event_uuid)], body=body,
                               calling=("mod_event_socket.c", "parse_command", "2059"))

    @staticmethod
    def new_uuid() -> str:
        return str(uuid.uuid4())

    # -- fault injection -------------------------------------------------
    def drop_mid_frame(self) -> None:
        """The next event frame written (to whichever client gets it first)
        is cut in the middle of its body, then that connection is closed."""
        self._cut_next = True

    def take_cut_request(self) -> bool:
        cut, self._cut_next = self._cut_next, False
        return cut

    def send_garbage(self, data: bytes) -> None:
        """Raw bytes to every current connection, between two frames."""
        for client in list(self._clients):
            client.send(data)

    def stall(self, seconds: float) -> None:
        """No writes at all (replies, events, heartbeats) on any connection,
        current or new, for ``seconds`` from now.  Returns at once."""
        self._stall_until = max(self._stall_until, time.monotonic() + seconds)

    def wait_out_stall(self) -> None:
        while (left := self._stall_until - time.monotonic()) > 0:
            gevent.sleep(min(left, _POLL_SECONDS))

    def disconnect_all(self) -> None:
        """Close every current connection abruptly (no disconnect notice)."""
        for client in list(self._clients):
            client.close()

    def restart(self, new_core_uuid: bool = True) -> None:
        """Drop every connection, forget live channels; events from now on
        carry a new Core-UUID (when asked).  The timeline goes on."""
        if new_core_uuid:
            self.core_uuid = str(uuid.uuid4())
        self._channels.clear()
        self._started = time.monotonic()
        self.disconnect_all()
        log.info("fake switch restarted, Core-UUID %s", self.core_uuid)

    def lag_show_channels(self, reads: int = 1) -> None:
        """Like the real switch: a channel that is gone is still listed by the
        next ``reads`` answers to ``show channels``."""
        self._channels.lag_reads = reads

    def lose_events_while_disconnected(self, flag: bool = True) -> None:
        """When set, the timeline no longer pauses while nobody subscribes."""
        self._lose_events = flag


def _switch_identity(events: list[CapturedEvent]) -> list[tuple[str, str]]:
    names = ("FreeSWITCH-Hostname", "FreeSWITCH-Switchname", "FreeSWITCH-IPv4",
             "FreeSWITCH-IPv6")
    defaults = ("fakeswitch", "fakeswitch", "127.0.0.1", "::1")
    first = events[0].headers if events else {}
    return [(n, first.get(n, d)) for n, d in zip(names, defaults)]


def _wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        gevent.sleep(0.01)
    return True
