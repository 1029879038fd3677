"""Standard Webhooks signing: verified by the standardwebhooks package, over real HTTP."""

import base64
from datetime import datetime, timedelta, timezone

import pytest
from helpers import make_hook
from standardwebhooks import Webhook, WebhookVerificationError

from eslhook.config import DeliveryConfig
from eslhook.delivery.queue import DeliveryQueue
from eslhook.delivery.signing import (
    active_secrets, generate_secret, make_webhook_id, rotated, sign, webhook_headers)

ACCOUNT = "4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 24).decode()
FAST = DeliveryConfig(timeout_seconds=2.0, max_in_flight=4, retry_schedule_seconds=(0.05,))


def deliver(hook, *payloads):
    queue = DeliveryQueue(FAST)
    queue.start()
    try:
        for payload in payloads:
            assert queue.submit(hook, payload)
        assert queue.wait_idle(10)
    finally:
        queue.stop(timeout=1)


@pytest.mark.parametrize("verb, fmt", [("post", "json"), ("post", "form-data"), ("put", "json"),
                                       ("get", "form-data")])
def test_the_standardwebhooks_package_verifies_every_request(receiver, verb, fmt):
    hook = make_hook(receiver.url("/in?token=t"), secret=SECRET, http_verb=verb, format=fmt)
    deliver(hook, {"call_id": "c1", "event_id": "core-1", "hook_event": "channel_create"})
    [got] = receiver.wait_for(1, timeout=5)
    assert got.header("webhook-id") == "core-1_" + hook.id
    assert abs(int(got.header("webhook-timestamp")) - datetime.now().timestamp()) < 60
    Webhook(SECRET).verify(got.body, got.headers, json_parse=False)
    if verb == "get":
        assert got.body == b"" and got.query["call_id"] == ["c1"]
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER).verify(got.body, got.headers, json_parse=False)
    tampered = dict(got.headers, **{"webhook-id": "other_" + hook.id})
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(got.body, tampered, json_parse=False)


def test_without_a_secret_ids_and_timestamps_still_go_but_no_signature(receiver):
    deliver(make_hook(receiver.url("/")), {"call_id": "c1", "event_id": "core-9"})
    [got] = receiver.wait_for(1, timeout=5)
    assert got.header("webhook-id") == "core-9_0123456789abcdef0123456789abcdef"
    assert got.header("webhook-timestamp").isdigit()
    assert got.header("webhook-signature") is None


def test_retries_keep_the_webhook_id_and_re_sign_with_a_new_timestamp(receiver):
    from receiver import Reply
    receiver.script(Reply(500))
    deliver(make_hook(receiver.url("/"), secret=SECRET, retries=1),
            {"call_id": "c1", "event_id": "core-2"})
    first, second = receiver.wait_for(2, timeout=5)
    assert first.header("webhook-id") == second.header("webhook-id")
    for request in (first, second):
        Webhook(SECRET).verify(request.body, request.headers, json_parse=False)


def test_rotation_sends_both_signatures_for_24_hours(receiver):
    now = datetime.now(timezone.utc)
    hook = rotated(make_hook(receiver.url("/"), secret=OTHER), SECRET, now)
    assert (hook.secret, hook.previous_secret) == (SECRET, OTHER)
    deliver(hook, {"call_id": "c1", "event_id": "core-3"})
    [got] = receiver.wait_for(1, timeout=5)
    assert len(got.header("webhook-signature").split(" ")) == 2
    for secret in (SECRET, OTHER):       # a receiver on either secret accepts it
        Webhook(secret).verify(got.body, got.headers, json_parse=False)
    assert active_secrets(hook, now + timedelta(hours=23)) == (SECRET, OTHER)
    assert active_secrets(hook, now + timedelta(hours=24, seconds=1)) == (SECRET,)


def test_signature_is_hmac_sha256_of_id_timestamp_body():
    # the spec's own example (standard-webhooks/spec, "Signature scheme")
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                b'{"test": 2432232314}') == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = webhook_headers(make_hook("http://h/", secret=secret),
                              "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize("secret, message", [
    ("nope", "whsec_"), ("whsec_!!!!", "base64"),
    ("whsec_" + base64.b64encode(b"short").decode(), "at least 24 bytes")])
def test_a_bad_secret_is_refused_without_echoing_it(secret, message):
    with pytest.raises(ValueError, match=message) as caught:
        make_hook("http://h/", secret=secret)
    assert secret not in str(caught.value)


def test_generated_secrets_are_valid_distinct_and_never_in_repr():
    first, second = generate_secret(), generate_secret()
    assert first != second and first.startswith("whsec_")
    hook = make_hook("http://h/", secret=first)
    assert first not in repr(hook) and "secret" not in hook.public_dict()
    assert hook.to_dict()["secret"] == first       # hooks.yaml keeps it


def test_webhook_id_falls_back_when_the_payload_names_no_event():
    random_one, random_two = make_webhook_id(None, "h"), make_webhook_id("bad id\r\n", "h")
    assert random_one.endswith("_h") and len(random_one) == 34 and random_one != random_two
    assert random_two.endswith("_h") and random_two.isascii() and " " not in random_two
    assert make_webhook_id("core-5", "h") == "core-5_h"
