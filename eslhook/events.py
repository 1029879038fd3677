"""The one registry of events eslhook knows (pure data, no I/O).

Each ``EventEntry`` says, for one event: the ESL ``Event-Name`` it comes from
(None for eslhook's own announcements), the ``hook_event`` it fires (None for
an event subscribed only to keep the connection alive), whether eslhook
subscribes to it, its friendly name and catalog description, and which event
of the bundled capture (``eslhook/data/sample.esl``) its API sample is mapped
from.  Everything that lists events reads ``EVENTS``: the mapping's dispatch
(``HOOK_EVENT_BY_EVENT_NAME``), the ESL subscription (``subscription_names``),
``eslhook record``'s default, the hook model (``HOOK_EVENTS``,
``NOTICE_EVENTS``, ``HOOK_TYPES``), the API catalog and samples; the JSON
Schema's ``hook`` enum is tied to ``hook_types()`` by a test.  A new hook
event is one entry here plus its payload fields in ``mapping.py``.

HEARTBEAT is listed too, with no hook_event: it is subscribed (the liveness
check needs a byte every 20 s) but fires no hook.  Keeping it here makes the
subscribed list one place instead of "the registry plus HEARTBEAT" in two.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

ALL = "all"   # the hook type that hears every hook event


@dataclass(frozen=True)
class EventEntry:
    event_name: str | None     # ESL Event-Name; None: eslhook makes it itself
    hook_event: str | None     # payload hook_event / hook type; None: fires no hook
    subscribed: bool           # asked of the switch in the ``event`` command
    name: str                  # friendly name (the catalog shows hook_event)
    description: str           # the /v2/webhooks description (Kazoo's text where it has one)
    sample_event_name: str | None = None   # whose frames in sample.esl give its samples
    # a channel has at most one: fleet mode enqueues it once per (hook, call), so a
    # reconciled copy never doubles the real one another instance enqueued
    once_per_call: bool = False

    def __post_init__(self) -> None:
        if self.event_name is None and (self.subscribed or self.hook_event is None):
            raise ValueError("EventEntry: an event eslhook makes itself (no event_name) "
                             "must have a hook_event and cannot be subscribed")
        if (self.subscribed and self.event_name is not None
                and self.event_name != self.event_name.upper()):
            raise ValueError("EventEntry.event_name: ESL names are upper case (got %r)"
                             % (self.event_name,))
        if self.hook_event == ALL:
            raise ValueError("EventEntry.hook_event: %r is the hook type for every event"
                             % ALL)


EVENTS: tuple[EventEntry, ...] = (
    EventEntry("CHANNEL_CREATE", "channel_create", True, "Channel create",
               "Events when new calls start", sample_event_name="CHANNEL_CREATE",
               once_per_call=True),
    EventEntry("CHANNEL_ANSWER", "channel_answer", True, "Channel answer",
               "Events for when the channel is answered by the endpoint",
               sample_event_name="CHANNEL_ANSWER", once_per_call=True),
    # Kazoo's channel_bridge; FreeSWITCH sends it for the A-leg only (the leg
    # running ``bridge``), once per successful bridge
    EventEntry("CHANNEL_BRIDGE", "channel_bridge", True, "Channel bridge",
               "Events when channel is bridged", sample_event_name="CHANNEL_BRIDGE"),
    # CHANNEL_HANGUP_COMPLETE, not CHANNEL_DESTROY: only it carries the final
    # variables (billsec, hangup cause, SIP status) the payload reports
    EventEntry("CHANNEL_HANGUP_COMPLETE", "channel_destroy", True, "Channel destroy",
               "Events when calls end (with hangup_cause and hangup_code)",
               sample_event_name="CHANNEL_HANGUP_COMPLETE", once_per_call=True),
    # The catalog has always shown this type's own name as its description.
    EventEntry(None, "webhook_disabled", False, "Webhook disabled", "webhook_disabled"),
    EventEntry("HEARTBEAT", None, True, "Heartbeat",
               "Sent by the switch every 20 s; the liveness check needs it"),
)
ALL_DESCRIPTION = "Every event above (eslhook: one hook for all events)"


def call_events(registry: tuple[EventEntry, ...] = EVENTS) -> tuple[str, ...]:
    """hook_events that come from the switch, in registry order."""
    return tuple(e.hook_event for e in registry
                 if e.hook_event is not None and e.event_name is not None)


def once_per_call_events(registry: tuple[EventEntry, ...] = EVENTS) -> frozenset[str]:
    """hook_events a channel fires at most once (create, answer, destroy)."""
    return frozenset(e.hook_event for e in registry
                     if e.hook_event is not None and e.once_per_call)


def notice_events(registry: tuple[EventEntry, ...] = EVENTS) -> tuple[str, ...]:
    """hook_events eslhook announces itself (e.g. webhook_disabled)."""
    return tuple(e.hook_event for e in registry
                 if e.hook_event is not None and e.event_name is None)


def hook_types(registry: tuple[EventEntry, ...] = EVENTS) -> tuple[str, ...]:
    """Every value a hook's ``hook`` may take: the schema enum, the catalog."""
    return call_events(registry) + notice_events(registry) + (ALL,)


def subscription_names(registry: tuple[EventEntry, ...] = EVENTS) -> tuple[str, ...]:
    """The ESL event names eslhook subscribes to, in registry order."""
    return tuple(e.event_name for e in registry if e.subscribed and e.event_name)


def subscription_command(event_format: str,
                         registry: tuple[EventEntry, ...] = EVENTS) -> str:
    """The ESL ``event`` command for ``event_format`` (plain or json)."""
    return "event %s %s" % (event_format, " ".join(subscription_names(registry)))


def hook_event_by_event_name(registry: tuple[EventEntry, ...] = EVENTS) -> dict[str, str]:
    """ESL Event-Name -> hook_event, for the events that fire a hook (a plain
    dict: mapping reads it once per event, and a proxy's get costs more)."""
    return {e.event_name: e.hook_event for e in registry
            if e.event_name is not None and e.hook_event is not None}


def by_hook_event(registry: tuple[EventEntry, ...] = EVENTS) -> Mapping[str, EventEntry]:
    return MappingProxyType({e.hook_event: e for e in registry if e.hook_event is not None})


def by_event_name(registry: tuple[EventEntry, ...] = EVENTS) -> Mapping[str, EventEntry]:
    return MappingProxyType({e.event_name: e for e in registry if e.event_name is not None})


def catalog(registry: tuple[EventEntry, ...] = EVENTS) -> list[dict[str, str]]:
    """The /v2/webhooks answer: one row per hook type, "all" last."""
    described = {e.hook_event: e.description for e in registry if e.hook_event}
    described[ALL] = ALL_DESCRIPTION
    return [{"id": kind, "name": kind, "description": described[kind]}
            for kind in hook_types(registry)]


def sampled(registry: tuple[EventEntry, ...] = EVENTS) -> Mapping[str, str]:
    """Event-Name in the bundled capture -> the hook_event its payloads sample."""
    return MappingProxyType({e.sample_event_name: e.hook_event for e in registry
                             if e.sample_event_name and e.hook_event})


HOOK_EVENT_BY_EVENT_NAME = hook_event_by_event_name()
