"""The event registry (eslhook/events.py) and everything that reads it."""

import json
from importlib import resources

import gevent
import gevent.pool
import pytest
from helpers import wait_until

from eslhook import events
from eslhook.accounts import AccountDirectory
from eslhook.api.catalog import bundled_capture, hook_types, openapi_document, sample_payloads
from eslhook.config import SwitchConfig, schema_validator
from eslhook.events import EVENTS, EventEntry
from eslhook.fakeswitch.client import EVENT_NAMES
from eslhook.hooks.model import HOOK_TYPES, Hook
from eslhook.mapping import channel_payload
from eslhook.record import add_parser
from eslhook.source.framing import split_frames
from eslhook.source.parsing import parse_event
from eslhook.source.switch import ReconnectPolicy, SwitchSource

PARK = EventEntry("CHANNEL_PARK", "channel_park", True, "Channel park",
                  "Events when a channel is parked", sample_event_name="CHANNEL_PARK")


def bundled_capture_path():
    return resources.files("eslhook") / "data" / "sample.esl"


def schema_file_enum() -> list[str]:
    text = (resources.files("eslhook") / "schemas" / "webhook.schema.json").read_text("utf-8")
    return hook_enum(json.loads(text))


def hook_enum(schema: dict) -> list[str]:
    """properties.hook's enum, which its list form's items repeat."""
    hook = schema["properties"]["hook"]
    assert hook["else"]["items"]["enum"] == hook["then"]["enum"], (
        "properties.hook: then.enum and else.items.enum must be the same list")
    return hook["then"]["enum"]


# -- the schema is tied to the registry ------------------------------------

def test_webhook_schema_hook_enum_is_the_registrys_hook_types():
    assert schema_file_enum() == list(events.hook_types()), (
        "eslhook/schemas/webhook.schema.json properties.hook.then.enum must be %s"
        % json.dumps(list(events.hook_types())))
    assert hook_enum(schema_validator("webhook").schema) == schema_file_enum()


def test_openapi_webhook_schema_carries_the_registrys_hook_types():
    webhook = openapi_document()["components"]["schemas"]["Webhook"]
    assert hook_enum(webhook) == list(events.hook_types())


def test_every_hook_type_is_accepted_by_the_schema_and_the_model_and_nothing_else():
    validator = schema_validator("webhook")
    base = {"name": "n", "uri": "http://127.0.0.1/x"}
    for kind in events.hook_types():
        assert not list(validator.iter_errors(dict(base, hook=kind)))
        Hook(id="0" * 32, account_id="1" * 32, name="n", uri=base["uri"], hook=kind)
    for wrong in ("HEARTBEAT", "CHANNEL_CREATE", "heartbeat", "channel_park"):
        assert list(validator.iter_errors(dict(base, hook=wrong)))
        with pytest.raises(ValueError):
            Hook(id="0" * 32, account_id="1" * 32, name="n", uri=base["uri"], hook=wrong)


# -- the registry itself -----------------------------------------------------

def test_registry_names_are_unique_and_subscribed_names_are_freeswitch_events():
    hook_events = [e.hook_event for e in EVENTS if e.hook_event]
    esl_names = [e.event_name for e in EVENTS if e.event_name]
    assert len(set(hook_events)) == len(hook_events)
    assert len(set(esl_names)) == len(esl_names)
    assert set(events.subscription_names()) <= EVENT_NAMES
    assert "HEARTBEAT" in events.subscription_names()   # the liveness check needs it


def test_every_sampled_event_is_in_the_bundled_capture_and_maps_to_its_hook_event():
    capture = [parse_event(f) for f in split_frames(bundled_capture())]
    names = {e.get("Event-Name") for e in capture if e is not None}
    for entry in EVENTS:
        if entry.sample_event_name:
            assert entry.sample_event_name in names, entry
            frame = next(e for e in capture
                         if e is not None and e.get("Event-Name") == entry.sample_event_name)
            payload = channel_payload(frame, switch="fs1", accounts=AccountDirectory([]))
            assert payload["hook_event"] == entry.hook_event


def test_lookups_by_esl_name_and_by_hook_event():
    assert events.by_event_name()["CHANNEL_HANGUP_COMPLETE"].hook_event == "channel_destroy"
    assert events.by_hook_event()["channel_destroy"].event_name == "CHANNEL_HANGUP_COMPLETE"
    assert events.by_hook_event()["webhook_disabled"].event_name is None
    assert events.by_event_name()["HEARTBEAT"].hook_event is None
    assert "HEARTBEAT" not in events.hook_event_by_event_name()
    assert events.hook_event_by_event_name() == {
        "CHANNEL_CREATE": "channel_create", "CHANNEL_ANSWER": "channel_answer",
        "CHANNEL_BRIDGE": "channel_bridge", "CHANNEL_HANGUP_COMPLETE": "channel_destroy"}


@pytest.mark.parametrize("entry", [
    dict(event_name=None, hook_event="x", subscribed=True),       # own events are not asked for
    dict(event_name=None, hook_event=None, subscribed=False),     # fires nothing, comes from nowhere
    dict(event_name="channel_create", hook_event="x", subscribed=True),   # ESL names are upper
    dict(event_name="CUSTOM", hook_event="all", subscribed=True),  # "all" is not an event
])
def test_event_entry_refuses_nonsense(entry):
    with pytest.raises(ValueError):
        EventEntry(name="n", description="d", **entry)


# -- one entry is all the readers need ---------------------------------------

def test_an_extra_registry_entry_reaches_subscription_catalog_samples_and_hook_types():
    registry = EVENTS + (PARK,)
    command = events.subscription_command("json", registry)
    assert command.split() == ["event", "json", "CHANNEL_CREATE", "CHANNEL_ANSWER",
                               "CHANNEL_BRIDGE", "CHANNEL_HANGUP_COMPLETE", "HEARTBEAT",
                               "CHANNEL_PARK"]
    # call events first, then eslhook's own, then "all": as the schema enum reads
    assert events.hook_types(registry) == ("channel_create", "channel_answer", "channel_bridge",
                                           "channel_destroy", "channel_park",
                                           "webhook_disabled", "all")
    row = next(t for t in hook_types(registry) if t["id"] == "channel_park")
    assert row == {"id": "channel_park", "name": PARK.name,
                   "description": "Events when a channel is parked"}
    assert events.hook_event_by_event_name(registry)["CHANNEL_PARK"] == "channel_park"
    # sample.esl has no CHANNEL_PARK: the id is listed, its list empty
    samples = sample_payloads(bundled_capture(), registry)
    assert samples["webhooks_channel_park"] == []
    assert samples["webhooks_channel_create"] == sample_payloads(bundled_capture())[
        "webhooks_channel_create"]


def test_the_catalog_answer_is_kazoos_descriptions_in_schema_order():
    # the real types only, friendly names: "all" is for clients to add (Monster UI does)
    assert hook_types() == [
        {"id": "channel_create", "name": "Channel create",
         "description": "Events when new calls start"},
        {"id": "channel_answer", "name": "Channel answer",
         "description": "Events for when the channel is answered by the endpoint"},
        {"id": "channel_bridge", "name": "Channel bridge",
         "description": "Events when channel is bridged"},
        {"id": "channel_destroy", "name": "Channel destroy",
         "description": "Events when calls end (with hangup_cause and hangup_code)"},
        {"id": "webhook_disabled", "name": "Webhook disabled",
         "description": "webhook_disabled"}]
    assert tuple(t["id"] for t in hook_types()) + ("all",) == HOOK_TYPES


def test_an_all_hook_hears_every_hook_event_of_the_registry():
    hook = Hook(id="0" * 32, account_id="1" * 32, name="n", uri="http://127.0.0.1/", hook="all")
    assert set(hook.events) == {e.hook_event for e in EVENTS if e.hook_event}


# -- the wire: what the switch is asked for ----------------------------------

def test_switch_source_subscribes_to_exactly_the_registrys_subscribed_events(switch_factory):
    fake = switch_factory(bundled_capture_path())
    host, port = fake.address
    source = SwitchSource(SwitchConfig(name="fs1", host=host, port=port, format="json"),
                          lambda event, switch: None,
                          policy=ReconnectPolicy(first_seconds=0.05, cap_seconds=0.2),
                          liveness_check_seconds=0.05)
    group = gevent.pool.Group()
    group.spawn(source.run)
    try:
        assert fake.wait_for_subscribers(1, timeout=5)
        assert wait_until(lambda: source.state.connected, timeout=5)
        subscriptions = [c.subscription for c in fake._clients if not c.closed]
        assert [(s.fmt, s.names) for s in subscriptions] == [
            ("json", set(events.subscription_names()))]
    finally:
        source.stop()
        group.join(timeout=5)
        group.kill()


def test_record_subscribes_by_default_to_what_eslhook_subscribes_to():
    import argparse
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["record", "--out", "x.esl"])
    assert args.events.split() == list(events.subscription_names())
