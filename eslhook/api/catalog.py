"""``/webhooks``, ``/webhooks/samples[/{id}]`` and ``/openapi.json``: no auth, as Kazoo.

The hook types, their descriptions and which captured event samples each one
come from the event registry (``eslhook/events.py``).  Samples are built from
the bundled real capture (``eslhook/data/sample.esl``) by the same mapping that
builds live payloads, so they cannot drift from what a hook receives.
"""

from __future__ import annotations

import json
from importlib import resources

from .. import events
from ..accounts import AccountDirectory
from ..config import AccountConfig, schema_document
from ..mapping import channel_payload
from ..payload import ChannelPayload
from ..source.framing import split_frames
from ..source.parsing import parse_event
from .envelope import ApiError, send

def hook_types(registry: tuple[events.EventEntry, ...] = events.EVENTS) -> list[dict]:
    """The /v2/webhooks answer: the real hook types (the schema's ``hook`` enum but
    ``all``, which clients such as Monster UI add themselves), each with its friendly
    name and description, as Kazoo's."""
    by_type = events.by_hook_event(registry)
    return [{"id": kind, "name": by_type[kind].name, "description": by_type[kind].description}
            for kind in events.hook_types(registry) if kind != events.ALL]


SAMPLE_PREFIX = "webhooks_"
SAMPLE_ACCOUNT = "4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"   # the account of the captured calls
SAMPLE_SWITCH = "fs1"


def sample_payloads(capture: bytes, registry: tuple[events.EventEntry, ...] = events.EVENTS
                    ) -> dict[str, list[ChannelPayload]]:
    """"webhooks_<event>" -> the payloads the capture produces for that event,
    for each registry entry with a ``sample_event_name``."""
    accounts = AccountDirectory([AccountConfig(id=SAMPLE_ACCOUNT, name="Sample")],
                                default_account_id=SAMPLE_ACCOUNT)
    sampled = events.sampled(registry)
    samples: dict[str, list[ChannelPayload]] = {SAMPLE_PREFIX + e: [] for e in sampled.values()}
    for frame in split_frames(capture):
        event = parse_event(frame)
        hook_event = sampled.get(event.get("Event-Name") or "") if event else None
        if event is None or hook_event is None:
            continue
        payload = channel_payload(event, switch=SAMPLE_SWITCH, accounts=accounts)
        if payload:
            samples[SAMPLE_PREFIX + hook_event].append(payload)
    return samples


def bundled_capture() -> bytes:
    return (resources.files("eslhook") / "data" / "sample.esl").read_bytes()


def openapi_document() -> dict:
    """The packaged document with the webhook schema inlined (one source of truth)."""
    folder = resources.files("eslhook")
    document = json.loads((folder / "api" / "openapi.json").read_text("utf-8"))
    webhook = dict(schema_document("webhook"))
    for key in ("$schema", "$id"):
        webhook.pop(key, None)
    document["components"]["schemas"]["Webhook"] = webhook
    return document


class HookTypes:
    public_cacheable = True   # no token, no secret: caches may keep it

    def on_get(self, req, resp):
        send(req, resp, hook_types())


class Samples:
    public_cacheable = True   # no token, no secret: caches may keep it

    def __init__(self, samples: dict[str, list[ChannelPayload]]):
        self.samples = samples

    def on_get(self, req, resp):
        send(req, resp, sorted(self.samples))


class Sample:
    public_cacheable = True   # no token, no secret: caches may keep it

    def __init__(self, samples: dict[str, list[ChannelPayload]]):
        self.samples = samples

    def on_get(self, req, resp, sample_id):
        # Kazoo's ids are webhooks_<event>; the bare event name is accepted too
        key = sample_id if sample_id.startswith(SAMPLE_PREFIX) else SAMPLE_PREFIX + sample_id
        if key not in self.samples:
            raise ApiError(404, "bad identifier", {"sample_id": {"not_found": {
                "message": "no sample %r; the samples are: %s" % (
                    sample_id, ", ".join(sorted(self.samples)))}}})
        send(req, resp, self.samples[key])


class OpenApi:
    public_cacheable = True   # no token, no secret: caches may keep it

    def __init__(self, document: dict):
        self.text = json.dumps(document, ensure_ascii=False)

    def on_get(self, req, resp):
        resp.content_type = "application/json"
        resp.text = self.text
