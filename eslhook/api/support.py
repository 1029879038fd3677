"""The support tools: resend one recorded delivery, send a test.

- ``POST .../accounts/{A}/webhooks/{ID}/attempts/{ATTEMPT}/resend``: the delivery
  that attempt was made for goes out again as a new delivery (trigger ``resend``,
  the same payload and ``webhook-id``, the hook's retries), after what its call
  still has pending.  404 once the attempt log no longer holds it
  (``delivery.attempt_log_days``).
- ``POST .../accounts/{A}/webhooks/{ID}/test``: a sample payload of the hook's
  (first) event, from the bundled capture as ``/webhooks/samples`` shows it, with
  the hook's account, a fresh ``call_id`` (its own lane: it waits behind no call)
  and a fresh ``event_id``.  One attempt, no retries, and its result neither
  counts towards disabling the hook nor resets its failures: a test asks "does the
  receiver answer now?", and a retry an hour later would answer another question.

Both go through the normal delivery path (network policy, signing, host limits)
and show in the attempt log with their ``trigger``; both answer 202 with what to
look for there.  A disabled hook gets 409, as for replay.
"""

from __future__ import annotations

import time
import uuid

from ..mapping import GREGORIAN_UNIX_OFFSET_SECONDS
from .attempts import is_attempt_key, running_delivery
from .context import ApiContext
from .envelope import ApiError, send
from .webhooks import find_hook
from ..hooks.model import Hook
from ..payload import ChannelPayload

# "webhooks_<event>" -> sample payloads (set by app.install_catalog)
Samples = dict[str, list[ChannelPayload]]


def _enabled_hook(ctx: ApiContext, req, account_id: str, hook_id: str) -> Hook:
    ctx.authorize(req, account_id)
    hook = find_hook(ctx, account_id, hook_id)
    if not hook.enabled:
        raise ApiError(409, "webhook disabled", {"enabled": {"conflict": {
            "message": "the webhook is disabled: enable it (PATCH "
                       '{"data": {"enabled": true}}), then try again', "value": False}}})
    return hook


class Resend:
    def __init__(self, ctx: ApiContext):
        self.ctx = ctx

    def on_post(self, req, resp, account_id: str, hook_id: str, attempt_id: str) -> None:
        hook = _enabled_hook(self.ctx, req, account_id, hook_id)
        webhook_id = None
        if is_attempt_key(attempt_id):
            webhook_id = running_delivery(self.ctx).resend(hook, int(attempt_id))
        if webhook_id is None:
            raise ApiError(404, "bad identifier", {"attempt_id": {"not_found": {
                "message": "webhook %s has no attempt %s in the attempt log (pruned after "
                           "delivery.attempt_log_days?)" % (hook_id, attempt_id),
                "value": attempt_id}}})
        send(req, resp, {"hook_id": hook.id, "attempt_id": attempt_id,
                         "webhook_id": webhook_id, "trigger": "resend"}, status=202)


def test_payload(hook: Hook, samples: Samples, now: float) -> ChannelPayload | None:
    """The payload a test of ``hook`` sends, or None when none of its events has a
    sample (webhook_disabled)."""
    for event in hook.events:
        found = samples.get("webhooks_" + event)
        if found:
            return {**found[0], "account_id": hook.account_id, "call_id": str(uuid.uuid4()),
                    "event_id": "test-" + uuid.uuid4().hex,
                    "timestamp": int(now) + GREGORIAN_UNIX_OFFSET_SECONDS}
    return None


class Test:
    def __init__(self, ctx: ApiContext, samples: Samples):
        self.ctx = ctx
        self.samples = samples

    def on_post(self, req, resp, account_id: str, hook_id: str) -> None:
        hook = _enabled_hook(self.ctx, req, account_id, hook_id)
        payload = test_payload(hook, self.samples, time.time())
        if payload is None:
            raise ApiError(400, "no sample", {"hook": {"sample": {
                "message": "eslhook has no sample payload for %s" % hook.hook,
                "value": hook.hook}}})
        if not running_delivery(self.ctx).test(hook, payload):
            raise ApiError(503, "delivery busy", {"message": (
                "the delivery queue refused the test (buffer full or stopping): retry "
                "in a moment")}, headers={"Retry-After": "1"})
        send(req, resp, {"hook_id": hook.id, "call_id": payload["call_id"],
                         "event_id": payload["event_id"],
                         "hook_event": payload.get("hook_event"), "trigger": "test"},
             status=202)
