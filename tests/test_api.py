"""The webhooks REST API over real HTTP: endpoints, envelope, validation, auth, If-Match.

Each test runs the real falcon app in gevent's WSGI server on a free port,
over a real hooks.yaml (tmp_path), and checks the HTTP status, the body and
the file on disk.
"""

from __future__ import annotations

import json

import falcon.inspect
import pytest
import requests

from eslhook.api import create_app
from eslhook.api.catalog import bundled_capture, sample_payloads
from eslhook.config import DeliveryConfig, schema_validator
from test_api_support import (CHILD, NEW_HOOK, OTHER, PARENT, TOKENS, UNKNOWN,
                              assert_error, assert_success, start_api)

HOOKS = "/v2/accounts/%s/webhooks"
HOOK = "/v2/accounts/%s/webhooks/%s"


@pytest.fixture
def api(tmp_path):
    api = start_api(tmp_path)
    yield api
    api.close()


# -- endpoints ----------------------------------------------------------------

def test_create_fills_defaults_assigns_an_id_and_persists(api):
    reply = api.call("PUT", HOOKS % PARENT, json={"data": NEW_HOOK})
    hook = assert_success(reply, 201)["data"]
    assert len(hook["id"]) == 32 and int(hook["id"], 16) >= 0
    assert hook == {**NEW_HOOK, "id": hook["id"], "account_id": PARENT, "format": "form-data",
                    "enabled": True, "include_subaccounts": False,
                    "include_internal_legs": True, "custom_data": {}, "disable_reason": None}
    assert reply.headers["Location"].endswith(HOOK % (PARENT, hook["id"]))
    assert reply.headers["ETag"] == '"%s"' % reply.json()["revision"]
    assert [h["id"] for h in api.file_hooks()] == [hook["id"]]
    assert [h.id for h in api.store.hooks] == [hook["id"]]   # in force for the next event


def test_list_is_the_summary_of_the_accounts_own_hooks_in_both_versions(api):
    first = api.create(name="first")
    second = api.create(name="second", hook="all")
    api.create(account=CHILD, token="child", name="child's")
    for version in ("v1", "v2"):
        body = assert_success(api.call("GET", "/%s/accounts/%s/webhooks" % (version, PARENT)))
        assert body["data"] == [
            {"id": h["id"], "name": h["name"], "uri": h["uri"], "hook": h["hook"],
             "enabled": True, "disable_reason": None} for h in (first, second)]
        assert body["page_size"] == 2


def test_get_returns_the_full_hook_with_its_revision(api):
    created = api.create(custom_data={"crm": "x"})
    reply = api.call("GET", HOOK % (PARENT, created["id"]))
    body = assert_success(reply)
    assert body["data"] == created
    assert reply.headers["ETag"] == '"%s"' % body["revision"]


def test_post_replaces_the_whole_hook_and_enabling_clears_disable_reason(api):
    created = api.create(custom_data={"crm": "x"}, include_subaccounts=True)
    api.write_file([{**created, "enabled": False, "disable_reason": "too many failures"}])
    replacement = {"name": "Renamed", "uri": "http://127.0.0.1:9/calls/new_calls.php",
                   "hook": "channel_destroy", "enabled": True}
    body = assert_success(api.call("POST", HOOK % (PARENT, created["id"]),
                                   json={"data": replacement}))
    expected = {**replacement, "id": created["id"], "account_id": PARENT, "http_verb": "post",
                "format": "form-data", "retries": 2, "include_subaccounts": False,
                "include_internal_legs": True, "custom_data": {}, "disable_reason": None}
    assert body["data"] == expected
    assert api.file_hooks() == [{**{k: v for k, v in expected.items()
                                    if k not in ("custom_data", "disable_reason")},
                                 "written_by": "account"}]


def test_patch_merges_fields_and_validates_the_result(api):
    created = api.create()
    body = assert_success(api.call("PATCH", HOOK % (PARENT, created["id"]),
                                   json={"data": {"retries": 5, "custom_data": {"a": "b"}}}))
    assert body["data"] == {**created, "retries": 5, "custom_data": {"a": "b"}}
    before = api.path.read_bytes()
    bad = api.call("PATCH", HOOK % (PARENT, created["id"]), json={"data": {"retries": 11}})
    assert assert_error(bad, 400, "validation error")["data"] == {"retries": {"maximum": {
        "message": "Value must be at most 10", "target": 10, "value": 11}}}
    assert api.path.read_bytes() == before


def test_patch_can_disable_and_enable_a_hook(api):
    created = api.create()
    call = {"account_id": PARENT, "hook_event": "channel_create", "is_internal_leg": False}
    assert [h.id for h in api.store.index.match(call)] == [created["id"]]
    off = api.call("PATCH", HOOK % (PARENT, created["id"]),
                   json={"data": {"enabled": False, "disable_reason": "maintenance"}})
    assert assert_success(off)["data"]["disable_reason"] == "maintenance"
    assert not api.store.index.match(call)
    on = api.call("PATCH", HOOK % (PARENT, created["id"]), json={"data": {"enabled": True}})
    assert assert_success(on)["data"] == created


def test_delete_returns_the_deleted_hook_and_removes_it(api):
    keep, gone = api.create(name="keep"), api.create(name="gone")
    body = assert_success(api.call("DELETE", HOOK % (PARENT, gone["id"])))
    assert body["data"] == gone
    assert [h["id"] for h in api.file_hooks()] == [keep["id"]]
    assert_error(api.call("GET", HOOK % (PARENT, gone["id"])), 404, "bad identifier")
    assert_error(api.call("DELETE", HOOK % (PARENT, gone["id"])), 404)


def test_account_patch_re_enables_only_auto_disabled_hooks(api):
    def hook(n, account, **fields):
        return {"id": "%032x" % n, "account_id": account, "name": "h%d" % n,
                "uri": "http://127.0.0.1:9/%d" % n, "hook": "all", **fields}
    auto = dict(enabled=False, disable_reason="auto-disabled: 6 failures")
    api.write_file([hook(1, PARENT, **auto), hook(2, PARENT, enabled=False),
                    hook(3, CHILD, **auto), hook(4, OTHER, **auto), hook(5, PARENT)])
    body = assert_success(api.call("PATCH", HOOKS % PARENT, json={"data": {"re-enable": True}}))
    assert [h["id"] for h in body["data"]] == ["%032x" % 1]
    stored = {h["id"]: h for h in api.file_hooks()}
    assert stored["%032x" % 1]["enabled"] is True and "disable_reason" not in stored["%032x" % 1]
    assert stored["%032x" % 2]["enabled"] is False          # disabled by hand: stays off
    assert stored["%032x" % 3].get("disable_reason")        # a sub-account: not this call
    body = assert_success(api.call("PATCH", "/v2/accounts/%s/descendants/webhooks" % PARENT,
                                   json={"data": {"re-enable": True}}))
    assert [h["id"] for h in body["data"]] == ["%032x" % 3]
    # untouched entries stay as written (hook 5 never had "enabled": true by default)
    assert {h["id"]: h.get("enabled", True) for h in api.file_hooks()} == {
        "%032x" % 1: True, "%032x" % 2: False, "%032x" % 3: True, "%032x" % 4: False,
        "%032x" % 5: True}
    bad = api.call("PATCH", HOOKS % PARENT, json={"data": {"enabled": True}})
    assert "re-enable" in assert_error(bad, 400, "validation error")["data"]


def test_kazoo_re_enable_curl_without_content_type_is_read_as_json(api):
    # Kazoo's documented command sends -d without a JSON content type (curl's
    # default is form-urlencoded); Crossbar reads it as JSON, so do we.
    reply = api.call("PATCH", HOOKS % PARENT, data='{"data":{"re-enable":true}}',
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert assert_success(reply)["data"] == []


def test_hook_types_and_samples_need_no_token(api):
    types = assert_success(api.call("GET", "/v2/webhooks", token=None), token=None)["data"]
    kinds = schema_validator("webhook").schema["properties"]["hook"]["then"]["enum"]
    # the real types, with friendly names; "all" is the clients' to add (Monster UI does)
    assert [t["id"] for t in types] == [kind for kind in kinds if kind != "all"]
    assert all(t["name"] != t["id"] and t["name"] and t["description"] for t in types)
    ids = assert_success(api.call("GET", "/v1/webhooks/samples", token=None), token=None)["data"]
    assert ids == ["webhooks_channel_answer", "webhooks_channel_bridge",
                   "webhooks_channel_create", "webhooks_channel_destroy"]
    expected = sample_payloads(bundled_capture())
    for sample_id in ids:
        got = api.call("GET", "/v2/webhooks/samples/" + sample_id, token=None)
        payloads = assert_success(got, token=None)["data"]
        assert payloads == expected[sample_id] and payloads
        assert {p["hook_event"] for p in payloads} == {sample_id[len("webhooks_"):]}
    destroy = expected["webhooks_channel_destroy"][0]
    assert destroy["hangup_cause"] and destroy["hangup_code"].startswith("sip:")
    bare = api.call("GET", "/v2/webhooks/samples/channel_create", token=None)
    assert assert_success(bare, token=None)["data"] == expected["webhooks_channel_create"]
    assert_error(api.call("GET", "/v2/webhooks/samples/nope", token=None), 404)


def test_unknown_path_is_404_and_wrong_method_405_with_allow(api):
    body = assert_error(api.call("GET", "/v2/nothing/here"), 404)
    assert "/v2/nothing/here" in body["data"]["message"]
    assert_error(api.call("GET", "/v3/accounts/%s/webhooks" % PARENT), 404)
    reply = api.call("DELETE", HOOKS % PARENT)
    body = assert_error(reply, 405, "method not allowed")
    allowed = {m.strip() for m in reply.headers["Allow"].split(",")}
    assert {"GET", "PUT", "PATCH"} <= allowed and "DELETE" not in allowed
    assert set(body["data"]["allowed"]) == allowed
    assert_error(api.call("PUT", HOOK % (PARENT, "0" * 32), json={"data": {}}), 405)
    assert_error(api.call("POST", "/v2/webhooks", token=None), 405)


def test_request_id_from_the_client_is_kept(api):
    reply = api.call("GET", HOOKS % PARENT, headers={"X-Request-ID": "trace-42"})
    assert assert_success(reply)["request_id"] == "trace-42"


def test_cors_preflight_for_browser_clients(api):
    reply = api.call("OPTIONS", HOOKS % PARENT, token=None, headers={
        "Origin": "https://monster.example.com", "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "X-Auth-Token, Content-Type"})
    assert reply.status_code == 200
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert "PUT" in reply.headers["Access-Control-Allow-Methods"]
    assert "x-auth-token" in reply.headers["Access-Control-Allow-Headers"].lower()


# -- validation ---------------------------------------------------------------

def without(key):
    return {k: v for k, v in NEW_HOOK.items() if k != key}


VALIDATION_CASES = [
    ("missing uri", without("uri"), "uri", "required",
     {"message": "Field is required but missing"}),
    ("missing name", without("name"), "name", "required",
     {"message": "Field is required but missing"}),
    ("retries too high", {**NEW_HOOK, "retries": 99}, "retries", "maximum",
     {"message": "Value must be at most 10", "target": 10, "value": 99}),
    ("retries negative", {**NEW_HOOK, "retries": -1}, "retries", "minimum",
     {"message": "Value must be at least 0", "target": 0, "value": -1}),
    # "3" is coerced, as Kazoo's validator does; a non-numeric string is not
    ("retries a string", {**NEW_HOOK, "retries": "three"}, "retries", "type",
     {"message": "Value did not match type(s): integer", "target": "integer", "value": "three"}),
    ("unknown hook", {**NEW_HOOK, "hook": "channel_park"}, "hook", "enum", None),
    ("unknown verb", {**NEW_HOOK, "http_verb": "delete"}, "http_verb", "enum", None),
    ("ftp uri", {**NEW_HOOK, "uri": "ftp://127.0.0.1/x"}, "uri", "pattern", None),
    ("empty name", {**NEW_HOOK, "name": ""}, "name", "minLength",
     {"message": "String must be at least 1 characters", "target": 1, "value": ""}),
    ("typo in a key", {**NEW_HOOK, "retires": 3}, "retires", "additionalProperties",
     {"message": "Field is not allowed: did you mean 'retries'?"}),
    ("custom_data not strings", {**NEW_HOOK, "custom_data": {"n": 1}}, "custom_data.n",
     "type", {"message": "Value did not match type(s): string", "target": "string",
              "value": 1}),
    ("enabled not a boolean", {**NEW_HOOK, "enabled": "yes"}, "enabled", "type", None),
    ("another account in the body", {**NEW_HOOK, "account_id": OTHER}, "account_id",
     "immutable", None),
]


@pytest.mark.parametrize("case, data, field, kind, detail", VALIDATION_CASES,
                         ids=[c[0] for c in VALIDATION_CASES])
def test_each_validation_failure_is_reported_per_field_and_writes_nothing(
        api, case, data, field, kind, detail):
    before = api.path.read_bytes()
    body = assert_error(api.call("PUT", HOOKS % PARENT, json={"data": data}), 400,
                        "validation error")
    assert list(body["data"]) == [field] and list(body["data"][field]) == [kind]
    error = body["data"][field][kind]
    if detail is not None:
        assert error == detail
    assert error["message"]
    assert api.path.read_bytes() == before


def test_several_failures_are_all_reported(api):
    data = {"name": "", "hook": "nope", "retries": 11}
    body = assert_error(api.call("PUT", HOOKS % PARENT, json={"data": data}), 400)
    assert body["data"] == {
        "uri": {"required": {"message": "Field is required but missing"}},
        "name": {"minLength": {"message": "String must be at least 1 characters",
                               "target": 1, "value": ""}},
        "hook": {"enum": {"message": "Value not found in enumerated list of values",
                          "target": schema_validator("webhook").schema["properties"]
                          ["hook"]["then"]["enum"], "value": "nope"}},
        "retries": {"maximum": {"message": "Value must be at most 10", "target": 10,
                                "value": 11}}}


@pytest.mark.parametrize("uri", [
    "http://169.254.169.254/latest/meta-data/", "https://169.254.10.1:8443/x",
    "http://[fe80::1]/x", "http://[::ffff:169.254.169.254]/x",
    "http://2852039166/x",                       # 169.254.169.254 as one number
    "http://0xa9.0xfe.0xa9.0xfe/x",              # ... in hex
])
@pytest.mark.parametrize("token", ["parent", "admin"])
def test_hosts_in_blocked_networks_are_refused(api, uri, token):
    body = assert_error(api.call("PUT", HOOKS % PARENT, token=token,
                                 json={"data": {**NEW_HOOK, "uri": uri}}),
                        400, "validation error")
    error = body["data"]["uri"]["blocked_network"]
    assert "cannot be the target of a webhook" in error["message"] and error["value"] == uri
    assert api.file_hooks() == []


@pytest.mark.parametrize("uri, message", [
    ("http://127.0.0.1:9/a\x00b", "Value must not contain NUL"),
    ("http://crm.example.com\x00.evil/x", "Value must not contain NUL"),
    # CR, LF and spaces: the schema's pattern already said no
    ("http://crm.example.com/x\r\nX-Injected: 1", "Value must be an http:// or https:// URL"),
    ("http://crm.example.com/x\ny", "Value must be an http:// or https:// URL"),
    ("http://crm.example.com/x\x7f", "Value must not contain DEL"),
    ("http://crm.example.com:99999/x", "Value port must be 1..65535 (got 99999)"),
    ("http://crm.example.com:0/x", "Value port must be 1..65535 (got 0)"),
    ("http://:8080/x", "Value must name a host"),
    ("http://[v1.crm]/x", "Value a bracketed host must be an IPv6 address"),
])
@pytest.mark.parametrize("token", ["parent", "admin"])
def test_a_uri_with_a_nul_control_characters_a_bad_port_or_no_host_is_refused(
        api, uri, message, token):
    body = assert_error(api.call("PUT", HOOKS % PARENT, token=token,
                                 json={"data": {**NEW_HOOK, "uri": uri}}), 400,
                        "validation error")
    [(kind, detail)] = body["data"]["uri"].items()
    assert detail["message"].startswith(message), detail
    created = api.create()
    patched = api.call("PATCH", HOOK % (PARENT, created["id"]), token=token,
                       json={"data": {"uri": uri}})
    assert "uri" in assert_error(patched, 400)["data"]
    assert [h["uri"] for h in api.file_hooks()] == [NEW_HOOK["uri"]]


def test_blocked_networks_come_from_config(tmp_path):
    api = start_api(tmp_path, network=DeliveryConfig(blocked_networks=("10.0.0.0/8",)))
    try:
        for token in ("admin", "parent"):
            refused = api.call("PUT", HOOKS % PARENT, token=token,
                               json={"data": {**NEW_HOOK, "uri": "http://10.1.2.3/x"}})
            error = assert_error(refused, 400)["data"]["uri"]["blocked_network"]
            assert error["target"] == "10.0.0.0/8"
            assert "delivery.blocked_networks" in error["message"]
        api.create(token="admin", uri="http://169.254.169.254/now-allowed")
    finally:
        api.close()


def test_post_with_another_id_in_the_body_is_refused(api):
    created = api.create()
    reply = api.call("POST", HOOK % (PARENT, created["id"]),
                     json={"data": {**NEW_HOOK, "id": "f" * 32}})
    assert "immutable" in assert_error(reply, 400)["data"]["id"]
    # the same id and account, as Monster UI sends back what it read, are fine
    same = api.call("POST", HOOK % (PARENT, created["id"]), json={"data": created})
    assert assert_success(same)["data"] == created


def test_an_id_in_a_create_is_ignored(api):
    created = api.create(id="f" * 32)
    assert created["id"] != "f" * 32


BODY_CASES = [
    ("malformed JSON", b'{"data": {"name": ', "application/json", 400, "malformed JSON"),
    ("NaN is not JSON", b'{"data": {"retries": NaN}}', "application/json", 400,
     "malformed JSON"),
    ("not UTF-8", b'{"data": {"name": "\xff"}}', "application/json", 400, "malformed JSON"),
    ("no data", b'{"name": "x"}', "application/json", 400, "invalid request envelope"),
    ("data is a list", b'{"data": []}', "application/json", 400, "invalid request envelope"),
    ("body is a list", b'[1]', "application/json", 400, "invalid request envelope"),
    ("empty body", b'', "application/json", 400, "invalid request envelope"),
    ("xml", b'<data/>', "application/xml", 415, "unsupported media type"),
    ("text", json.dumps({"data": NEW_HOOK}).encode(), "text/plain", 415,
     "unsupported media type"),
    ("a form", b'name=x&uri=y', "application/x-www-form-urlencoded", 415,
     "unsupported media type"),
]


@pytest.mark.parametrize("case, raw, content_type, status, message", BODY_CASES,
                         ids=[c[0] for c in BODY_CASES])
def test_unreadable_bodies_get_a_clear_error_and_write_nothing(
        api, case, raw, content_type, status, message):
    before = api.path.read_bytes()
    reply = api.call("PUT", HOOKS % PARENT, data=raw, headers={"Content-Type": content_type})
    body = assert_error(reply, status, message)
    assert all(isinstance(v, dict) and v for v in body["data"].values())
    assert api.path.read_bytes() == before


def test_an_oversized_body_is_413_with_or_without_content_length(api):
    big = json.dumps({"data": {**NEW_HOOK, "name": "x" * 70_000}}).encode()
    before = api.path.read_bytes()
    reply = api.call("PUT", HOOKS % PARENT, data=big, headers={"Content-Type": "application/json"})
    body = assert_error(reply, 413, "request entity too large")
    assert body["data"]["body"]["maxLength"]["target"] == 65536
    chunked = api.call("PUT", HOOKS % PARENT, data=iter([big[:40_000], big[40_000:]]),
                       headers={"Content-Type": "application/json"})
    assert_error(chunked, 413)
    assert api.path.read_bytes() == before
    # the server is still fine afterwards
    assert_success(api.call("GET", HOOKS % PARENT))


# -- auth ---------------------------------------------------------------------

AUTH_MATRIX = [
    # token, account, expected status of GET .../accounts/{account}/webhooks
    (None, PARENT, 401), ("wrong-token", PARENT, 401), ("", PARENT, 401),
    ("parent", PARENT, 200), ("parent", CHILD, 200), ("parent", OTHER, 403),
    ("child", CHILD, 200), ("child", PARENT, 403), ("child", OTHER, 403),
    ("other", OTHER, 200), ("other", PARENT, 403), ("other", CHILD, 403),
    ("admin", PARENT, 200), ("admin", CHILD, 200), ("admin", OTHER, 200),
    ("admin", UNKNOWN, 404), ("parent", UNKNOWN, 403),
]


@pytest.mark.parametrize("token, account, status", AUTH_MATRIX)
def test_auth_matrix_for_listing(api, token, account, status):
    reply = api.call("GET", HOOKS % account, token=token)
    if status == 200:
        assert_success(reply, token=token)
    else:
        body = assert_error(reply, status)
        assert body["auth_token"] == (TOKENS[token] if status != 401 else "")


@pytest.mark.parametrize("token, status", [("parent", 201), ("child", 201), ("other", 403),
                                           ("admin", 201), (None, 401)])
def test_who_may_create_in_a_sub_account(api, token, status):
    reply = api.call("PUT", HOOKS % CHILD, token=token, json={"data": NEW_HOOK})
    assert reply.status_code == status, reply.text
    assert len(api.file_hooks()) == (1 if status == 201 else 0)


def test_every_hook_operation_checks_reach(api):
    hook = api.create(account=CHILD, token="child")
    path = HOOK % (CHILD, hook["id"])
    for method, data in (("GET", None), ("POST", NEW_HOOK), ("PATCH", {"retries": 1}),
                         ("DELETE", None)):
        kwargs = {"json": {"data": data}} if data else {}
        assert_error(api.call(method, path, token=None, **kwargs), 401)
        assert_error(api.call(method, path, token="other", **kwargs), 403)
        # within reach, but addressed under another account: not found there
        assert_error(api.call(method, HOOK % (PARENT, hook["id"]), **kwargs), 404)
    assert api.file_hooks()[0]["retries"] == 3
    assert_success(api.call("GET", path, token="parent"))    # the parent reaches down


def test_a_hook_cannot_be_moved_to_an_account_out_of_reach(api):
    hook = api.create(account=CHILD, token="child")
    for method in ("POST", "PATCH"):
        reply = api.call(method, HOOK % (CHILD, hook["id"]), token="child",
                         json={"data": {**NEW_HOOK, "account_id": PARENT}})
        assert "immutable" in assert_error(reply, 400)["data"]["account_id"]
    assert api.file_hooks()[0]["account_id"] == CHILD


def test_token_in_query_or_body_as_crossbar(api):
    reply = api.call("GET", HOOKS % PARENT + "?auth_token=" + TOKENS["parent"], token=None)
    assert_success(reply)
    reply = api.call("PUT", HOOKS % PARENT, token=None,
                     json={"data": NEW_HOOK, "auth_token": TOKENS["parent"]})
    assert_success(reply, 201)
    # a body token never reaches another account
    reply = api.call("PUT", HOOKS % OTHER, token=None,
                     json={"data": NEW_HOOK, "auth_token": TOKENS["parent"]})
    assert_error(reply, 403)
    # no token and an unreadable body: 401 first
    reply = api.call("PUT", HOOKS % PARENT, token=None, data=b"{oops",
                     headers={"Content-Type": "application/json"})
    assert_error(reply, 401)


# -- If-Match -----------------------------------------------------------------

def test_if_match_with_an_old_revision_is_409_and_changes_nothing(api):
    hook = api.create()
    old_revision = api.call("GET", HOOK % (PARENT, hook["id"])).json()["revision"]
    assert_success(api.call("PATCH", HOOK % (PARENT, hook["id"]), json={"data": {"retries": 4}},
                            headers={"If-Match": old_revision}))
    before = api.path.read_bytes()
    for method, kwargs in (("POST", {"json": {"data": NEW_HOOK}}),
                           ("PATCH", {"json": {"data": {"retries": 1}}}),
                           ("DELETE", {})):
        reply = api.call(method, HOOK % (PARENT, hook["id"]), headers={"If-Match": old_revision},
                         **kwargs)
        body = assert_error(reply, 409, "conflict")
        assert body["data"]["revision"]["conflict"]["value"] == old_revision
        assert api.path.read_bytes() == before
    current = api.call("GET", HOOK % (PARENT, hook["id"]))
    etag = current.headers["ETag"]                 # quoted, as an ETag
    assert_success(api.call("DELETE", HOOK % (PARENT, hook["id"]), headers={"If-Match": etag}))
    assert api.file_hooks() == []


def test_if_match_star_matches_any_existing_hook(api):
    hook = api.create()
    reply = api.call("PATCH", HOOK % (PARENT, hook["id"]), json={"data": {"retries": 0}},
                     headers={"If-Match": "*"})
    assert assert_success(reply)["data"]["retries"] == 0


# -- OpenAPI ------------------------------------------------------------------

def _resolve(document: dict, item: dict) -> dict:
    ref = item.get("$ref")
    if ref is None:
        return item
    node = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_openapi_document_lists_exactly_the_routes_that_exist(api):
    document = assert_openapi(api.call("GET", "/openapi.json", token=None))
    documented = {(path, method.upper())
                  for path, item in document["paths"].items()
                  for method in _resolve(document, item)
                  if method in ("get", "put", "post", "patch", "delete")}
    app = create_app(api_context(api))
    served = {(route.path, m.method) for route in falcon.inspect.inspect_routes(app)
              for m in route.methods if not m.internal}
    assert documented == served


def assert_openapi(reply) -> dict:
    assert reply.status_code == 200
    document = reply.json()
    assert document["openapi"].startswith("3.")
    webhook = dict(schema_validator("webhook").schema)
    del webhook["$schema"], webhook["$id"]
    assert document["components"]["schemas"]["Webhook"] == webhook
    return document


def api_context(api):
    from eslhook.api import ApiContext
    return ApiContext(api.store, api.store.accounts)


def test_openapi_operations_are_reachable_with_their_documented_statuses(api):
    document = api.call("GET", "/openapi.json", token=None).json()
    item = _resolve(document, document["paths"]["/v1/accounts/{account_id}/webhooks"])
    assert set(item["put"]["responses"]) >= {"201", "400", "401", "403", "404", "413", "415"}
    reply = api.call("PUT", "/v1/accounts/%s/webhooks" % PARENT, json={"data": NEW_HOOK})
    assert str(reply.status_code) in item["put"]["responses"]


def test_responses_are_json_even_for_a_server_side_surprise(api):
    # a bad Content-Length is falcon's own error: still in the envelope
    reply = requests.put(api.url + HOOKS % PARENT, timeout=5, data=b"{}",
                         headers={"X-Auth-Token": TOKENS["parent"], "Content-Length": "x"})
    assert reply.status_code == 400 and reply.json()["status"] == "error"
