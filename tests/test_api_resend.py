"""The support tools end to end, over real HTTP against a running Bridge and a real
receiver: resend one recorded delivery, send a test, and what the attempt log keeps of
each request (trigger, redacted headers, body) and its filters."""

from __future__ import annotations

import json
import time

import gevent
from standardwebhooks import Webhook

import helpers
from eslhook.mapping import GREGORIAN_UNIX_OFFSET_SECONDS
from receiver import Reply
from test_api_delivery import HOOK, HOOKS, started, stored_hooks  # noqa: F401 (fixture)
from test_api_support import PARENT, assert_error, assert_success

__all__ = ["started"]


def attempts(client, hook_id: str, **params) -> list[dict]:
    return assert_success(client("GET", HOOK % (PARENT, hook_id) + "/attempts",
                                 params=params))["data"]


def signed_hook(client, world, path: str, **fields) -> dict:
    reply = client("PUT", HOOKS % PARENT, json={"data": {
        "name": path, "uri": world.receiver.url(path), "hook": "channel_create",
        "format": "json", "secret": "generate", "retries": 1, **fields}})
    return assert_success(reply, 201)["data"]


def test_a_resent_delivery_repeats_the_recorded_request_and_is_logged_as_resend(started):
    world, client = started()
    hook = signed_hook(client, world, "/crm")
    world.receiver.script(Reply(500, body=b"down"))          # then 200s
    began = time.time()
    world.call("call-r", "CHANNEL_CREATE", account_id=PARENT)
    first, retried = world.receiver.wait_for(2, timeout=10)
    assert world.bridge.delivery.wait_idle(10)
    log = attempts(client, hook["id"], call_id="call-r")
    assert [(a["result"], a["resp_status_code"], a["retries"], a["trigger"]) for a in log] == [
        ("success", 200, 1, "event"), ("failure", 500, 2, "event")]
    failed = log[1]
    # the request as sent: its body, its headers with every credential redacted
    assert failed["request_body"] == first.body.decode() and \
        failed["request_body_size"] == len(first.body)
    headers = failed["request_headers"]
    assert headers["X-Hook-ID"] == hook["id"] and headers["webhook-id"] == \
        first.header("webhook-id")
    assert headers["webhook-signature"] == "[redacted]"
    assert hook["secret"] not in json.dumps(log)

    reply = client("POST", HOOK % (PARENT, hook["id"]) + "/attempts/%s/resend" % failed["id"])
    assert assert_success(reply, 202)["data"] == {
        "hook_id": hook["id"], "attempt_id": failed["id"],
        "webhook_id": first.header("webhook-id"), "trigger": "resend"}
    again = world.receiver.wait_for(3, timeout=10)[2]
    assert again.body == first.body and again.header("webhook-id") == first.header("webhook-id")
    Webhook(hook["secret"]).verify(again.body, again.headers, json_parse=False)
    assert world.bridge.delivery.wait_idle(10)
    newest = attempts(client, hook["id"], call_id="call-r")[0]
    assert (newest["trigger"], newest["result"], newest["request_body"]) == (
        "resend", "success", first.body.decode())
    # the filters: by result, by a gregorian window around the calls, and outside it
    assert {a["trigger"] for a in attempts(client, hook["id"], result="failure")} == {"event"}
    now_g = int(time.time()) + GREGORIAN_UNIX_OFFSET_SECONDS
    assert len(attempts(client, hook["id"], created_from=str(int(began) - 1 +
                                                             GREGORIAN_UNIX_OFFSET_SECONDS),
                        created_to=str(now_g + 1))) == 3
    assert attempts(client, hook["id"], created_to=str(int(began) - 10 +
                                                       GREGORIAN_UNIX_OFFSET_SECONDS)) == []
    assert_error(client("GET", HOOK % (PARENT, hook["id"]) + "/attempts",
                        params={"created_from": "yesterday"}), 400)
    assert_error(client("GET", HOOK % (PARENT, hook["id"]) + "/attempts",
                        params={"result": "maybe"}), 400)
    # an attempt that is not this hook's, or not a key at all, is 404
    for unknown in ("999999", "x"):
        assert_error(client("POST", HOOK % (PARENT, hook["id"]) + "/attempts/%s/resend"
                            % unknown), 404)
    gevent.sleep(0.2)
    assert len(world.receiver.requests) == 3


def test_a_test_is_one_signed_attempt_that_leaves_the_hook_enabled(started):
    world, client = started(disable_after_failures=1, disable_after_seconds=0)
    hook = signed_hook(client, world, "/probe", retries=3)
    world.receiver.default_reply = Reply(503, body=b"maintenance")
    reply = client("POST", HOOK % (PARENT, hook["id"]) + "/test")
    sent = assert_success(reply, 202)["data"]
    assert (sent["trigger"], sent["hook_event"]) == ("test", "channel_create")
    request = world.receiver.wait_for(1, timeout=10)[0]
    assert world.bridge.delivery.wait_idle(10)
    gevent.sleep(0.3)                    # a retry would be due after 0.1 s
    assert len(world.receiver.requests) == 1
    payload = request.json
    assert (payload["hook_event"], payload["account_id"], payload["call_id"]) == (
        "channel_create", PARENT, sent["call_id"])
    Webhook(hook["secret"]).verify(request.body, request.headers, json_parse=False)
    log = attempts(client, hook["id"], call_id=sent["call_id"])
    assert [(a["trigger"], a["result"], a["resp_status_code"], a["retries_left"])
            for a in log] == [("test", "failure", 503, 0)]
    # the failed test did not disable the hook, which one failed event would have
    assert stored_hooks(world)[hook["id"]].get("enabled", True) is True
    assert helpers.wait_until(lambda: all(h.enabled for h in world.bridge.hooks.hooks))
    # ...as a real event's failures then do (retries: 3 tries in all)
    world.call("call-t", "CHANNEL_CREATE", account_id=PARENT)
    assert helpers.wait_until(lambda: stored_hooks(world)[hook["id"]].get("enabled") is False,
                              timeout=10)
    assert_error(client("POST", HOOK % (PARENT, hook["id"]) + "/test"), 409)
    assert_error(client("POST", HOOK % (PARENT, "f" * 32) + "/test"), 404)
    assert_error(client("POST", HOOK % (PARENT, hook["id"]) + "/test", "other"), 403)
