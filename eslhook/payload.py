"""The webhook payload contract: what ``mapping.channel_payload`` builds and
the pipeline (calls, hook index, delivery) carries; and the one payload
eslhook makes about itself, ``DisabledNotice`` (delivery/notices.py).

``eslhook/schemas/payload.schema.json`` states the same contract as JSON
Schema for receivers; tests/test_payload_contract.py ties the two together
(keys, value types, required keys) and validates real mapped payloads.

Only ``hook_event`` is Required here although the mapping always sets
``is_internal_leg`` and ``switch`` too (the schema requires all three): they
come after the optional caller keys, in Kazoo's key order, and a TypedDict's
required keys must all be in the literal that creates it.  The hook's
``custom_data`` is merged over a payload only when the request is built
(``delivery/request.py``), so it is not part of this type.
"""

from __future__ import annotations

from typing import Literal, Required, TypedDict, final

# "from" is a keyword, hence the functional form.
ChannelPayload = TypedDict("ChannelPayload", {
    "hook_event": Required[str],    # channel_create, _answer, _bridge, _destroy
    "call_direction": str,          # inbound / outbound (FreeSWITCH's Call-Direction)
    "timestamp": int,               # gregorian seconds
    "account_id": str,
    "request": str,
    "to": str,
    "from": str,
    "call_id": str,
    "sip_call_id": str,
    "other_leg_call_id": str,
    "caller_id_name": str,
    "caller_id_number": str,
    "callee_id_name": str,
    "callee_id_number": str,
    "is_internal_leg": bool,
    # what Kazoo integrations read beyond the call's identity (mapping_keys.py):
    "authorizing_id": str,
    "authorizing_type": str,        # device / resource, or ecallmgr_Authorizing-Type
    "owner_id": str,
    "local_resource_id": str,
    "local_resource_used": bool,
    "call_forwarded": bool,
    "inception": str,
    "emergency_resource_used": bool,
    "reseller_id": str,
    "cluster_id": str,
    "custom_application_vars": dict[str, str],
    # channel_bridge only:
    "other_leg_destination_number": str,
    "original_number": str,
    # channel_destroy only:
    "hangup_cause": str,
    "hangup_code": str,             # "sip:486"
    "duration_seconds": int,
    "billing_seconds": int,
    "ringing_seconds": int,
    # eslhook's own:
    "switch": str,                  # the configured switch name
    "event_id": str,                # stable for one event: <Core-UUID>-<Event-Sequence>
    "custom_channel_vars": dict[str, str],
    "sequence": int,                # per call, stamped by calls.OpenCalls.observe
    "reconciled": bool,             # synthesised by reconcile.py, not a switch event
}, total=False)

# The keys mapping.FIRST_PRESENT_SOURCES fills, each from the first header present.
CallerKey = Literal["request", "to", "from", "call_id", "sip_call_id", "other_leg_call_id",
                    "caller_id_name", "caller_id_number", "callee_id_name",
                    "callee_id_number"]
# The keys of a channel_bridge (mapping.BRIDGE_SOURCES).
BridgeKey = Literal["other_leg_destination_number", "original_number"]
# The integer keys of a channel_destroy (mapping.DESTROY_SECONDS_SOURCES).
SecondsKey = Literal["duration_seconds", "billing_seconds", "ringing_seconds"]


@final      # no other keys: lets mypy tell it from a ChannelPayload by key
class DisabledNotice(TypedDict):
    """``webhook_disabled``: sent to an account's other hooks when delivery
    disabled one of its hooks.  Never carries the hook's secret."""
    hook_event: Literal["webhook_disabled"]
    account_id: str
    event_id: str
    timestamp: int                  # gregorian seconds
    hook_id: str
    hook_name: str
    hook_uri: str
    disable_reason: str


# What the delivery queue accepts.
Payload = ChannelPayload | DisabledNotice
