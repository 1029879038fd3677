"""One FreeSWITCH switch as an event source: connect, subscribe, stay alive.

``SwitchSource`` owns the life of one configured switch: a new
``EslConnection`` per attempt, reconnection forever with capped exponential
backoff plus jitter, a liveness check (HEARTBEAT every 20 s; no byte for
``liveness_timeout_seconds`` means the connection is dead even if TCP does not
know yet), and the hand-off of every event to ``sink(event, switch_name)``,
which must never block: the reader must keep up, because FreeSWITCH drops
events for a slow socket and then kills it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import gevent
from gevent.event import Event

from ..config import SwitchConfig
from ..events import subscription_command
from ..supervise import RESTART, Deadline, Supervised, Supervisor, deadline_of
from .esl import AuthenticationError, EslConnection, NotConnectedError

log = logging.getLogger(__name__)

# Event names come from the wire and become /metrics labels: at most this
# many, each at most this long; any other name is counted as OTHER_EVENT_NAME.
MAX_EVENT_NAMES = 64
MAX_EVENT_NAME_LENGTH = 64
OTHER_EVENT_NAME = "_other"
STOP_SECONDS = 2.0   # stopped on its own: how long ``exit`` may take


@dataclass(frozen=True)
class ReconnectPolicy:
    """Capped exponential backoff with jitter; first retry <= 1 s, cap 10 s."""

    first_seconds: float = 0.5
    cap_seconds: float = 10.0
    jitter: float = 0.2   # +/- fraction of the delay

    def __post_init__(self):
        if not 0 < self.first_seconds <= self.cap_seconds:
            raise ValueError("ReconnectPolicy.first_seconds must be in (0, cap_seconds]")
        if not 0 <= self.jitter < 1:
            raise ValueError("ReconnectPolicy.jitter must be in [0, 1)")

    def delay(self, failures: int, rand: float) -> float:
        """Delay before attempt number ``failures`` (1 = first retry).

        ``rand`` is uniform in [0, 1): passed in so the function stays pure.
        """
        base = min(self.cap_seconds, self.first_seconds * 2 ** max(0, failures - 1))
        return min(self.cap_seconds, base * (1 + self.jitter * (2 * rand - 1)))


@dataclass
class SwitchState:
    """What an operator (and /healthz later) wants to know about a switch."""

    connected: bool = False
    since: float = field(default_factory=time.time)   # of the current state
    last_error: str | None = None
    connects: int = 0
    reconnects: int = 0
    auth_failures: int = 0
    core_uuid: str | None = None
    events: int = 0
    malformed: int = 0         # events skipped: unreadable, or their mapping failed
    protocol_errors: int = 0   # connections dropped: framing could not be resynced
    events_by_name: dict[str | None, int] = field(default_factory=dict)   # for /metrics


def _label(name: str | None, known: int) -> str | None:
    """The events_by_name key for a name not counted yet (see MAX_EVENT_NAMES)."""
    if known < MAX_EVENT_NAMES and (name is None or len(name) <= MAX_EVENT_NAME_LENGTH):
        return name
    return OTHER_EVENT_NAME


class SwitchSource:
    def __init__(self, config: SwitchConfig,
                 sink: Callable[[Mapping[str, str], str], None], *,
                 policy: ReconnectPolicy = ReconnectPolicy(),
                 liveness_check_seconds: float = 1.0,
                 malformed_log_seconds: float = 10.0,
                 on_connected: Callable[["SwitchSource", EslConnection], None] | None = None):
        self.config = config
        self.name = config.name
        self.sink = sink
        self.policy = policy
        self.liveness_check_seconds = liveness_check_seconds
        self.on_connected = on_connected
        self.malformed_log_seconds = malformed_log_seconds
        self._malformed_quiet_until = 0.0   # monotonic; one log line per interval
        self._malformed_unlogged = 0
        self.state = SwitchState()
        self.connection: EslConnection | None = None
        self._stopping = Event()
        self._runner: Supervised | None = None
        self._stop_deadline = Deadline(0.0)
        self._supervisor: Supervisor | None = None

    # -- the event path: runs in the reader greenlet, once per event ---------

    def _on_event(self, event: Mapping[str, str]) -> None:
        state = self.state
        state.events += 1
        name = event.get("Event-Name")
        counts = state.events_by_name
        if name in counts:
            counts[name] += 1
        else:
            key = _label(name, len(counts))
            counts[key] = counts.get(key, 0) + 1
        core_uuid = event.get("Core-UUID")
        if core_uuid != self.state.core_uuid and core_uuid:
            self._core_uuid_seen(core_uuid)
        if name != "HEARTBEAT":
            self.sink(event, self.name)

    def _core_uuid_seen(self, core_uuid: str) -> None:
        if self.state.core_uuid is not None:
            log.warning("switch %s restarted: Core-UUID %.80s -> %.80s",
                        self.name, self.state.core_uuid, core_uuid)
        self.state.core_uuid = core_uuid

    def _on_malformed(self, reason: str) -> None:
        """Count a skipped event; log one line per ``malformed_log_seconds``."""
        self.state.malformed += 1
        now = time.monotonic()
        if now < self._malformed_quiet_until:
            self._malformed_unlogged += 1
            return
        log.warning("switch %s: skipped a malformed event (%d more since the last "
                    "such line; %d in all): %s", self.name, self._malformed_unlogged,
                    self.state.malformed, reason)
        self._malformed_quiet_until = now + self.malformed_log_seconds
        self._malformed_unlogged = 0

    # -- connection life ----------------------------------------------------

    def start(self, supervisor: Supervisor | None = None) -> None:
        """Run ``run()`` in a greenlet, restarted should a bug end it."""
        self._supervisor = supervisor or Supervisor()
        self._runner = self._supervisor.spawn_supervised(
            "switch " + self.name, self.run, how=RESTART)

    def run(self) -> None:
        """Connect and reconnect until ``stop()``; raises only for a bug (a restart
        starts afresh: the connection it had is closed)."""
        try:
            self._reconnect_until_stopped()
        except BaseException as exc:   # a bug, or killed: /healthz must not say connected
            reason = "stopped" if self._stopping.is_set() else "source failed: %r" % exc
            if self.connection is not None:
                self.connection.close(reason)
            self._set_down(reason)
            raise

    def _reconnect_until_stopped(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            if self._connect_and_serve():
                failures = 0  # a session that worked resets the backoff
            failures += 1
            if self._stopping.is_set():
                break
            delay = self.policy.delay(failures, random.random())
            self.state.reconnects += 1
            log.info("switch %s: reconnecting in %.1fs", self.name, delay)
            self._stopping.wait(delay)

    def _connect_and_serve(self) -> bool:
        """One connection's life; True if it got as far as subscribing."""
        cfg = self.config
        conn = EslConnection(cfg.host, cfg.port, cfg.password,
                             timeout=cfg.connect_timeout_seconds,
                             command_timeout=cfg.command_timeout_seconds,
                             on_event=self._on_event, on_malformed=self._on_malformed,
                             supervisor=self._supervisor)
        self.connection = conn
        try:
            conn.connect()
            reply = conn.send(subscription_command(cfg.format))
            if not reply.ok:
                raise NotConnectedError("subscription refused: %s" % reply.data)
        except AuthenticationError as exc:
            self.state.auth_failures += 1
            self._set_down("authentication failed")
            log.error("switch %s (%s:%s): %s", self.name, cfg.host, cfg.port, exc)
            conn.close("authentication failed")
            return False
        except NotConnectedError as exc:
            self._set_down(str(exc))
            log.warning("switch %s (%s:%s): %s", self.name, cfg.host, cfg.port, exc)
            conn.close(str(exc))
            return False
        self.state.connects += 1
        self.state.connected, self.state.since = True, time.time()
        log.info("switch %s connected (%s:%s, %s events)", self.name, cfg.host,
                 cfg.port, cfg.format)
        if self.on_connected is not None:
            self.on_connected(self, conn)
        self._watch(conn)
        return True

    def _watch(self, conn: EslConnection) -> None:
        """Wait until the connection closes, is silent too long, or we stop."""
        limit = self.config.liveness_timeout_seconds
        while not conn.closed.is_set():
            # a stop wakes this at once, not at the next liveness check
            gevent.wait([conn.closed, self._stopping], self.liveness_check_seconds, count=1)
            if conn.closed.is_set():
                break
            if self._stopping.is_set():
                conn.stop(timeout=self._stop_deadline.left())
                break
            silent = time.monotonic() - conn.last_received
            if silent > limit:
                log.warning("switch %s: nothing received for %.0fs, reconnecting",
                            self.name, silent)
                conn.close("liveness timeout (%.0fs silent)" % silent)
        reason = conn.close_reason
        if conn.protocol_error:
            self.state.protocol_errors += 1
        if conn.disconnect_notice:
            reason = "%s (%s)" % (reason, conn.disconnect_notice)
        self._set_down(reason)
        if not self._stopping.is_set():
            log.warning("switch %s disconnected: %s", self.name, reason)

    def _set_down(self, reason: str | None) -> None:
        if self.state.connected:
            self.state.since = time.time()
        self.state.connected = False
        self.state.last_error = reason

    def stop(self, deadline: Deadline | None = None) -> None:
        """Stop intake: ``run()`` says ``exit`` to the switch (waiting for its reply
        until ``deadline`` at most) and returns; then the greenlet ``start()`` made
        is joined until the deadline and killed if still running."""
        self._stop_deadline = deadline_of(deadline, STOP_SECONDS)
        self._stopping.set()
        if self._runner is not None:
            self._runner.greenlet.join(timeout=self._stop_deadline.left())
            self._runner.kill()
