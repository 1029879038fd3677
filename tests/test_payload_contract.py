"""The payload contract: eslhook/payload.py's ChannelPayload and
eslhook/schemas/payload.schema.json say the same, and what the mapping,
the open-call table and reconciliation really emit meets both."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_type_hints

import jsonschema
import pytest

from eslhook.accounts import AccountDirectory
from eslhook.calls import OpenCalls
from eslhook.config import AccountConfig, PayloadConfig
from eslhook.delivery.notices import disabled_notice
from eslhook.mapping import channel_payload
from eslhook.payload import ChannelPayload, DisabledNotice
from eslhook.reconcile import destroy_payload
from eslhook.source.framing import split_frames
from eslhook.source.parsing import parse_event
from helpers import make_hook

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "eslhook" / "schemas" / "payload.schema.json").read_text())
CAPTURES = sorted((ROOT / "tests" / "captures").glob("*.esl")) + sorted(
    (ROOT / "eslhook" / "data").glob("*.esl"))
# the account of the captures' Kazoo-style calls, and one owning their realm
ACCOUNTS = AccountDirectory([AccountConfig(id="4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"),
                             AccountConfig(id="0123456789abcdef0123456789abcdef",
                                           realms=("127.0.0.1",))])
JSON_TYPE = {str: "string", int: "integer", bool: "boolean"}
SETTINGS = PayloadConfig(cluster_id="fleet-1")    # cluster_id is sent only when configured


def test_typed_dict_and_schema_have_the_same_keys():
    assert set(get_type_hints(ChannelPayload)) == set(SCHEMA["properties"])


def test_typed_dict_required_keys_are_required_by_the_schema():
    # the schema also requires keys the TypedDict cannot (payload.py says why)
    assert ChannelPayload.__required_keys__ <= set(SCHEMA["required"])
    assert set(SCHEMA["required"]) <= set(SCHEMA["properties"])


@pytest.mark.parametrize("key", sorted(get_type_hints(ChannelPayload)))
def test_typed_dict_and_schema_agree_on_the_value_type(key):
    hint, declared = get_type_hints(ChannelPayload)[key], SCHEMA["properties"][key]
    if hint == dict[str, str]:
        assert declared["type"] == "object"
        assert declared["additionalProperties"] == {"type": "string"}
    else:
        assert declared["type"] == JSON_TYPE[hint]


def _mapped_and_observed() -> list[ChannelPayload]:
    payloads: list[ChannelPayload] = []
    calls = OpenCalls()
    events = [parse_event(frame) for capture in CAPTURES
              for frame in split_frames(capture.read_bytes())]
    for event in filter(None, events):
        payload = channel_payload(event, switch="fs-test", accounts=ACCOUNTS,
                                  channel_variables=("*",), settings=SETTINGS)
        if payload is not None:
            calls.observe(payload, event.get("Core-UUID"))
            payloads.append(payload)
    return payloads


PAYLOADS = _mapped_and_observed()


def test_the_captures_give_every_kind_of_key():
    """Else the schema check below would not cover them."""
    seen = set().union(*PAYLOADS)
    # reconciled: checked below; inception: no capture sets ecallmgr_Inception
    # (tests/test_mapping_kazoo.py maps it from a built event)
    assert set(SCHEMA["properties"]) - seen == {"reconciled", "inception"}
    assert {p["hook_event"] for p in PAYLOADS} == {
        "channel_create", "channel_answer", "channel_bridge", "channel_destroy"}


def test_every_mapped_payload_meets_the_schema():
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = {p.get("event_id"): [e.message for e in validator.iter_errors(p)]
              for p in PAYLOADS}
    assert {k: v for k, v in errors.items() if v} == {}


def test_a_reconciled_destroy_meets_the_schema():
    calls = OpenCalls()
    create = next(p for p in PAYLOADS if p["hook_event"] == "channel_create")
    calls.observe(create.copy(), "f8136d9c-bd7c-4a9e-b280-42f4dd7310ac")
    (call,) = calls.of_switch("fs-test").values()
    payload = destroy_payload(call, "UNKNOWN", 1_700_000_000.0)
    jsonschema.validate(payload, SCHEMA)
    assert payload["reconciled"] is True


def test_the_schema_refuses_a_key_outside_the_contract():
    payload = dict(PAYLOADS[0], hangup_couse="NORMAL_CLEARING")
    with pytest.raises(jsonschema.ValidationError, match="hangup_couse"):
        jsonschema.validate(payload, SCHEMA)


def test_a_disabled_notice_has_exactly_the_typed_keys_and_types():
    hook = make_hook(secret="whsec_" + "A" * 32)
    notice = disabled_notice(hook, "too many failures", 1_700_000_000.0)
    hints = get_type_hints(DisabledNotice)
    assert set(notice) == set(hints)
    assert notice["hook_event"] == "webhook_disabled"
    assert {k: type(v) for k, v in notice.items() if k != "hook_event"} == {
        k: t for k, t in hints.items() if k != "hook_event"}
