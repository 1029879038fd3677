"""The bridge: ESL sources -> payload mapping -> hook matching -> delivery.

``Bridge`` only wires the stages together and owns their lifecycle; each
stage lives in its own module.  Every stage has ``start()`` and
``stop(deadline)``; their greenlets run under the bridge's one ``Supervisor``
(eslhook/supervise.py).  Shutdown follows gunicorn's gevent worker: signal
handlers only set a flag (so does the death of a critical greenlet), then
intake stops (API, sources say ``exit``, reconcilers), delivery drains, and
whatever is left is killed, all within one ``Deadline``.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass

import gevent
from gevent.event import Event

from . import __version__
from .accounts import AccountDirectory
from .api import ApiContext, ApiServer
from . import stores
from .calls_store import OpenCallStore
from .config import ApiConfig, Config
from .delivery.notices import (
    disable_change, disabled_notice, hooks_by_id, notice_targets)
from .delivery.queue import JOIN_HOLD_SECONDS, DeliveryQueue, DeliveryStats
from .hooks.model import Hook
from .hooks.repository import HookRepository
from .live import EventTap
from .mapping import channel_payload
from .payload import ChannelPayload
from .metrics import AttemptLatency
from .ports import DeliveryControl, DeliveryStatus, IngestStatus, StatusSnapshot, SwitchStatus
from .reconcile import Reconciler
from .statedir import private_dir
from .timings import Timings
from .source.switch import SwitchSource
from .supervise import CriticalGreenletDied, Deadline, Supervisor, deadline_of

log = logging.getLogger(__name__)


@dataclass
class IngestStats:
    mapped: int = 0        # events that became a payload
    unassigned: int = 0    # payloads no account claimed: delivered nowhere
    unmatched: int = 0     # payloads of an account with no hook for them
    submitted: int = 0     # (hook, payload) pairs handed to delivery
    dropped: int = 0       # pairs delivery had no room for


def root_warning(euid: int) -> str | None:
    """What to say at start when running as ``euid`` (None: nothing)."""
    if euid != 0:
        return None
    return ("running as root: eslhook needs no privilege, and a flaw in it would then have "
            "the whole machine; run it as its own user (the systemd unit "
            "scripts/eslhook.service does: User=eslhook)")


def switch_status(source: SwitchSource) -> SwitchStatus:
    state = source.state
    # a copy: the reader goes on counting; None counts frames without an Event-Name
    events: dict[str | None, int] = dict(state.events_by_name)
    return SwitchStatus(
        name=source.name, connected=state.connected, since=state.since,
        last_error=state.last_error, reconnects=state.reconnects,
        auth_failures=state.auth_failures, malformed=state.malformed,
        protocol_errors=state.protocol_errors, events_by_name=events)


def delivery_status(stats: DeliveryStats, buffer_capacity: int,
                    latency: AttemptLatency) -> DeliveryStatus:
    return DeliveryStatus(
        pending=stats.pending, resident=stats.resident, buffer_capacity=buffer_capacity,
        in_flight=stats.in_flight, delivered=stats.delivered, retried=stats.retried,
        given_up=stats.given_up, invalid=stats.invalid, expired=stats.expired,
        hooks_disabled=stats.hooks_disabled, not_durable=stats.not_durable,
        unrecorded=stats.unrecorded, spool_error=stats.spool_error, fleet=stats.fleet,
        duplicates=stats.duplicates, lanes_lost=stats.lanes_lost,
        leases_held=stats.leases_held,
        latency=latency.snapshot())


class Bridge:
    def __init__(self, config: Config, *, delivery: DeliveryQueue | None = None,
                 timings: Timings = Timings()):
        self.config = config
        self.timings = timings
        self.accounts = AccountDirectory.from_config(config)
        # the stores' backends are picked in eslhook/stores.py; the bridge holds interfaces
        self.hooks: HookRepository = stores.hook_repository(config, self.accounts, timings)
        self.delivery = delivery or DeliveryQueue(
            config.delivery, user_agent="eslhook/%s" % __version__,
            store=stores.delivery_store(config, timings),
            hook_lookup=self.hook_by_id, on_disable=self.hook_disabled)
        self._hooks_by_id: tuple[int, Mapping[str, Hook]] = (-1, {})
        self.calls: OpenCallStore = stores.open_call_store(config, timings)
        self._fleet = config.storage.postgresql     # instances share the switches' events
        self.supervisor = Supervisor()      # every greenlet of this bridge
        self.reconcilers = {s.name: Reconciler(s.name, self.calls, self.dispatch,
                                               self.map_event, config.reconcile,
                                               supervisor=self.supervisor)
                            for s in config.switches}
        self.sources = [SwitchSource(s, self.handle_event, policy=timings.reconnect,
                                     liveness_check_seconds=timings.liveness_check_seconds,
                                     malformed_log_seconds=timings.malformed_log_seconds,
                                     on_connected=self.reconcilers[s.name].connected)
                        for s in config.switches]
        self.stats = IngestStats()
        self.latency = AttemptLatency()   # of every HTTP attempt, for /metrics
        self.delivery.on_attempt = self.latency.observe_attempt
        self.api: ApiServer | None = None   # the REST API, when api.listen is set
        self.tap = EventTap()               # the console's live tail (eslhook/live.py)

    # -- the hot path: called by a source's reader greenlet per event -------

    def handle_event(self, event: Mapping[str, str], switch: str) -> None:
        payload = self.map_event(event, switch)
        if payload is not None:
            self.dispatch(payload, event.get("Core-UUID"))

    def map_event(self, event: Mapping[str, str], switch: str) -> ChannelPayload | None:
        return channel_payload(event, switch=switch, accounts=self.accounts,
                               settings=self.config.payload)

    def dispatch(self, payload: ChannelPayload, core_uuid: str | None) -> None:
        """Record, match and submit one payload (real, or synthesised by reconciliation)."""
        stats = self.stats
        stats.mapped += 1
        hold = self._join_hold(payload) if self._fleet else 0.0
        self.calls.observe(payload, core_uuid)      # also stamps payload["sequence"]
        if "account_id" not in payload:
            stats.unassigned += 1
            return
        self.tap.publish(payload)
        hooks = self.hooks.index.match(payload)
        if not hooks:
            stats.unmatched += 1
        for hook in hooks:
            if self.delivery.submit(hook, payload, hold_seconds=hold):
                stats.submitted += 1
            else:
                stats.dropped += 1

    def _join_hold(self, payload: ChannelPayload) -> float:
        """Fleet mode: an event of a call this instance never saw begin (it joined
        late: started, reconnected) is held JOIN_HOLD_SECONDS, so the earlier events
        another instance alone heard, committed meanwhile, go first in its lane."""
        if payload["hook_event"] == "channel_create":
            return 0.0
        switch, call_id = payload.get("switch"), payload.get("call_id")
        if not switch or not call_id or self.calls.is_known(switch, call_id):
            return 0.0
        return JOIN_HOLD_SECONDS

    # -- delivery's view of the hooks -------------------------------------------

    def hook_by_id(self, hook_id: str) -> Hook | None:
        """The hook as in force now (delivery re-reads it before each attempt)."""
        generation, table = self._hooks_by_id
        if generation != self.hooks.generation:
            table = hooks_by_id(self.hooks.hooks)
            self._hooks_by_id = (self.hooks.generation, table)
        return table.get(hook_id)

    def hook_disabled(self, hook: Hook, reason: str) -> None:
        """Delivery gave up on a hook: write it disabled to hooks.yaml, tell the account."""
        try:
            before = self.hooks.update(disable_change(hook.id, reason))
        except Exception:
            log.exception("hook %s: could not write it disabled to %s", hook.id,
                          self.hooks.location)
            return
        if before is None:
            return              # deleted or disabled meanwhile: nothing to announce
        log.warning("hook %s (%s) disabled: %s", hook.id, hook.name, reason)
        notice = disabled_notice(hook, reason, time.time())
        for target in notice_targets(self.hooks.hooks, hook):
            self.delivery.submit(target, notice)

    # -- the API's ports (eslhook/ports.py) -------------------------------------

    def status(self) -> StatusSnapshot:
        """What /healthz and /metrics report, read now from the running parts."""
        hooks = self.hooks.hooks
        enabled = sum(1 for hook in hooks if hook.enabled)
        stats = self.stats
        return StatusSnapshot(
            switches=tuple(switch_status(source) for source in self.sources),
            ingest=IngestStatus(mapped=stats.mapped, unassigned=stats.unassigned,
                                unmatched=stats.unmatched, dropped=stats.dropped),
            delivery=delivery_status(self.delivery.stats, self.config.delivery.buffer_size,
                                     self.latency),
            hooks_enabled=enabled, hooks_disabled=len(hooks) - enabled,
            open_calls_error=self.calls.write_error, supervision=self.supervisor.status())

    def api_context(self) -> ApiContext:
        """The API's view of this bridge: its hooks and accounts, and the two ports."""
        delivery: DeliveryControl = self.delivery     # structurally: mypy checks the fit
        return ApiContext(self.hooks, self.accounts, self.config.api or ApiConfig(),
                          network=self.config.delivery, status=self.status, delivery=delivery,
                          tap=self.tap)

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Load hooks (raises ConfigError), then start every stage."""
        warning = root_warning(os.geteuid())
        if warning is not None:
            log.warning(warning)
        private_dir(self.config.state_dir)
        self.hooks.load()
        if self.config.api is not None:   # first: a port in use fails before anything runs
            self.api = ApiServer.for_context(self.api_context())
            self.api.start(self.supervisor)
        self.hooks.start_watching(self.timings.hooks_poll_seconds, supervisor=self.supervisor)
        self.calls.load()
        self.calls.start(self.supervisor)
        self.delivery.start(self.supervisor)
        # hand edits and the API may enable a held hook again: delivery resumes it
        self.delivery.follow_hooks(lambda: self.hooks.generation)
        for source in self.sources:
            source.start(self.supervisor)
        log.info("eslhook %s started: %d switch(es), %d hook(s)", __version__,
                 len(self.sources), len(self.hooks.hooks))

    def stop(self, deadline: Deadline | None = None, *,
             drain_seconds: float | None = None) -> None:
        """Stop intake, drain delivery until ``deadline`` (or ``drain_seconds`` from
        now), then kill: every stage spends what is left of the one deadline."""
        deadline = deadline_of(deadline, 10.0 if drain_seconds is None else drain_seconds)
        self.supervisor.close()    # what crashes now stays down
        self.tap.close()           # live streams end, so their requests do not hold the stop
        if self.api is not None:   # no hook changes while stopping
            self.api.stop(deadline)
        for source in self.sources:
            source.stop(deadline)
        for reconciler in self.reconcilers.values():
            reconciler.stop(deadline)
        self.calls.stop(deadline)
        self.hooks.stop(deadline)
        self.delivery.stop(deadline)
        if self._fleet:            # the database pools, once nothing uses them
            stores.close()
        log.info("eslhook stopped")

    def run_until_signalled(self, drain_seconds: float = 10.0) -> None:
        """Run until SIGTERM/SIGINT, or until a critical greenlet dies (then raise
        CriticalGreenletDied once stopped); either way stop within ``drain_seconds``."""
        stopping = Event()
        handlers = [gevent.signal_handler(sig, stopping.set)
                    for sig in (signal.SIGTERM, signal.SIGINT)]
        failed = self.supervisor.failed
        try:
            self.start()
            gevent.wait([stopping, failed], count=1)
            log.info("%s, stopping within %gs", "signal received" if stopping.is_set()
                     else "a critical greenlet died", drain_seconds)
        finally:
            for handler in handlers:
                handler.cancel()
            self.stop(Deadline.after(drain_seconds))
        if failed.is_set():
            raise CriticalGreenletDied(self.supervisor.status().dead)
