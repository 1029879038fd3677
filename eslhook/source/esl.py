"""An inbound event-socket client, owned outright (no greenswitch).

``EslConnection`` connects and authenticates within ``timeout`` (a dropped
connection can ``connect()`` again: all per-connection state is reset);
reads the socket in chunks and frames them byte-exactly with
``FrameReader`` (EOF anywhere ends the connection); parses plain and json
events leniently (``parsing.parse_event``: values decoded one at a time
after splitting lines, an inner body kept under ``_body``, invalid UTF-8
replaced); reports an event it cannot read, or whose handler raised, to
``on_malformed`` and goes on (only framing that cannot be resynced,
``ProtocolError``, ends the connection); ends on a ``text/disconnect-notice``;
and bounds every command (``CommandTimeout``), failing those in flight with
``NotConnectedError`` when the connection closes.

Events are handed to ``on_event(headers)`` straight from the reader greenlet:
the caller owns buffering (and must never block).  Which greenswitch 0.0.19
defects this replaced, each with its test: docs/esl-client.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

import gevent
import gevent.socket
from gevent.event import AsyncResult, Event
from gevent.pool import Group

from ..supervise import TASK, Supervisor
from .framing import Frame, FrameReader, ProtocolError
from .parsing import HeaderPicker, parse_event

log = logging.getLogger(__name__)

RECV_BYTES = 256 * 1024

__all__ = ["EslConnection", "NotConnectedError", "AuthenticationError",
           "CommandTimeout", "Reply"]


MAX_REPLIES_OWED = 3      # commands timed out, their replies still to come: then close


class NotConnectedError(Exception):
    """Not connected (any more): the reason says why."""


class AuthenticationError(NotConnectedError):
    """The switch refused our password (or our address, by ACL)."""


class CommandTimeout(NotConnectedError):
    """The switch did not answer a command in time."""


class Reply:
    """A ``command/reply`` or ``api/response``: its headers and its text."""

    __slots__ = ("headers", "data")

    def __init__(self, headers: dict[str, str], data: str):
        self.headers = headers
        self.data = data

    @property
    def ok(self) -> bool:
        return self.data.startswith("+OK")


_GREETINGS = ("auth/request", "text/rude-rejection", "text/disconnect-notice")


def _cut(text: str, limit: int = 300) -> str:
    """A reason fit for a log line (an event can be megabytes)."""
    return text if len(text) <= limit else text[:limit] + "..."


def _notice(frame: Frame) -> str:
    return _cut(frame.body.decode("utf-8", "replace").strip())


class EslConnection:
    """One inbound ESL connection: connect + auth, commands, events inline."""

    def __init__(self, host: str, port: int, password: str, *,
                 timeout: float = 5.0, command_timeout: float = 10.0,
                 on_event: Callable[[Mapping[str, str]], None] | None = None,
                 on_malformed: Callable[[str], None] | None = None,
                 on_bytes: Callable[[bytes], None] | None = None,
                 supervisor: Supervisor | None = None):
        self.host, self.port, self.password = host, port, password
        self.timeout = timeout
        self.command_timeout = command_timeout
        self.on_event = on_event or (lambda event: None)
        self.on_malformed = on_malformed or (lambda reason: None)
        # Every chunk as received, before framing (``eslhook record``).
        self.on_bytes = on_bytes
        # Learns which headers on_event reads of plain events (kept across
        # reconnects): see parsing.HeaderPicker.
        self.picker = HeaderPicker()
        self._group = Group()
        self._supervisor = supervisor or Supervisor()
        self._reset()

    def _reset(self) -> None:
        self.sock: gevent.socket.socket | None = None
        self.connected = False
        self._run = True
        self._commands_sent: list[AsyncResult[Reply]] = []
        self._auth_request_event = Event()
        self._frames = FrameReader()
        self.closed = Event()
        self.close_reason: str | None = None
        self.disconnect_notice: str | None = None
        self.protocol_error = False      # closed because framing was lost
        self.last_received = time.monotonic()

    # -- connecting ---------------------------------------------------------

    def connect(self) -> None:
        """Connect, wait for ``auth/request`` and authenticate, all bounded."""
        if self.sock is not None:
            self.close("reconnecting")
        self._reset()
        try:
            self.sock = gevent.socket.create_connection(
                (self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise NotConnectedError("cannot connect to %s:%s: %s"
                                    % (self.host, self.port, exc)) from None
        self.sock.settimeout(None)
        self.sock.setsockopt(gevent.socket.IPPROTO_TCP, gevent.socket.TCP_NODELAY, 1)
        self.connected = True
        self.start_event_handlers()
        # Woken by the greeting or by the connection closing, whichever first.
        gevent.wait([self._auth_request_event, self.closed], timeout=self.timeout, count=1)
        if self.closed.is_set():
            if self.disconnect_notice is not None:     # rude rejection (ACL)
                raise AuthenticationError("switch closed the connection before auth: %s"
                                          % self.close_reason)
            raise NotConnectedError("%s:%s closed the connection before auth: %s"
                                    % (self.host, self.port, self.close_reason))
        if not self._auth_request_event.is_set():
            self.close("no auth/request greeting")
            raise NotConnectedError("%s:%s sent no auth/request within %ss"
                                    % (self.host, self.port, self.timeout))
        self.authenticate()

    def authenticate(self) -> None:
        reply = self.send("auth %s" % self.password)
        if not reply.ok:
            self.close("authentication failed")
            raise AuthenticationError("authentication failed (%s): wrong password?"
                                      % reply.data)

    def start_event_handlers(self) -> None:
        # One greenlet: events are dispatched inline, no queue between.  A task: it
        # ends with its connection (the source reconnects), a bug included.
        reader = self._supervisor.spawn_supervised("ESL reader", self.receive_events,
                                                   how=TASK, group=self._group)
        self._receive_events_greenlet = reader.greenlet

    # -- reading ------------------------------------------------------------

    def receive_events(self) -> None:
        sock, frames = self.sock, self._frames
        reason = "stopped"
        try:
            while self._run:
                data = sock.recv(RECV_BYTES)  # type: ignore[union-attr]  # connect() set it
                if not data:
                    reason = ("connection closed by the switch"
                              if not frames.buffered else
                              "connection closed in the middle of a frame")
                    if frames.buffered and not self._auth_request_event.is_set():
                        reason = ("connection closed after %d bytes that are not an ESL "
                                  "frame: not an event socket?" % frames.buffered)
                    break
                self.last_received = time.monotonic()
                if self.on_bytes is not None:
                    self.on_bytes(data)
                frames.feed(data)
                for frame in frames.frames():
                    self.handle_frame(frame)
                    if not self._run:    # a disconnect notice: nothing follows it
                        break  # type: ignore[unreachable]  # handle_frame may clear _run
                # A busy switch keeps the socket readable, so recv never blocks: yield
                # after each read, or attempts, the spool's flusher and the API would
                # wait until the burst is over (and deliveries would not overlap ingest).
                gevent.sleep(0)
        except ProtocolError as exc:
            reason = "protocol error, the stream cannot be resynced: %s" % exc
            if not self._auth_request_event.is_set():
                reason = "not an event socket? %s" % exc
            self.protocol_error = True
        except OSError as exc:
            reason = "socket error: %s" % exc
        except Exception as exc:  # a bug must not leave us "connected"
            log.exception("ESL reader failed")
            reason = "reader failed: %r" % exc
        finally:
            self.close(reason)

    def handle_frame(self, frame: Frame) -> None:
        ctype = frame.content_type
        if not self._auth_request_event.is_set() and ctype not in _GREETINGS:
            # mod_event_socket's first frame is always one of these
            self.close("the peer did not ask for auth (its first frame: %r): "
                       "not an event socket?" % _cut(ctype or str(frame.headers), 80))
            return
        if ctype.startswith("text/event-"):
            self.handle_event_frame(frame, ctype)
        elif ctype in ("command/reply", "api/response"):
            data = (frame.headers.get("Reply-Text", "") if ctype == "command/reply"
                    else frame.body.decode("utf-8", "replace"))
            if self._commands_sent:
                self._commands_sent.pop(0).set(Reply(frame.headers, data))
            else:
                log.warning("unexpected %s from %s:%s: %r", ctype, self.host,
                            self.port, data[:200])
        elif ctype == "auth/request":
            self._auth_request_event.set()
        elif ctype == "text/disconnect-notice":
            # The switch is done with us; it closes the socket next, or not
            # (a hung switch, a proxy holding it open).  "linger" (events still
            # to come) is only sent to a client that asked for it: we never do.
            self.disconnect_notice = _notice(frame)
            self.close("the switch sent a disconnect notice")
        elif ctype == "text/rude-rejection":
            self.disconnect_notice = _notice(frame)
            self.close("the switch rejected us: %s" % self.disconnect_notice)
            self._auth_request_event.set()
        else:
            log.debug("ignoring frame %r", frame.headers)

    def handle_event_frame(self, frame: Frame, ctype: str) -> None:
        """Parse and hand on one event; one that fails is reported and skipped.

        Framing is intact here (the body had its Content-Length), so nothing
        one event holds may end the connection and the events behind it.
        """
        try:
            event = parse_event(frame, self.picker)
            if event is not None:
                self.on_event(event)
        except ValueError as exc:      # what the parsers raise for a bad event
            self.on_malformed("%s: %s" % (ctype, _cut(str(exc))))
        except Exception as exc:       # a bug (parser or handler): say what, keep reading
            log.debug("ESL %s:%s: event handler failed", self.host, self.port,
                      exc_info=True)
            self.on_malformed("%s: %s: %s" % (ctype, type(exc).__name__, _cut(str(exc))))

    # -- commands -----------------------------------------------------------

    def send(self, data: str, timeout: float | None = None) -> Reply:
        """Send one command and wait (bounded) for its reply."""
        if not self.connected or self.sock is None:
            raise NotConnectedError("not connected: %s" % (self.close_reason or "never connected"))
        if "\n\n" in data.strip("\n"):
            raise ValueError("a command cannot contain a blank line")
        pending: AsyncResult[Reply] = AsyncResult()
        self._commands_sent.append(pending)
        try:
            self.sock.sendall((data.rstrip("\n") + "\n\n").encode("utf-8"))
            return pending.get(timeout=timeout or self.command_timeout)  # type: ignore[return-value]  # raises Timeout, never None
        except gevent.Timeout:
            waited = timeout or self.command_timeout
            # Replies come in order and this command's entry stays queued, so a late
            # reply is matched to it and dropped.  A switch still sending (our reader
            # is behind a burst of events) keeps the connection: closing it would
            # lose the events in flight.  A silent one, or one with too many replies
            # owed, is not trusted again.
            silent = time.monotonic() - self.last_received >= waited
            if silent or len(self._commands_sent) > MAX_REPLIES_OWED:
                self.close("command timed out: %s" % data.split(" ", 1)[0])
            raise CommandTimeout("no reply to %r within %ss" % (
                data.split(" ", 1)[0], waited)) from None
        except OSError as exc:
            self.close("socket error: %s" % exc)
            raise NotConnectedError("send failed: %s" % exc) from None

    def api(self, command: str, timeout: float | None = None) -> Reply:
        return self.send("api %s" % command, timeout=timeout)

    # -- closing ------------------------------------------------------------

    def close(self, reason: str) -> None:
        """Idempotent: mark closed, fail pending commands, close the socket."""
        if self.closed.is_set():
            return
        self.close_reason = reason
        self.connected = False
        self._run = False
        pending, self._commands_sent = self._commands_sent, []
        for result in pending:
            result.set_exception(NotConnectedError("connection closed: %s" % reason))
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.closed.set()

    def stop(self, timeout: float = 2.0) -> None:
        """Say ``exit`` if we can, then close; never waits longer than timeout."""
        if self.connected and timeout > 0:
            try:
                self.send("exit", timeout=timeout)
            except NotConnectedError:
                pass
        self.close("stopped")
        self._group.kill(block=True, timeout=timeout)
