"""Kazoo's own clients, replayed request by request as they send them, over real HTTP
to a running Bridge with a real receiver: Monster UI's webhooks app (its app.js and
monster's callApi, which adds ``ui_metadata`` to every body it sends) and a script
using the Kazoo PHP SDK (api_auth with an API key, then a filtered listing)."""

from __future__ import annotations

import time

import pytest
import requests

from eslhook.mapping import GREGORIAN_UNIX_OFFSET_SECONDS
from test_api_support import PARENT, TOKENS, assert_error, assert_success
from world import World

API_KEY = "0f3c9a1e5b7d2c4e6a8b0d1f3e5c7a9b1d3f5e7c9a0b2d4f6e8a1c3e5b7d9f0a"
ACCOUNTS = [{"id": PARENT, "name": "Parent", "auth_tokens": [TOKENS["parent"]],
             "api_keys": [API_KEY]}]
HOOKS = "/v2/accounts/%s/webhooks" % PARENT
UI = {"version": "4.3-12", "ui": "monster-ui", "origin": "webhooks"}
# kdeliv adds custom_request_headers to the hook schema; Monster UI always sends it


@pytest.fixture
def kazoo(tmp_path):
    world = World(tmp_path, accounts=ACCOUNTS, extra={
        "api": {"listen": "127.0.0.1:0"},
        "delivery": {"timeout_seconds": 2, "retry_schedule_seconds": [0.1],
                     "tenant_allowed_networks": ["127.0.0.0/8"]}})
    session = requests.Session()
    try:
        world.start()
        base = world.bridge.api.url()

        def call(method, path, token=TOKENS["parent"], **kwargs):
            headers = {"X-Auth-Token": token} if token else {}
            return session.request(method, base + path, headers=headers, timeout=10, **kwargs)
        yield world, call
    finally:
        session.close()
        world.close()


def monster_form(world, **fields) -> dict:
    """What the edit form's getFormData gives, plus callApi's ui_metadata: selects as
    strings (retries "2"), custom_data and custom_request_headers always there."""
    return {"name": "CRM", "uri": world.receiver.url("/crm"), "http_verb": "post",
            "hook": "channel_create", "retries": "2", "format": "json",
            "custom_data": {"crm": "x"}, "custom_request_headers": {},
            "group": "Sales", "ui_metadata": UI, **fields}


def test_monster_ui_webhooks_app_replayed(kazoo):
    world, call = kazoo
    available = assert_success(call("GET", "/v2/webhooks", None), token=None)["data"]
    assert "all" not in {t["id"] for t in available} and all(t["name"] for t in available)
    # create (webhooks.create: PUT)
    created = assert_success(call("PUT", HOOKS, json={"data": monster_form(world)}), 201)
    hook = created["data"]
    assert (hook["retries"], hook["group"], hook["ui_metadata"]) == (2, "Sales", UI)
    listed = assert_success(call("GET", HOOKS))["data"]
    assert [(h["id"], h["group"]) for h in listed] == [(hook["id"], "Sales")]
    one = HOOKS + "/" + hook["id"]
    # edit (webhooks.update: POST with the form again)
    edited = assert_success(call("POST", one, json={"data": monster_form(
        world, name="CRM 2", retries="3", group="Support")}))["data"]
    assert (edited["name"], edited["retries"], edited["group"]) == ("CRM 2", 3, "Support")
    # the on/off switch: GET the details, flip enabled, POST all of it back
    details = assert_success(call("GET", one))["data"]
    switched = assert_success(call("POST", one, json={"data": {
        **details, "enabled": False, "ui_metadata": UI}}))["data"]
    assert switched["enabled"] is False
    # Enable on the attempts page (webhooks.patch) and Re-enable (webhooks.patchAll)
    enabled = assert_success(call("PATCH", one, json={"data": {"enabled": True,
                                                               "ui_metadata": UI}}))
    assert enabled["data"]["enabled"] is True
    reenabled = call("PATCH", HOOKS, json={"data": {"re-enable": True, "ui_metadata": UI}})
    assert assert_success(reenabled)["data"] == []        # none was auto-disabled
    # a call, then the attempts of today as the date range picker asks, "load all"
    day = int(time.time()) // 86400 * 86400 + GREGORIAN_UNIX_OFFSET_SECONDS
    world.call("monster-call", "CHANNEL_CREATE", account_id=PARENT)
    world.receiver.wait_for(1, timeout=10)
    assert world.bridge.delivery.wait_idle(10)
    page = assert_success(call("GET", one + "/attempts", params={
        "created_from": str(day), "created_to": str(day + 86399), "paginate": "false"}))
    [attempt] = page["data"]
    assert (attempt["method"], attempt["result"], attempt["resp_status_code"]) == (
        "POST", "success", 200)
    assert attempt["retries"] - 1 == 0                    # what the app shows as left
    assert call("GET", one + "/attempts", params={
        "created_from": str(day - 86400), "created_to": str(day - 1)}).json()["data"] == []


def test_a_php_sdk_script_logs_in_with_its_api_key_and_lists_filtered(kazoo):
    world, call = kazoo
    for name in ("Billing", "CRM", "Alerts"):
        assert_success(call("PUT", HOOKS, json={"data": {
            "name": name, "uri": world.receiver.url("/" + name), "hook": "channel_create"}}),
            201)
    login = call("PUT", "/v2/api_auth", None, json={"data": {"api_key": API_KEY}})
    assert login.status_code == 201, login.text
    token = login.json()["auth_token"]
    assert token and token not in (API_KEY, TOKENS["parent"])
    assert login.json()["data"]["account_id"] == PARENT
    crm = call("GET", HOOKS, token, params={"filter_name": "CRM"})
    assert [h["name"] for h in assert_success(crm, token=token)["data"]] == ["CRM"]
    others = call("GET", HOOKS, token, params={"filter_not_name": "CRM"})
    assert sorted(h["name"] for h in others.json()["data"]) == ["Alerts", "Billing"]
    # a misspelt key, or a value of another type, matches nothing: never the wrong hook
    assert call("GET", HOOKS, token, params={"filter_nmae": "CRM"}).json()["data"] == []
    assert call("GET", HOOKS, token, params={"filter_enabled": "true",
                                             "filter_name": "Alerts"}).json()["data"][0][
        "name"] == "Alerts"
    # the token reaches its account only; a wrong key is a failed authentication
    assert_error(call("GET", "/v2/accounts/%s/webhooks" % ("e" * 32), token), 403)
    assert_error(call("PUT", "/v2/api_auth", None, json={"data": {"api_key": "nope"}}), 401)
    assert_error(call("PUT", "/v2/api_auth", None, json={"data": {}}), 400)
    assert API_KEY not in (world.tmp / "hooks.yaml").read_text()
