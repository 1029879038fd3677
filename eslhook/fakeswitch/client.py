"""One inbound event-socket connection to the fake switch.

Speaks mod_event_socket's side of the protocol (FreeSWITCH 1.10's
``parse_command``): auth, event/noevents/nixevent/filter, myevents,
sendevent, sendmsg, api, bgapi, log/nolog, linger/nolinger/divert_events
(refused, as on any inbound socket), exit.  Command header names are
caseless.  Every write goes through ``send`` so frames never interleave
and the switch's fault injections (stall, cut a frame) apply to replies
and events alike.

(Over 400 lines: one method per ESL command, each short; they share the
connection's subscription and write lock, so splitting them would only move
that state around.)
"""

from __future__ import annotations

import logging
import re
import socket
from typing import TYPE_CHECKING

import gevent
from gevent.lock import Semaphore

from eslhook.fakeswitch import protocol
from eslhook.fakeswitch.protocol import Command, CommandReader, command_reply

if TYPE_CHECKING:
    from eslhook.fakeswitch.server import FakeSwitch, Outgoing

log = logging.getLogger(__name__)

WRITE_TIMEOUT_SECONDS = 10.0  # a client that reads nothing this long is dropped
RECV_BYTES = 65536

# switch_event.c EVENT_NAMES (FreeSWITCH 1.10); unknown names are ignored, as there.
EVENT_NAMES = frozenset("""
CUSTOM CLONE CHANNEL_CREATE CHANNEL_DESTROY CHANNEL_STATE CHANNEL_CALLSTATE
CHANNEL_ANSWER CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CHANNEL_EXECUTE
CHANNEL_EXECUTE_COMPLETE CHANNEL_HOLD CHANNEL_UNHOLD CHANNEL_BRIDGE
CHANNEL_UNBRIDGE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_OUTGOING
CHANNEL_PARK CHANNEL_UNPARK CHANNEL_APPLICATION CHANNEL_ORIGINATE CHANNEL_UUID
API LOG INBOUND_CHAN OUTBOUND_CHAN STARTUP SHUTDOWN PUBLISH UNPUBLISH TALK
NOTALK SESSION_CRASH MODULE_LOAD MODULE_UNLOAD DTMF MESSAGE PRESENCE_IN
NOTIFY_IN PRESENCE_OUT PRESENCE_PROBE MESSAGE_WAITING MESSAGE_QUERY ROSTER
CODEC BACKGROUND_JOB DETECTED_SPEECH DETECTED_TONE PRIVATE_COMMAND HEARTBEAT
TRAP ADD_SCHEDULE DEL_SCHEDULE EXE_SCHEDULE RE_SCHEDULE RELOADXML NOTIFY
PHONE_FEATURE PHONE_FEATURE_SUBSCRIBE SEND_MESSAGE RECV_MESSAGE REQUEST_PARAMS
CHANNEL_DATA GENERAL COMMAND SESSION_HEARTBEAT CLIENT_DISCONNECTED
SERVER_DISCONNECTED SEND_INFO RECV_INFO RECV_RTCP_MESSAGE SEND_RTCP_MESSAGE
CALL_SECURE NAT RECORD_START RECORD_STOP PLAYBACK_START PLAYBACK_STOP
CALL_UPDATE FAILURE SOCKET_DATA MEDIA_BUG_START MEDIA_BUG_STOP
CONFERENCE_DATA_QUERY CONFERENCE_DATA CALL_SETUP_REQ CALL_SETUP_RESULT
CALL_DETAIL DEVICE_STATE TEXT SHUTDOWN_REQUESTED ALL
""".split())

# What ``myevents`` turns on (mod_event_socket.c, parse_command).
MYEVENTS_NAMES = frozenset("""
CHANNEL_ANSWER CHANNEL_APPLICATION CHANNEL_BRIDGE CHANNEL_CREATE CHANNEL_DATA
CHANNEL_DESTROY CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP
CHANNEL_HANGUP_COMPLETE CHANNEL_ORIGINATE CHANNEL_UUID CHANNEL_OUTGOING
CHANNEL_PARK CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_STATE
CHANNEL_UNBRIDGE CHANNEL_UNPARK DETECTED_SPEECH DTMF NOTALK TALK
""".split())
FORMATS = ("plain", "json", "xml")
# switch_log_str2level names; a number 0..7 is taken as it is.
LOG_LEVELS = {"console": 0, "alert": 1, "crit": 2, "err": 3, "error": 3,
              "warning": 4, "notice": 5, "info": 6, "debug": 7}
NOT_CONTROLLING = "-ERR not controlling a session"


class Subscription:
    """What one connection asked for: format, event names, filters."""

    def __init__(self) -> None:
        self.enabled = False
        self.fmt = "plain"
        self.names: set[str] = set()
        self.subclasses: set[str] = set()
        self.filters: list[tuple[str, str]] = []
        self.myevents = False
        self.session_uuid: str | None = None  # myevents <uuid>: that call only

    def subscribe(self, words: list[str]) -> int:
        """Add names (after an optional format word); returns names taken."""
        if words and words[0].lower() in FORMATS:
            self.fmt = words.pop(0).lower()
        taken, custom = 0, False
        for word in words:
            if custom:
                self.subclasses.add(word)
            elif word.upper() in EVENT_NAMES:
                taken += 1
                self.names.add(word.upper())
                custom = custom or word.upper() == "CUSTOM"
        self.enabled = self.enabled or taken > 0
        return taken

    def nix(self, words: list[str]) -> int:
        taken = 0
        for word in words:
            name = word.upper()
            if name not in EVENT_NAMES:
                self.subclasses.discard(word)
                continue
            taken += 1
            if name == "ALL":
                self.names.clear()
            elif "ALL" in self.names:
                self.names = set(EVENT_NAMES - {"ALL", name})  # stays mutable
            else:
                self.names.discard(name)
        return taken

    def clear(self) -> None:
        self.enabled = self.myevents = False
        self.session_uuid = None
        self.names.clear()
        self.subclasses.clear()

    def watch_session(self, session_uuid: str | None) -> None:
        """``myevents``: the call's events only (any call's without a uuid)."""
        self.myevents = self.enabled = True
        self.session_uuid = session_uuid
        self.names |= MYEVENTS_NAMES

    def wants(self, name: str, subclass: str, headers) -> bool:
        if not self.enabled:
            return False
        if "ALL" not in self.names:
            if name not in self.names:
                return False
            if name == "CUSTOM" and subclass and subclass not in self.subclasses:
                return False
        if self.filters and not _filters_pass(self.filters, headers()):
            return False
        return not self.myevents or self._is_session_event(headers())

    def _is_session_event(self, headers) -> bool:
        unique_id = headers.get("Unique-ID")
        return bool(unique_id) and self.session_uuid in (None, unique_id)


def _filter_value_matches(actual: str, wanted: str) -> bool:
    if wanted.startswith("/"):
        pattern = wanted[1:-1] if wanted.endswith("/") and len(wanted) > 1 else wanted[1:]
        try:
            return re.search(pattern, actual) is not None
        except re.error:
            return False
    return actual.lower() == wanted.lower()


def _filters_pass(filters: list[tuple[str, str]], headers) -> bool:
    """mod_event_socket's rule: any '+' filter matching lets the event
    through, a matching '-' filter vetoes it; header names are caseless."""
    lowered = {k.lower(): v for k, v in headers.items()}
    send = False
    for name, wanted in filters:
        actual = lowered.get(name.lower())
        if actual is None:
            continue
        positive = True
        stripped = wanted.lstrip("+- ")
        for char in wanted[:len(wanted) - len(stripped)]:
            positive = {"+": True, "-": False}.get(char, positive)
        if send and positive:
            continue
        if _filter_value_matches(actual, stripped):
            if not positive:
                return False
            send = True
    return send


class Client:
    """One connection: reader loop in the server's greenlet, writes locked."""

    def __init__(self, sock: socket.socket, address, switch: FakeSwitch) -> None:
        self.sock = sock
        self.address = address
        self.switch = switch
        self.authed = False
        self.subscription = Subscription()
        self.closed = False
        self.logging = False  # "log" was sent (the fake has no log lines to send)
        self._write_lock = Semaphore()

    def __repr__(self) -> str:
        return "Client(%s:%s)" % tuple(self.address[:2])

    # -- writing ---------------------------------------------------------
    def send(self, data: bytes, *, cut_at: int | None = None) -> bool:
        """Write a whole frame (or its first ``cut_at`` bytes); False if gone."""
        with self._write_lock:
            self.switch.wait_out_stall()
            if self.closed:
                return False
            try:
                with gevent.Timeout(WRITE_TIMEOUT_SECONDS):
                    self.sock.sendall(data if cut_at is None else data[:cut_at])
            except (OSError, gevent.Timeout) as exc:
                log.info("%r: write failed (%s), dropping it", self, exc or "timeout")
                self.close()
                return False
        return True

    def send_event(self, outgoing: Outgoing) -> bool:
        sub = self.subscription
        if not sub.wants(outgoing.name, outgoing.subclass, outgoing.headers):
            return False
        frame = outgoing.frame(sub.fmt)
        if self.switch.take_cut_request():
            body_at = frame.index(b"\n\n") + 2
            self.send(frame, cut_at=body_at + (len(frame) - body_at) // 2)
            log.info("%r: event frame cut mid-body (fault injection)", self)
            self.close()
            return False
        return self.send(frame)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.switch.subscription_changed()  # the timeline may have to pause now

    def goodbye(self, text: str = protocol.GOODBYE) -> None:
        self.send(protocol.disconnect_notice(text))
        self.close()

    # -- reading ---------------------------------------------------------
    def serve(self) -> None:
        reader = CommandReader()
        if not self.send(protocol.AUTH_REQUEST):
            return
        while not self.closed:
            try:
                data = self.sock.recv(RECV_BYTES)
            except OSError:
                break
            if not data:
                break
            reader.feed(data)
            try:
                for command in reader.commands():
                    if not self.dispatch(command):
                        return
            except protocol.CommandTooLong as exc:
                log.warning("%r: %s; closing", self, exc)
                break
        self.close()

    def dispatch(self, command: Command) -> bool:
        """Answer one command; False when the connection must end."""
        verb = command.verb
        if verb == "exit" or command.line.startswith("..."):
            self.send(command_reply("+OK bye"))
            self.goodbye()
            return False
        if not self.authed:
            return self._before_auth(command)
        handler = _HANDLERS.get(verb)
        if handler is None:
            self.send(command_reply("-ERR command not found"))
            return True
        handler(self, command)
        return not self.closed

    def _before_auth(self, command: Command) -> bool:
        if command.verb != "auth":
            self.send(command_reply("-ERR command not found"))
            return True
        if command.line[5:] == self.switch.password:  # exact, like strcmp
            self.authed = True
            self.send(command_reply("+OK accepted"))
            return True
        log.info("%r: wrong password", self)
        self.send(command_reply("-ERR invalid"))
        self.goodbye()
        return False

    # -- commands --------------------------------------------------------
    def reply(self, text: str, *extra: tuple[str, str]) -> None:
        self.send(command_reply(text, *extra))

    def _event(self, command: Command) -> None:
        if not self.subscription.subscribe(command.arg.split()):
            self.reply("-ERR no keywords supplied")
            return
        self.reply("+OK event listener enabled %s" % self.subscription.fmt)
        self.switch.subscription_changed()

    def _nixevent(self, command: Command) -> None:
        if not self.subscription.nix(command.arg.split()):
            self.reply("-ERR no keywords supplied")
            return
        self.reply("+OK events nixed")
        self.switch.subscription_changed()

    def _noevents(self, command: Command) -> None:
        sub = self.subscription
        if not sub.enabled:
            self.reply("-ERR not listening for events")
            return
        sub.clear()
        self.reply("+OK no longer listening for events")
        self.switch.subscription_changed()

    def _myevents(self, command: Command) -> None:
        # Only "myevents <uuid> [format]" is known on an inbound socket.
        words = command.arg.split()
        if not words:
            self.reply("-ERR command not found")
            return
        if self.subscription.myevents:
            self.reply("-ERR aready enabled.")  # sic, FreeSWITCH's spelling
            return
        session = words[0] if self.switch.knows_channel(words[0]) else None
        if session is None and len(words) > 1:
            self.reply("-ERR invalid uuid")
            return
        fmt = next((w.lower() for w in words[1:] if w.lower() in FORMATS), None)
        fmt = fmt or next((f for f in ("xml", "json") if f in words[0].lower()), None)
        self.subscription.fmt = fmt or self.subscription.fmt
        self.subscription.watch_session(session)
        self.reply("+OK Events Enabled")
        self.switch.subscription_changed()

    def _filter(self, command: Command) -> None:
        name, _, value = command.arg.partition(" ")
        filters = self.subscription.filters
        if name.lower() == "delete" and value:
            name, _, value = value.partition(" ")
            if name.lower() == "all":
                filters.clear()
            else:
                filters[:] = [(n, v) for n, v in filters
                              if not (n == name and (not value or v == value))]
            self.reply("+OK filter deleted. [%s][%s]" % (name, value))
        elif value:
            if name.lower() == "add":
                name, _, value = value.partition(" ")
            filters.append((name, value))
            self.reply("+OK filter added. [%s]=[%s]" % (name, value))
        else:
            self.reply("-ERR invalid syntax")
            return
        self.switch.subscription_changed()

    def _api(self, command: Command) -> None:
        name, _, arg = command.arg.partition(" ")
        self.send(protocol.api_response(self.switch.run_api(name, arg)))
        self.switch.run_after_reply()

    def _bgapi(self, command: Command) -> None:
        name, _, arg = command.arg.partition(" ")
        job_uuid = command.headers.get("Job-UUID") or self.switch.new_uuid()
        self.reply("+OK Job-UUID: %s" % job_uuid, ("Job-UUID", job_uuid))
        result = self.switch.run_api(name, arg)
        self.switch.publish_generated("BACKGROUND_JOB", [
            ("Job-UUID", job_uuid), ("Job-Command", name)]
            + ([("Job-Command-Arg", arg)] if arg else []), body=result,
            calling=("mod_event_socket.c", "api_exec", "1572"))
        self.switch.run_after_reply()

    def _sendevent(self, command: Command) -> None:
        event_uuid = self.switch.new_uuid()
        name = command.arg.split(" ", 1)[0].upper() if command.arg else ""
        body = command.body.decode("utf-8", "replace") if command.body else None
        self.reply("+OK %s" % event_uuid)
        self.switch.publish_sent_event(name, command.headers.pairs, event_uuid, body)

    def _sendmsg(self, command: Command) -> None:
        uuid = command.arg or command.headers.get("session-id", "")
        if not uuid or uuid not in self.switch.live_channels():
            self.reply("-ERR invalid session id [%s]" % uuid)
            return
        self.reply("+OK")
        self.switch.run_message(uuid, command.headers)

    def _log(self, command: Command) -> None:
        level = command.arg
        number = _log_level(level) if level else 7
        if number is None:
            self.reply("-ERR invalid log level")
            return
        self.logging = True
        self.reply("+OK log level %s [%d]" % (level, number))

    def _nolog(self, command: Command) -> None:
        if not self.logging:
            self.reply("-ERR not loging")  # sic, as FreeSWITCH spells it
            return
        self.logging = False
        self.reply("+OK no longer logging")

    def _not_controlling(self, command: Command) -> None:
        self.reply(NOT_CONTROLLING)

    def _divert_events(self, command: Command) -> None:
        self.reply(NOT_CONTROLLING + ".")  # this one ends with a full stop


def _log_level(text: str) -> int | None:
    if text.isdigit():
        return int(text) if int(text) <= 7 else None
    return LOG_LEVELS.get(text.lower())


_HANDLERS = {
    "event": Client._event, "events": Client._event, "nixevent": Client._nixevent,
    "noevents": Client._noevents, "myevents": Client._myevents,
    "filter": Client._filter, "api": Client._api, "bgapi": Client._bgapi,
    "sendevent": Client._sendevent, "sendmsg": Client._sendmsg,
    "log": Client._log, "nolog": Client._nolog,
    "linger": Client._not_controlling, "nolinger": Client._not_controlling,
    "divert_events": Client._divert_events,
}
