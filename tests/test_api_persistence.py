"""The API and hooks.yaml: Kazoo's curl commands verbatim, concurrent writes,
hand edits during API use, and a created hook firing end to end."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess

import gevent
import pytest
import requests
import yaml
from gevent.pool import Group

from eslhook.config import HOOKS_FILE_HEADER, load_config
from eslhook.fakeswitch import FakeSwitch
from eslhook.service import Bridge
from helpers import FAST_TIMINGS, wait_until
from test_api_support import (CHILD, NEW_HOOK, OTHER, PARENT, TOKENS, assert_error,
                              assert_success, start_api)

HOOKS = "/v2/accounts/%s/webhooks"
HOOK = "/v2/accounts/%s/webhooks/%s"

# Verbatim from the issue (Kazoo's documentation); only host, port and the
# {PLACEHOLDERS} are substituted.
KAZOO_CURLS = [
    ('curl -v -X GET -H "X-Auth-Token: {AUTH_TOKEN}" '
     'http://server.com:8000/v1/accounts/{ACCOUNT_ID}/webhooks', 200),
    ('curl -v -X PUT -H "X-Auth-Token: {AUTH_TOKEN}" -H "Content-Type: application/json" '
     'http://server.com:8000/v1/accounts/{ACCOUNT_ID}/webhooks -d \'{"data":{"name":"New Calls", '
     '"uri":"http://my.server.com/calls/new.php", "http_verb":"post", "hook":"channel_create", '
     '"retries":3}}\'', 201),
    ('curl -v -X GET -H "X-Auth-Token: {AUTH_TOKEN}" '
     'http://server.com:8000/v1/accounts/{ACCOUNT_ID}/webhooks/{WEBHOOK_ID}', 200),
    ('curl -v -X POST -H "X-Auth-Token: {AUTH_TOKEN}" -H "Content-Type: application/json" '
     'http://server.com:8000/v1/accounts/{ACCOUNT_ID}/webhooks/{WEBHOOK_ID} -d \'{"data":{"name":'
     '"New Calls", "uri":"http://my.server.com/calls/new_calls.php", "http_verb":"post", '
     '"hook":"channel_create", "retries":3}}\'', 200),
    ('curl -v -X DELETE -H "X-Auth-Token: {AUTH_TOKEN}" '
     'http://server.com:8000/v1/accounts/{ACCOUNT_ID}/webhooks/{WEBHOOK_ID}', 200),
]


@pytest.fixture
def api(tmp_path):
    api = start_api(tmp_path)
    yield api
    api.close()


def run_curl(command: str) -> tuple[int, dict]:
    result = subprocess.run(shlex.split(command), capture_output=True, timeout=20, text=True)
    assert result.returncode == 0, result.stderr
    status = re.search(r"^< HTTP/[\d.]+ (\d{3})", result.stderr, re.M)
    return int(status.group(1)), json.loads(result.stdout)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the curl binary is not installed")
def test_kazoo_curl_commands_work_verbatim(api):
    host_port = api.url.removeprefix("http://")
    hook_id = None
    bodies = []
    for template, status in KAZOO_CURLS:
        command = (template.replace("server.com:8000", host_port)
                   .replace("{AUTH_TOKEN}", TOKENS["parent"]).replace("{ACCOUNT_ID}", PARENT)
                   .replace("{WEBHOOK_ID}", hook_id or "{WEBHOOK_ID}"))
        got, body = run_curl(command)
        assert got == status, body
        assert body["status"] == "success" and body["auth_token"] == TOKENS["parent"]
        assert body["request_id"] and body["revision"] and body["timestamp"]
        hook_id = hook_id or (body["data"]["id"] if status == 201 else None)
        bodies.append(body["data"])
    listed, created, fetched, edited, deleted = bodies
    assert listed == []
    assert created["uri"] == "http://my.server.com/calls/new.php" and created["retries"] == 3
    assert fetched == created
    assert edited == {**created, "uri": "http://my.server.com/calls/new_calls.php"}
    assert deleted == edited
    assert api.file_hooks() == []


def test_fifty_concurrent_creates_are_all_persisted(api):
    results = []
    group = Group()

    def create(n):
        with requests.Session() as session:   # each its own connection
            reply = session.put(api.url + HOOKS % PARENT, timeout=30,
                                headers={"X-Auth-Token": TOKENS["parent"]},
                                json={"data": {**NEW_HOOK, "name": "hook %d" % n}})
            results.append((reply.status_code, reply.json()["data"]))

    for n in range(50):
        group.spawn(create, n)
    assert group.join(timeout=60)
    assert [status for status, _ in results] == [201] * 50
    created = {data["id"]: data["name"] for _, data in results}
    stored = {h["id"]: h["name"] for h in api.file_hooks()}
    assert len(created) == 50 and stored == created
    assert {h.id for h in api.store.hooks} == set(created)
    listed = assert_success(api.call("GET", HOOKS % PARENT))["data"]
    assert len(listed) == 50
    # atomic writes leave no temp files behind
    assert sorted(p.name for p in api.path.parent.iterdir()) == ["hooks.yaml"]


def test_concurrent_patches_of_one_hook_lose_nothing(api):
    hook = api.create()
    group = Group()
    replies = []
    for n in range(10):
        group.spawn(lambda n=n: replies.append(api_patch_custom(api, hook["id"], n)))
    assert group.join(timeout=30)
    assert replies == [200] * 10
    # each PATCH replaced custom_data whole; the last write wins, and the file
    # holds exactly one complete value
    data = api.file_hooks()[0]["custom_data"]
    assert len(data) == 1 and list(data.values())[0].startswith("v")


def api_patch_custom(api, hook_id, n) -> int:
    with requests.Session() as session:
        reply = session.patch(api.url + HOOK % (PARENT, hook_id), timeout=30,
                              headers={"X-Auth-Token": TOKENS["parent"]},
                              json={"data": {"custom_data": {"k%d" % n: "v%d" % n}}})
    return reply.status_code


def test_the_file_is_readable_and_managed_with_a_header(api):
    api.create(name="one", custom_data={"crm": "7"})
    api.create(name="two")
    text = api.path.read_text()
    assert text.startswith(HOOKS_FILE_HEADER)
    assert "managed by eslhook" in text and "edited by hand" in text
    hooks = yaml.safe_load(text)["webhooks"]
    assert [list(h)[:5] for h in hooks] == [["id", "account_id", "name", "uri", "hook"]] * 2
    assert text.count("\n  - id: ") == 2


def test_an_api_write_after_an_unread_hand_edit_gets_409_and_the_edit_wins(api):
    first = api.create(name="from the API")
    hooks = api.file_hooks()
    hooks[0]["name"] = "renamed by hand"
    hooks.append({"id": "e" * 32, "account_id": PARENT, "name": "added by hand",
                  "uri": "http://127.0.0.1:9/hand", "hook": "all"})
    # in place, and the store's watcher is not even running: eslhook has not read it
    api.path.write_text(yaml.safe_dump({"webhooks": hooks}, sort_keys=False))
    by_hand = api.path.read_bytes()
    conflict = assert_error(api.call("PUT", HOOKS % PARENT, json={"data": NEW_HOOK}),
                            409, "hooks file changed")
    assert conflict["data"]["reason"] == "changed"
    assert api.path.read_bytes() == by_hand             # nothing written over it
    assert "e" * 32 in {h.id for h in api.store.hooks}  # and the edit is in force
    second = api.create(name="after the edit")          # a retry applies to the edit
    assert api.path.read_bytes().startswith(by_hand)
    assert [(h["id"], h["name"]) for h in api.file_hooks()] == [
        (first["id"], "renamed by hand"), ("e" * 32, "added by hand"),
        (second["id"], "after the edit")]
    listed = assert_success(api.call("GET", HOOKS % PARENT))["data"]
    assert [h["name"] for h in listed] == ["renamed by hand", "added by hand", "after the edit"]


def test_a_same_size_in_place_edit_is_still_noticed(api):
    hook = api.create(name="aaaa")
    text = api.path.read_text()
    api.path.write_text(text.replace("name: aaaa", "name: bbbb"))   # same size, same inode
    patch = {"json": {"data": {"retries": 1}}}
    assert_error(api.call("PATCH", HOOK % (PARENT, hook["id"]), **patch), 409,
                 "hooks file changed")
    patched = api.call("PATCH", HOOK % (PARENT, hook["id"]), **patch)
    assert assert_success(patched)["data"]["name"] == "bbbb"
    assert api.file_hooks()[0]["name"] == "bbbb" and api.file_hooks()[0]["retries"] == 1


def test_a_bad_hand_edit_blocks_api_writes_and_is_never_overwritten(api):
    hook = api.create()
    bad = api.path.read_text().replace("retries: 3", "retries: lots")
    api.path.write_text(bad)
    for method, path, kwargs in (("PUT", HOOKS % PARENT, {"json": {"data": NEW_HOOK}}),
                                 ("PATCH", HOOK % (PARENT, hook["id"]),
                                  {"json": {"data": {"retries": 1}}}),
                                 ("DELETE", HOOK % (PARENT, hook["id"]), {})):
        body = assert_error(api.call(method, path, **kwargs), 503, "hooks file invalid")
        assert body["data"]["issues"][0]["path"] == "webhooks[0].retries"
        assert api.path.read_text() == bad
    # reads still answer with the hooks in force
    assert [h["id"] for h in assert_success(api.call("GET", HOOKS % PARENT))["data"]] == \
        [hook["id"]]
    api.path.write_text(bad.replace("retries: lots", "retries: 4"))
    assert api.store.poll()      # the watcher reads the fixed file
    assert_success(api.call("PATCH", HOOK % (PARENT, hook["id"]),
                            json={"data": {"name": "fixed"}}))
    assert api.file_hooks()[0]["retries"] == 4 and api.file_hooks()[0]["name"] == "fixed"


# -- end to end through the Bridge --------------------------------------------

def write_config(tmp_path, switch_port: int) -> None:
    config = {
        "switches": [{"name": "fs1", "host": "127.0.0.1", "port": switch_port}],
        "hooks_file": "hooks.yaml", "state_dir": "state",
        "accounts": [{"id": PARENT, "name": "Parent", "auth_tokens": [TOKENS["parent"]]},
                     {"id": CHILD, "parent_id": PARENT}, {"id": OTHER}],
        "api": {"listen": "127.0.0.1:0", "admin_tokens": [TOKENS["admin"]]},
        "delivery": {"timeout_seconds": 2, "tenant_allowed_networks": ["127.0.0.0/8"]},
    }
    (tmp_path / "eslhook.yaml").write_text(yaml.safe_dump(config))


def test_a_hook_created_by_put_receives_the_next_event(tmp_path, receiver):
    fake = FakeSwitch([], heartbeat_seconds=None)
    _, port = fake.start()
    write_config(tmp_path, port)
    bridge = Bridge(load_config(tmp_path / "eslhook.yaml"), timings=FAST_TIMINGS)
    bridge.start()
    try:
        assert fake.wait_for_subscribers(1, timeout=5)
        base = bridge.api.url()
        reply = requests.put(base + HOOKS % PARENT, timeout=10,
                             headers={"X-Auth-Token": TOKENS["parent"]},
                             json={"data": {"name": "CRM", "uri": receiver.url("/crm"),
                                            "hook": "channel_create", "format": "json"}})
        hook = assert_success(reply, 201)["data"]
        fake.publish_generated("CHANNEL_CREATE", [
            ("Unique-ID", "call-1"), ("Call-Direction", "inbound"),
            ("Channel-Name", "sofia/internal/1000@x"), ("variable_account_id", PARENT)])
        (request,) = receiver.wait_for(1, timeout=10)
        assert request.path == "/crm" and request.header("X-Hook-ID") == hook["id"]
        assert request.json["call_id"] == "call-1" and request.json["account_id"] == PARENT
        # deleting it stops delivery for the next event
        assert_success(requests.delete(base + HOOK % (PARENT, hook["id"]), timeout=10,
                                       headers={"X-Auth-Token": TOKENS["parent"]}))
        fake.publish_generated("CHANNEL_CREATE", [
            ("Unique-ID", "call-2"), ("Call-Direction", "inbound"),
            ("Channel-Name", "sofia/internal/1000@x"), ("variable_account_id", PARENT)])
        assert wait_until(lambda: bridge.stats.unmatched >= 1, timeout=5)
        gevent.sleep(0.2)
        assert len(receiver.requests) == 1
    finally:
        bridge.stop(drain_seconds=1)
        fake.stop()
    with pytest.raises(requests.ConnectionError):   # the API stopped with the bridge
        requests.get(base + "/v2/webhooks", timeout=2)
