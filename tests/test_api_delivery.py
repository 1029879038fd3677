"""The API's delivery endpoints over real HTTP, against a running Bridge (fake switch,
real receiver, real hooks.yaml): the attempt log (paged, account-scoped), replay,
signing secrets (generated, given, rotated, never shown twice) and re-enabling a
disabled hook delivering what was held, in order."""

from __future__ import annotations

import base64
import time
from datetime import datetime, timedelta, timezone

import gevent
import pytest
import requests
import yaml
from standardwebhooks import Webhook, WebhookVerificationError

import helpers
from eslhook.mapping import GREGORIAN_UNIX_OFFSET_SECONDS
from receiver import Reply
from test_api_support import (CHILD, OTHER, PARENT, TOKENS, assert_error, assert_success,
                              start_api)
from world import World

HOOKS = "/v2/accounts/%s/webhooks"
HOOK = "/v2/accounts/%s/webhooks/%s"
ACCOUNTS = [
    {"id": PARENT, "name": "Parent", "auth_tokens": [TOKENS["parent"]]},
    {"id": CHILD, "name": "Child", "parent_id": PARENT, "auth_tokens": [TOKENS["child"]]},
    {"id": OTHER, "name": "Other", "auth_tokens": [TOKENS["other"]]},
]
API = {"listen": "127.0.0.1:0", "admin_tokens": [TOKENS["admin"]]}
LOOPBACK = {"tenant_allowed_networks": ["127.0.0.0/8"]}    # the receivers' address
GIVEN_SECRET = "whsec_" + base64.b64encode(b"given-secret-of-32-bytes-000000").decode()


class Client:
    def __init__(self, world: World):
        self.url = world.bridge.api.url()
        self.session = requests.Session()

    def __call__(self, method: str, path: str, token: str | None = "parent", **kwargs):
        headers = {"X-Auth-Token": TOKENS[token]} if token else {}
        headers.update(kwargs.pop("headers", {}))
        return self.session.request(method, self.url + path, headers=headers, timeout=10,
                                    **kwargs)

    def pages(self, path: str, page_size: int, token: str = "parent") -> list[dict]:
        """Every envelope of a paged listing, following next_start_key."""
        envelopes, params = [], {"page_size": page_size}
        for _ in range(100):
            body = assert_success(self("GET", path, token, params=params), token=token)
            envelopes.append(body)
            if "next_start_key" not in body:
                return envelopes
            params = {"page_size": page_size, "start_key": body["next_start_key"]}
        raise AssertionError("more than 100 pages")


def stored_hooks(world: World) -> dict[str, dict]:
    entries = yaml.safe_load((world.tmp / "hooks.yaml").read_text())["webhooks"] or []
    return {entry["id"]: entry for entry in entries}


@pytest.fixture
def started(tmp_path):
    """``start(**delivery)`` -> (world, client): a running bridge with the API and no
    hooks; tests write hooks.yaml (the store watches it) or create hooks by the API."""
    worlds = []

    def start(**delivery):
        world = World(tmp_path, accounts=ACCOUNTS, extra={"api": API, "delivery": {
            "timeout_seconds": 2, "retry_schedule_seconds": [0.1], "jitter": 0.0,
            "circuit_failures": 100, **LOOPBACK, **delivery}})
        worlds.append(world)
        world.start()
        client = Client(world)
        worlds.append(client.session)
        return world, client

    yield start
    for item in reversed(worlds):
        item.close()


# -- the attempt log --------------------------------------------------------------------

SLOW = 0.2


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """One bridge whose log holds attempts of three accounts' hooks:
    PARENT's /ok (4 successes) and /nope (4 final 404s), CHILD's /child (1, answered
    SLOW seconds late), OTHER's /other (1)."""
    world = World(tmp_path_factory.mktemp("logged"), accounts=ACCOUNTS, extra={
        "api": API, "delivery": {"timeout_seconds": 2, "retry_schedule_seconds": [0.1],
                                 **LOOPBACK}})
    hooks = {"ok": world.hook(PARENT, "/ok", hook="channel_create"),
             "nope": world.hook(PARENT, "/nope", hook="channel_create"),
             "child": world.hook(CHILD, "/child", hook="channel_create"),
             "other": world.hook(OTHER, "/other", hook="channel_create")}
    world.write_hooks(hooks.values())
    replies = {"/nope": Reply(404, body=b"no such page"), "/child": Reply(200, delay=SLOW)}
    world.receiver.responder = lambda r: replies.get(r.path, Reply(200))
    client = None
    try:
        world.start()
        client = Client(world)
        began = time.time()
        for n in range(4):
            world.call("parent-call-%d" % n, "CHANNEL_CREATE", account_id=PARENT)
        world.call("child-call", "CHANNEL_CREATE", account_id=CHILD)
        world.call("other-call", "CHANNEL_CREATE", account_id=OTHER)
        world.receiver.wait_for(10, timeout=10)
        assert world.bridge.delivery.wait_idle(10)
        yield world, client, {k: h["id"] for k, h in hooks.items()}, began
    finally:
        if client is not None:
            client.session.close()
        world.close()


def test_the_account_log_pages_newest_first_with_crossbar_keys(logged):
    world, client, ids, began = logged
    envelopes = client.pages("/v1/accounts/%s/webhooks/attempts" % PARENT, page_size=3)
    assert [e["page_size"] for e in envelopes] == [3, 3, 2]
    assert all("next_start_key" in e for e in envelopes[:-1])
    records = [r for e in envelopes for r in e["data"]]
    keys = [int(r["id"]) for r in records]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == 8
    # the account's own hooks only: not its sub-account's, not another account's
    assert {r["hook_id"] for r in records} == {ids["ok"], ids["nope"]}
    # start_key gets a page again; next_start_key is the next page's start_key
    second = assert_success(client("GET", HOOKS % PARENT + "/attempts",
                                   params={"page_size": 3, "start_key":
                                           envelopes[1]["start_key"]}))
    assert second["data"] == envelopes[1]["data"]
    assert envelopes[0]["next_start_key"] == envelopes[1]["start_key"]
    # Kazoo's timestamp: gregorian seconds
    now = time.time()
    for record in records:
        assert int(began) - 1 <= record["timestamp"] - GREGORIAN_UNIX_OFFSET_SECONDS <= now + 1
    ok = next(r for r in records if r["hook_id"] == ids["ok"])
    assert ok["result"] == "success" and ok["response_code"] == 200
    assert (ok["uri"], ok["method"], ok["attempt"], ok["hook_event"]) == (
        world.receiver.url("/ok"), "POST", 1, "channel_create")
    assert ok["call_id"].startswith("parent-call-") and ok["event_id"]
    # default page: everything here fits, and no next_start_key
    whole = assert_success(client("GET", HOOKS % PARENT + "/attempts"))
    assert whole["data"] == records and "next_start_key" not in whole


def test_one_hooks_log_shows_why_it_failed(logged):
    world, client, ids, _ = logged
    body = assert_success(client("GET", HOOK % (PARENT, ids["nope"]) + "/attempts"))
    assert len(body["data"]) == 4 and body["page_size"] == 4
    for record in body["data"]:
        assert (record["hook_id"], record["result"], record["reason"],
                record["response_code"], record["response_body"], record["retries_left"]) == (
            ids["nope"], "failure", "bad response code", 404, "no such page", 0)
    # pages of one: same records, same order
    one_by_one = client.pages(HOOK % (PARENT, ids["nope"]) + "/attempts", page_size=1)
    assert [e["data"][0] for e in one_by_one] == body["data"]


def test_each_attempt_shows_how_long_it_took(logged):
    world, client, ids, began = logged
    took = time.time() - began
    child = assert_success(client("GET", HOOKS % CHILD + "/attempts"))["data"]
    assert [r["hook_id"] for r in child] == [ids["child"]]
    # the receiver's delay is in it; the fixture's whole run bounds it
    assert SLOW * 1000 <= child[0]["duration_ms"] < took * 1000
    fast = assert_success(client("GET", HOOKS % PARENT + "/attempts"))["data"]
    assert len(fast) == 8
    for record in fast:
        assert isinstance(record["duration_ms"], float)
        assert 0 < record["duration_ms"] < 2000     # the delivery timeout bounds it


def test_attempts_follow_the_apis_token_rules(logged):
    _, client, ids, _ = logged
    path = "/v2/accounts/%s/webhooks/attempts"
    # a parent's token reaches its sub-account, which sees only its own hook
    child = assert_success(client("GET", path % CHILD))["data"]
    assert [r["hook_id"] for r in child] == [ids["child"]]
    assert [r["hook_id"] for r in assert_success(
        client("GET", path % CHILD, "child"), token="child")["data"]] == [ids["child"]]
    assert [r["hook_id"] for r in assert_success(
        client("GET", path % OTHER, "admin"), token="admin")["data"]] == [ids["other"]]
    assert_error(client("GET", path % PARENT, "child"), 403)     # not up the tree
    assert_error(client("GET", path % PARENT, "other"), 403)
    assert_error(client("GET", HOOK % (PARENT, ids["ok"]) + "/attempts", "other"), 403)
    assert_error(client("GET", path % PARENT, None), 401)
    # a hook of another account, through this account's URL: not found, nothing shown
    body = assert_error(client("GET", HOOK % (PARENT, ids["other"]) + "/attempts"), 404)
    assert "webhook_id" in body["data"]
    assert_error(client("GET", HOOK % (PARENT, "f" * 32) + "/attempts"), 404)


@pytest.mark.parametrize("params, field, check", [
    ({"page_size": "0"}, "page_size", "minimum"),
    ({"page_size": "1001"}, "page_size", "maximum"),
    ({"page_size": "ten"}, "page_size", "type"),
    ({"page_size": "-5"}, "page_size", "type"),
    ({"start_key": "abc"}, "start_key", "invalid"),
    ({"start_key": "12; DROP"}, "start_key", "invalid"),
])
def test_bad_paging_parameters_get_400_naming_them(logged, params, field, check):
    _, client, _, _ = logged
    body = assert_error(client("GET", HOOKS % PARENT + "/attempts", params=params), 400)
    assert check in body["data"][field]
    assert body["data"][field][check]["message"]


def test_page_size_1000_is_accepted_and_other_methods_are_405(logged):
    _, client, _, _ = logged
    assert len(assert_success(client("GET", HOOKS % PARENT + "/attempts",
                                     params={"page_size": "1000"}))["data"]) == 8
    assert_error(client("DELETE", HOOKS % PARENT + "/attempts"), 405)


# -- replay -----------------------------------------------------------------------------

def iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).isoformat()


def test_replay_resends_the_window_with_the_same_webhook_ids(started):
    world, client = started()
    hook = world.hook(PARENT, "/ok", hook="channel_create")
    world.write_hooks([hook])
    began = time.time()
    assert helpers.wait_until(lambda: hook["id"] in {h.id for h in world.bridge.hooks.hooks})
    for n in range(4):
        world.call("call-%d" % n, "CHANNEL_CREATE", account_id=PARENT)
    first = world.receiver.wait_for(4, timeout=10)
    assert world.bridge.delivery.wait_idle(10)
    reply = client("POST", HOOK % (PARENT, hook["id"]) + "/replay",
                   json={"data": {"since": iso(began - 1), "until": iso(time.time() + 1)}})
    body = assert_success(reply, 202)["data"]
    assert (body["hook_id"], body["replayed"], body["limit_reached"]) == (hook["id"], 4, False)
    again = world.receiver.wait_for(8, timeout=10)[4:]
    assert world.bridge.delivery.wait_idle(10)
    # each call is a lane of its own: they go in parallel, so compare as sets
    ids = {r.json["call_id"]: r.header("webhook-id") for r in first}
    assert {r.json["call_id"]: r.header("webhook-id") for r in again} == ids
    assert len(set(ids.values())) == 4
    # the replayed attempts are in the log, newest first
    log = assert_success(client("GET", HOOK % (PARENT, hook["id"]) + "/attempts"))["data"]
    assert sorted(r["call_id"] for r in log[:4]) == sorted(ids) == \
        sorted(r["call_id"] for r in log[4:])
    assert log[0]["timestamp"] >= log[-1]["timestamp"]
    # a window before anything happened replays nothing
    empty = client("POST", HOOK % (PARENT, hook["id"]) + "/replay",
                   json={"data": {"since": "2001-01-01T00:00:00Z",
                                  "until": "2001-01-02T00:00:00+02:00"}})
    assert assert_success(empty, 202)["data"]["replayed"] == 0
    gevent.sleep(0.2)
    assert len(world.receiver.requests) == 8


@pytest.mark.parametrize("data, field, check", [
    ({"until": "2030-01-01T00:00:00Z"}, "since", "required"),
    ({"since": "2030-01-01T00:00:00Z"}, "until", "required"),
    ({"since": "2030-01-01T00:00:00", "until": "2030-01-02T00:00:00Z"}, "since", "format"),
    ({"since": "2030-01-01", "until": "2030-01-02T00:00:00Z"}, "since", "format"),
    ({"since": 1893456000, "until": "2030-01-02T00:00:00Z"}, "since", "format"),
    ({"since": "yesterday", "until": "2030-01-02T00:00:00Z"}, "since", "format"),
    ({"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"}, "until", "minimum"),
    ({"since": "2030-01-01T02:00:00+02:00", "until": "2030-01-01T00:00:00Z"}, "until",
     "minimum"),   # the same instant: an empty window
    ({"since": "2030-01-01T00:00:00Z", "until": "2030-01-02T00:00:00Z", "hook_id": "x"},
     "hook_id", "additionalProperties"),
])
def test_a_bad_replay_window_gets_400_naming_the_field(logged, data, field, check):
    world, client, ids, _ = logged
    before = len(world.receiver.requests)
    body = assert_error(client("POST", HOOK % (PARENT, ids["ok"]) + "/replay",
                               json={"data": data}), 400)
    assert check in body["data"][field]
    assert len(world.receiver.requests) == before


def test_replay_is_refused_outside_the_account(logged):
    _, client, ids, _ = logged
    window = {"data": {"since": "2030-01-01T00:00:00Z", "until": "2030-01-02T00:00:00Z"}}
    assert_error(client("POST", HOOK % (PARENT, ids["other"]) + "/replay", json=window), 404)
    assert_error(client("POST", HOOK % (PARENT, ids["ok"]) + "/replay", "other",
                        json=window), 403)
    assert_error(client("POST", HOOK % (PARENT, ids["ok"]) + "/replay", None,
                        json=window), 401)
    assert_error(client("POST", HOOK % (PARENT, ids["ok"]) + "/replay", data=b"[1",
                        headers={"Content-Type": "application/json"}), 400, "malformed JSON")


def test_without_a_bridge_the_log_and_replay_answer_503(tmp_path):
    api = start_api(tmp_path)
    try:
        hook = api.create()
        assert_error(api.call("GET", HOOKS % PARENT + "/attempts"), 503, "delivery not running")
        assert_error(api.call("POST", HOOK % (PARENT, hook["id"]) + "/replay", json={"data": {
            "since": "2030-01-01T00:00:00Z", "until": "2030-01-02T00:00:00Z"}}), 503)
    finally:
        api.close()


# -- signing secrets --------------------------------------------------------------------

def signed_hook(world: World, path: str, **fields) -> dict:
    return {"name": path, "uri": world.receiver.url(path), "hook": "channel_create",
            "format": "json", **fields}


def deliver_one(world: World, call_id: str):
    """Publish a channel_create for PARENT; the request it caused at the receiver."""
    count = len(world.receiver.requests)
    world.call(call_id, "CHANNEL_CREATE", account_id=PARENT)
    return world.receiver.wait_for(count + 1, timeout=10)[count]


def assert_never_shown(client: Client, hook_id: str, *secrets: str) -> None:
    """GET, the listing and the summaries hold none of the secrets, nor their fields."""
    for reply in (client("GET", HOOK % (PARENT, hook_id)), client("GET", HOOKS % PARENT)):
        assert reply.status_code == 200
        assert "secret\"" not in reply.text.replace("previous_secret_expires", "")
        for secret in secrets:
            assert secret not in reply.text


def test_a_generated_secret_is_shown_once_and_signs_deliveries(started):
    world, client = started()
    reply = client("PUT", HOOKS % PARENT,
                   json={"data": signed_hook(world, "/signed", secret="generate")})
    created = assert_success(reply, 201)["data"]
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24
    assert "previous_secret" not in created
    assert stored_hooks(world)[created["id"]]["secret"] == secret
    assert_never_shown(client, created["id"], secret)
    request = deliver_one(world, "signed-1")
    Webhook(secret).verify(request.body, request.headers, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(GIVEN_SECRET).verify(request.body, request.headers, json_parse=False)
    other = assert_success(client("PUT", HOOKS % PARENT, json={"data": signed_hook(
        world, "/second", secret="generate")}), 201)["data"]
    assert other["secret"] != secret
    deleted = client("DELETE", HOOK % (PARENT, created["id"]))
    assert_success(deleted)
    assert secret not in deleted.text and "secret\"" not in deleted.text


BAD_SECRETS = [
    ("whsec_" + base64.b64encode(b"only-16-bytes-ab").decode(), "pattern"),   # too short
    ("whsec_" + "A" * 33, "format"),            # the pattern's length, not valid base64
    ("sk_live_" + "A" * 40, "pattern"),
    ("Generate", "pattern"),
    (12345, "type"),
]


def test_a_given_secret_is_validated_stored_and_never_echoed(started):
    world, client = started()
    for bad, check in BAD_SECRETS:
        reply = client("PUT", HOOKS % PARENT,
                       json={"data": signed_hook(world, "/bad", secret=bad)})
        body = assert_error(reply, 400, "validation error")
        assert check in body["data"]["secret"], (bad, body)
        assert "generate" in body["data"]["secret"][check]["message"]
        assert str(bad) not in reply.text
    assert stored_hooks(world) == {}
    reply = client("PUT", HOOKS % PARENT,
                   json={"data": signed_hook(world, "/given", secret=GIVEN_SECRET)})
    created = assert_success(reply, 201)["data"]
    assert GIVEN_SECRET not in reply.text and "secret" not in created
    assert stored_hooks(world)[created["id"]]["secret"] == GIVEN_SECRET
    assert_never_shown(client, created["id"], GIVEN_SECRET)
    request = deliver_one(world, "given-1")
    Webhook(GIVEN_SECRET).verify(request.body, request.headers, json_parse=False)


def test_rotation_keeps_the_old_secret_24h_and_unnamed_secrets_are_kept(started):
    world, client = started()
    created = assert_success(client("PUT", HOOKS % PARENT, json={"data": signed_hook(
        world, "/rotating", secret=GIVEN_SECRET)}), 201)["data"]
    path = HOOK % (PARENT, created["id"])
    # PATCH "generate": a new secret, shown once; the old one still signs for 24 h
    reply = client("PATCH", path, json={"data": {"secret": "generate"}})
    patched = assert_success(reply)["data"]
    new = patched["secret"]
    assert new != GIVEN_SECRET and GIVEN_SECRET not in reply.text
    expires = datetime.fromisoformat(patched["previous_secret_expires"].replace("Z", "+00:00"))
    assert abs(expires - datetime.now(timezone.utc) - timedelta(hours=24)) < timedelta(minutes=1)
    stored = stored_hooks(world)[created["id"]]
    assert (stored["secret"], stored["previous_secret"]) == (new, GIVEN_SECRET)
    assert_never_shown(client, created["id"], new, GIVEN_SECRET)
    request = deliver_one(world, "rotating-1")
    assert len(request.header("webhook-signature").split(" ")) == 2
    for secret in (new, GIVEN_SECRET):   # a receiver on either secret accepts it
        Webhook(secret).verify(request.body, request.headers, json_parse=False)
    # POST (replace) without naming the secrets keeps both, and shows neither
    replaced = client("POST", path, json={"data": signed_hook(world, "/rotating",
                                                              name="renamed")})
    assert assert_success(replaced)["data"]["name"] == "renamed"
    assert new not in replaced.text and "secret\"" not in replaced.text.replace(
        "previous_secret_expires", "")
    stored = stored_hooks(world)[created["id"]]
    assert (stored["secret"], stored["previous_secret"]) == (new, GIVEN_SECRET)
    # a client's own secret rotates the same way, and is not echoed
    mine = "whsec_" + base64.b64encode(b"the-clients-own-secret-32-bytes").decode()
    reply = client("PATCH", path, json={"data": {"secret": mine}})
    assert "secret" not in assert_success(reply)["data"] and mine not in reply.text
    stored = stored_hooks(world)[created["id"]]
    assert (stored["secret"], stored["previous_secret"]) == (mine, new)
    request = deliver_one(world, "rotating-2")
    Webhook(mine).verify(request.body, request.headers, json_parse=False)
    # null stops signing: no secret, no previous one
    assert_success(client("PATCH", path, json={"data": {"secret": None}}))
    stored = stored_hooks(world)[created["id"]]
    assert "secret" not in stored and "previous_secret" not in stored
    request = deliver_one(world, "rotating-3")
    assert request.header("webhook-signature") is None and request.header("webhook-id")


# -- disable, re-enable ------------------------------------------------------------------

class Switchable:
    """A responder: ``status`` while ``down``, else 200 (scripted replies first)."""

    def __init__(self, receiver, status: int, *script: Reply):
        self.status, self.down, self.script = status, True, list(script)
        receiver.responder = self

    def __call__(self, request):
        if self.script:
            return self.script.pop(0)
        return Reply(self.status if self.down else 200)


def test_auto_disabled_then_patched_enabled_delivers_everything_held_in_order(started):
    world, client = started(disable_after_seconds=0.3, disable_after_failures=2)
    hook = world.hook(PARENT, "/flaky", retries=10)
    world.write_hooks([hook])
    assert helpers.wait_until(lambda: world.bridge.hooks.hooks)
    receiver = Switchable(world.receiver, 503)
    world.call("held-call", account_id=PARENT)          # create, answer, destroy
    assert helpers.wait_until(lambda: not stored_hooks(world)[hook["id"]].get("enabled", True),
                              timeout=10)
    shown = assert_success(client("GET", HOOK % (PARENT, hook["id"])))["data"]
    assert (shown["enabled"], shown["disable_reason"]) == (False, "too many failed attempts")
    tried = len(world.receiver.requests)
    assert tried >= 3 and {r.json["hook_event"] for r in world.receiver.requests} == {
        "channel_create"}                               # the head failed; the rest waited
    gevent.sleep(0.4)
    assert len(world.receiver.requests) == tried        # held while disabled
    receiver.down = False
    enabled = assert_success(client("PATCH", HOOK % (PARENT, hook["id"]),
                                    json={"data": {"enabled": True}}))["data"]
    assert (enabled["enabled"], enabled["disable_reason"]) == (True, None)
    world.receiver.wait_for(tried + 3, timeout=10)
    assert world.bridge.delivery.wait_idle(10)
    after = world.receiver.requests[tried:]
    assert [(r.json["hook_event"], r.json["sequence"]) for r in after] == [
        ("channel_create", 1), ("channel_answer", 2), ("channel_destroy", 3)]
    # the held head is the same delivery: every attempt of it had one webhook-id
    assert len({r.header("webhook-id") for r in world.receiver.requests
                if r.json["hook_event"] == "channel_create"}) == 1
    log = assert_success(client("GET", HOOK % (PARENT, hook["id"]) + "/attempts"))["data"]
    assert [r["result"] for r in log] == ["success"] * 3 + ["failure"] * tried
    assert {(r["response_code"], r["reason"]) for r in log[3:]} == {(503, "bad response code")}
    assert stored_hooks(world)[hook["id"]]["enabled"] is True


def test_gone_then_account_re_enable_delivers_the_rest_and_replay_brings_the_first(started):
    world, client = started()
    hook = world.hook(PARENT, "/gone")
    world.write_hooks([hook])
    assert helpers.wait_until(lambda: world.bridge.hooks.hooks)
    # 410 for the first request, after the call's later events are queued behind it
    Switchable(world.receiver, 200, Reply(410, delay=0.3))
    began = time.time()
    world.call("gone-call", account_id=PARENT)
    assert helpers.wait_until(lambda: stored_hooks(world)[hook["id"]].get("disable_reason")
                              == "gone (410)", timeout=10)
    window = {"data": {"since": iso(began - 1), "until": iso(time.time() + 60)}}
    assert_error(client("POST", HOOK % (PARENT, hook["id"]) + "/replay", json=window), 409)
    gevent.sleep(0.3)
    assert len(world.receiver.requests) == 1
    reenabled = assert_success(client("PATCH", HOOKS % PARENT,
                                      json={"data": {"re-enable": True}}))["data"]
    assert [(h["id"], h["enabled"]) for h in reenabled] == [(hook["id"], True)]
    rest = world.receiver.wait_for(3, timeout=10)[1:]
    assert [r.json["hook_event"] for r in rest] == ["channel_answer", "channel_destroy"]
    assert world.bridge.delivery.wait_idle(10)
    # the 410'd create was given up; replay sends the whole call again, same ids, in order
    first = world.receiver.requests[:3]
    replayed = assert_success(client("POST", HOOK % (PARENT, hook["id"]) + "/replay",
                                     json=window), 202)["data"]
    assert replayed["replayed"] == 3
    again = world.receiver.wait_for(6, timeout=10)[3:]
    assert [r.json["hook_event"] for r in again] == [
        "channel_create", "channel_answer", "channel_destroy"]
    assert [r.header("webhook-id") for r in again] == [r.header("webhook-id") for r in first]


def test_the_openapi_document_lists_every_status_these_endpoints_answer(logged):
    _, client, ids, _ = logged
    document = client("GET", "/openapi.json", None).json()

    def documented(path: str, method: str) -> set[str]:
        item = document["paths"][path]
        if "$ref" in item:
            item = document["paths"][item["$ref"].removeprefix("#/paths/").replace("~1", "/")]
        return set(item[method]["responses"])

    listing = HOOKS % PARENT + "/attempts"
    answered = {client("GET", listing).status_code,
                client("GET", listing, params={"page_size": "0"}).status_code,
                client("GET", listing, None).status_code,
                client("GET", listing, "other").status_code,
                client("GET", HOOK % (PARENT, "f" * 32) + "/attempts").status_code}
    assert answered == {200, 400, 401, 403, 404}
    for path in ("/v1/accounts/{account_id}/webhooks/attempts",
                 "/v2/accounts/{account_id}/webhooks/{hook_id}/attempts"):
        assert {str(s) for s in answered} | {"503"} <= documented(path, "get")
    replay = HOOK % (PARENT, ids["ok"]) + "/replay"
    window = {"data": {"since": "2001-01-01T00:00:00Z", "until": "2001-01-02T00:00:00Z"}}
    answered = {client("POST", replay, json=window).status_code,
                client("POST", replay, json={"data": {}}).status_code,
                client("POST", replay, None, json=window).status_code,
                client("POST", replay, "other", json=window).status_code,
                client("POST", HOOK % (PARENT, "f" * 32) + "/replay", json=window).status_code,
                client("POST", replay, data=b"x=1",
                       headers={"Content-Type": "text/plain"}).status_code}
    assert answered == {202, 400, 401, 403, 404, 415}
    assert {str(s) for s in answered} | {"409", "503"} <= documented(
        "/v1/accounts/{account_id}/webhooks/{hook_id}/replay", "post")
