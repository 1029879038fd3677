"""What a hook carries to reach its receiver, at a real HTTP(S) receiver on 127.0.0.1:
custom_request_headers, a user:pass@ uri as Basic auth, timeout_seconds, the hook's
TLS CA and client certificate (mTLS), and the API's write-only handling of them."""

from __future__ import annotations

import base64
import dataclasses
import subprocess

import pytest
import yaml

from eslhook.config import ConfigError, DeliveryConfig
from eslhook.delivery.http import HttpSender
from eslhook.delivery.request import build_request
from eslhook.hooks.model import MASK, Hook
from eslhook.hooks.yaml_file import parse_hooks_text
from eslhook.accounts import AccountDirectory
from eslhook.config import AccountConfig
from helpers import ACCOUNT, make_hook, self_signed_certificate
from receiver import Receiver, Reply
from test_api_support import PARENT, assert_error, assert_success, start_api

# loopback opened to tenants too: the API tests' hooks are an account token's
FAST = DeliveryConfig(timeout_seconds=2.0, connect_timeout_seconds=1.0, max_in_flight=4,
                      buffer_size=100, retry_schedule_seconds=(0.05,),
                      tenant_allowed_networks=("127.0.0.0/8",))
PAYLOAD = {"hook_event": "channel_create", "call_id": "c-1", "account_id": ACCOUNT}
HOOKS = "/v2/accounts/%s/webhooks" % PARENT
HOOK = HOOKS + "/%s"


def delivered(queues, hook: Hook, receiver: Receiver):
    queue = queues(FAST)
    assert queue.submit(hook, PAYLOAD)
    assert queue.wait_idle(10), queue.stats
    (request,) = receiver.wait_for(1, timeout=5)
    return queue, request


# -- headers and Basic auth at the receiver ----------------------------------------

def test_custom_headers_arrive_after_eslhooks_own(receiver, queues):
    hook = make_hook(receiver.url("/in"), format="json", custom_request_headers={
        "Authorization": "Bearer tok-123", "X-Api-Key": "k 1"}, secret="whsec_" + "A" * 32)
    _, got = delivered(queues, hook, receiver)
    assert got.header("Authorization") == "Bearer tok-123"
    assert got.header("X-Api-Key") == "k 1"
    assert got.header("X-Hook-ID") == hook.id and got.header("webhook-signature")
    assert got.header("Content-Type") == "application/json" and got.json["call_id"] == "c-1"


def test_a_userinfo_uri_is_sent_as_basic_auth_and_never_in_the_request_line(receiver, queues):
    uri = receiver.url("/in?x=1").replace("://", "://us%40er:p%3Aa%20ss@")
    queue, got = delivered(queues, make_hook(uri), receiver)
    assert got.header("Authorization") == "Basic " + base64.b64encode(
        b"us@er:p:a ss").decode()
    assert (got.path, got.query_string) == ("/in", "x=1")
    assert got.header("Host") == "127.0.0.1:%d" % receiver.port
    (attempt,) = queue.attempts(ACCOUNT).attempts
    assert attempt["uri"] == uri.replace("p%3Aa%20ss", MASK)    # the attempt log: masked
    assert "p%3Aa" not in repr(make_hook(uri))


def test_a_get_hook_carries_its_headers_too(receiver, queues):
    hook = make_hook(receiver.url("/g").replace("://", "://u:pw@"), http_verb="get",
                     custom_request_headers={"X-Tenant": "t1"})
    _, got = delivered(queues, hook, receiver)
    assert got.header("X-Tenant") == "t1"
    assert got.header("Authorization") == "Basic " + base64.b64encode(b"u:pw").decode()
    assert got.query["call_id"] == ["c-1"]


@pytest.mark.parametrize("headers, problem", [
    ({"Host": "evil"}, "eslhook sets it itself"),
    ({"content-length": "0"}, "eslhook sets it itself"),
    ({"Webhook-Signature": "v1,x"}, "eslhook sets it itself"),
    ({"X-A": "1\r\nX-B: 2"}, "printable ASCII"),
    ({"X-A": "nul\x00"}, "printable ASCII"),
    ({"Bad Name": "1"}, "HTTP header name"),    # the schema's words, as in hooks.yaml
    ({"X-A": "1", "x-a": "2"}, "named twice"),
])
def test_headers_that_could_break_the_request_are_refused(headers, problem):
    with pytest.raises(ValueError, match=problem):
        make_hook(custom_request_headers=headers)


def test_userinfo_and_an_authorization_header_together_are_refused():
    with pytest.raises(ValueError, match="give one"):
        make_hook("http://u:p@127.0.0.1:9/", custom_request_headers={"authorization": "x"})


def test_hooks_yaml_reports_a_reserved_header_as_a_config_error():
    text = yaml.safe_dump({"webhooks": [{
        "id": "0" * 32, "account_id": ACCOUNT, "name": "n", "uri": "http://h/",
        "hook": "all", "custom_request_headers": {"Host": "x"}}]})
    accounts = AccountDirectory((AccountConfig(id=ACCOUNT, name="A"),))
    with pytest.raises(ConfigError) as error:
        parse_hooks_text(text, accounts, "hooks.yaml")
    assert [i.path for i in error.value.issues] == ["webhooks[0].custom_request_headers"]
    assert "eslhook sets it itself" in error.value.issues[0].message


# -- timeout_seconds -----------------------------------------------------------------

def test_a_hooks_timeout_replaces_the_configs_for_its_attempts(receiver):
    receiver.default_reply = Reply(200, delay=1.3)
    sender = HttpSender(dataclasses.replace(FAST, timeout_seconds=0.5))
    try:
        patient = sender.send(build_request(make_hook(receiver.url("/"), timeout_seconds=5),
                                            PAYLOAD, user_agent="t"))
        default = sender.send(build_request(make_hook(receiver.url("/")), PAYLOAD,
                                            user_agent="t"))
    finally:
        sender.close()
    assert (patient.status, patient.reason) == (200, "success")
    assert (default.status, default.reason) == (None, "timeout")
    assert 0.4 < default.duration_seconds < 1.2


@pytest.mark.parametrize("value", [0, 0.5, 61, "5", True])
def test_timeout_seconds_is_bounded(value):
    with pytest.raises(ValueError, match="timeout_seconds"):
        make_hook(timeout_seconds=value)


# -- TLS: the hook's CA and client certificate (mTLS) ------------------------------------

@pytest.fixture
def mtls(tmp_path):
    """An https receiver on 127.0.0.1 that requires a client certificate signed by
    ``client`` (self-signed here), and that certificate's files."""
    (tmp_path / "server").mkdir()
    (tmp_path / "client").mkdir()
    server_cert, server_key = self_signed_certificate(tmp_path / "server", "127.0.0.1",
                                                      "IP:127.0.0.1")
    client_cert, client_key = self_signed_certificate(tmp_path / "client", "client",
                                                      "DNS:client")
    receiver = Receiver(certfile=server_cert, keyfile=server_key, client_ca=client_cert)
    try:
        yield receiver, server_cert, client_cert, client_key
    finally:
        receiver.stop()


def test_a_receiver_requiring_a_client_certificate_gets_the_hooks(mtls):
    receiver, server_cert, client_cert, client_key = mtls
    url = receiver.url("/m")
    with_cert = make_hook(url, tls_ca_file=server_cert, tls_client_cert_file=client_cert,
                          tls_client_key_file=client_key)
    ca_only = dataclasses.replace(with_cert, id="1" * 32, tls_client_cert_file=None,
                                  tls_client_key_file=None)
    sender = HttpSender(FAST)
    try:
        first = sender.send(build_request(with_cert, PAYLOAD, user_agent="t"))
        # the kept-alive connection presented with_cert's certificate: never reused here
        other = sender.send(build_request(ca_only, PAYLOAD, user_agent="t"))
        again = sender.send(build_request(with_cert, PAYLOAD, user_agent="t"))
        untrusted = HttpSender(FAST).send(build_request(
            dataclasses.replace(with_cert, tls_ca_file=None), PAYLOAD, user_agent="t"))
    finally:
        sender.close()
    assert (first.status, again.status) == (200, 200)
    assert (other.status, other.reason) == (None, "connection error"), other
    assert (untrusted.status, untrusted.reason) == (None, "connection error")
    assert [r.header("X-Hook-ID") for r in receiver.requests] == [with_cert.id] * 2


def test_missing_tls_files_are_an_invalid_request_not_a_crash(tmp_path, mtls):
    receiver = mtls[0]
    hook = make_hook(receiver.url("/"), tls_ca_file=str(tmp_path / "nope.pem"))
    sender = HttpSender(FAST)
    try:
        outcome = sender.send(build_request(hook, PAYLOAD, user_agent="t"))
    finally:
        sender.close()
    assert (outcome.status, outcome.reason) == (None, "invalid request")
    assert "TLS files" in outcome.error and receiver.requests == []


# -- the API: write-only values, who may set TLS paths ------------------------------

@pytest.fixture
def api(tmp_path):
    api = start_api(tmp_path)
    yield api
    api.close()


def test_the_api_never_shows_header_values_or_the_password(api, receiver, queues):
    uri = receiver.url("/a").replace("://", "://bob:s3cret@")
    created = assert_success(api.call("PUT", HOOKS, json={"data": {
        "name": "gw", "uri": uri, "hook": "channel_create",
        "custom_request_headers": {"X-Api-Key": "key-9"}}}), 201)["data"]
    assert created["uri"] == uri.replace("s3cret", MASK)
    assert created["custom_request_headers"] == {"X-Api-Key": MASK}
    for reply in (api.call("GET", HOOK % created["id"]), api.call("GET", HOOKS)):
        assert "s3cret" not in reply.text and "key-9" not in reply.text
    # Monster UI's way: GET, edit one field, send the whole thing back with the masks
    edited = dict(assert_success(api.call("GET", HOOK % created["id"]))["data"], name="gw2")
    assert_success(api.call("POST", HOOK % created["id"], json={"data": edited}))
    assert_success(api.call("PATCH", HOOK % created["id"], json={"data": {
        "custom_request_headers": {"X-Api-Key": MASK, "X-New": "n"}}}))
    (stored,) = api.store.hooks
    assert (stored.name, stored.uri) == ("gw2", uri)
    _, got = delivered(queues, stored, receiver)
    assert got.header("Authorization") == "Basic " + base64.b64encode(b"bob:s3cret").decode()
    assert (got.header("X-Api-Key"), got.header("X-New")) == ("key-9", "n")


def test_a_mask_with_nothing_stored_behind_it_is_refused(api):
    body = assert_error(api.call("PUT", HOOKS, json={"data": {
        "name": "n", "uri": "http://u:%s@127.0.0.1:9/" % MASK, "hook": "all"}}), 400)
    assert "masked" in body["data"]["uri"]
    hook = api.create(custom_request_headers={"X-A": "1"})
    body = assert_error(api.call("PATCH", HOOK % hook["id"], json={"data": {
        "custom_request_headers": {"X-B": MASK}}}), 400)
    assert "masked" in body["data"]["custom_request_headers"]


def test_api_errors_never_echo_a_header_value_or_password(api):
    reply = api.call("PUT", HOOKS, json={"data": {
        "name": "n", "uri": "http://u:hunter2@127.0.0.1:99999/", "hook": "all",
        "custom_request_headers": {"X-A": "bad\nvalue-xyz", "Host": "h"}}})
    body = assert_error(reply, 400)
    assert "hunter2" not in reply.text and "value-xyz" not in reply.text
    assert "custom_request_headers.X-A" in body["data"] and "uri" in body["data"]
    reply = api.call("PUT", HOOKS, json={"data": {
        "name": "n", "uri": "http://u:p@127.0.0.1:9/", "hook": "all",
        "custom_request_headers": {"Authorization": "Bearer zzz"}}})
    assert "give one" in str(assert_error(reply, 400)["data"]) and "zzz" not in reply.text


def test_only_an_admin_token_sets_tls_file_paths(api):
    tls = {"tls_ca_file": "/etc/passwd"}
    body = assert_error(api.call("PUT", HOOKS, json={"data": {
        "name": "n", "uri": "https://127.0.0.1:9/", "hook": "all", **tls}}), 403)
    assert "admin" in body["data"]["tls_ca_file"]["forbidden"]["message"]
    hook = assert_success(api.call("PUT", HOOKS, token="admin", json={"data": {
        "name": "n", "uri": "https://127.0.0.1:9/", "hook": "all", **tls}}), 201,
        token="admin")["data"]
    assert hook["tls_ca_file"] == "/etc/passwd"
    assert_error(api.call("PATCH", HOOK % hook["id"], json={"data": {
        "tls_client_cert_file": "/root/key.pem"}}), 403)
    assert_error(api.call("PATCH", HOOK % hook["id"], json={"data": {"tls_ca_file": None}}),
                 403)
    # the tenant may edit the rest, and send the paths back unchanged
    assert_success(api.call("PATCH", HOOK % hook["id"], json={"data": {"name": "m"}}))
    view = assert_success(api.call("GET", HOOK % hook["id"]))["data"]
    assert_success(api.call("POST", HOOK % hook["id"], json={"data": view}))
    assert_success(api.call("POST", HOOK % hook["id"], json={"data": {
        "name": "x", "uri": "https://127.0.0.1:9/", "hook": "all"}}))
    (stored,) = api.store.hooks
    assert (stored.name, stored.tls_ca_file) == ("x", "/etc/passwd")   # kept when not named


# -- hook: a list of events --------------------------------------------------------------

def test_a_hook_listing_several_events_round_trips_through_the_api_and_the_file(api):
    hook = api.create(hook=["channel_create", "channel_destroy"], timeout_seconds=3)
    assert hook["hook"] == ["channel_create", "channel_destroy"]
    single = api.create(hook="channel_answer")
    listing = assert_success(api.call("GET", HOOKS))["data"]
    assert [h["hook"] for h in listing] == [["channel_create", "channel_destroy"],
                                           "channel_answer"]
    assert [h["hook"] for h in api.file_hooks()] == [["channel_create", "channel_destroy"],
                                                    "channel_answer"]
    assert_success(api.call("PATCH", HOOK % single["id"], json={"data": {
        "hook": ["channel_answer", "webhook_disabled"]}}))
    assert api.file_hooks()[1]["hook"] == ["channel_answer", "webhook_disabled"]
    assert api.store.hooks[0].events == ("channel_create", "channel_destroy")
    assert api.file_hooks()[0]["timeout_seconds"] == 3


@pytest.mark.parametrize("value", [[], ["all"], ["channel_create", "channel_create"],
                                   ["nope"], [1]])
def test_a_bad_event_list_is_a_400(api, value):
    body = assert_error(api.call("PUT", HOOKS, json={"data": {
        "name": "n", "uri": "http://127.0.0.1:9/", "hook": value}}), 400)
    assert any(key.startswith("hook") for key in body["data"]), body


def test_openssl_is_available_for_the_tls_tests():
    # the mTLS tests skip without openssl: make that visible where it is installed
    assert subprocess.run(["openssl", "version"], capture_output=True).returncode == 0


def test_the_index_matches_each_listed_event_and_no_other():
    from eslhook.hooks.index import HookIndex
    accounts = AccountDirectory((AccountConfig(id=ACCOUNT, name="A"),))
    hook = make_hook(hook=["channel_create", "channel_destroy"])
    index = HookIndex([hook], accounts)
    matched = {event: index.match({"account_id": ACCOUNT, "hook_event": event})
               for event in ("channel_create", "channel_answer", "channel_destroy")}
    assert matched == {"channel_create": (hook,), "channel_answer": (),
                       "channel_destroy": (hook,)}


def test_hooks_yaml_errors_never_quote_a_uri_password():
    text = yaml.safe_dump({"webhooks": [{
        "id": "0" * 32, "account_id": ACCOUNT, "name": "n", "hook": "all",
        "uri": "ftp://u:hunter2@h/"}]})
    accounts = AccountDirectory((AccountConfig(id=ACCOUNT, name="A"),))
    with pytest.raises(ConfigError) as error:
        parse_hooks_text(text, accounts, "hooks.yaml")
    assert [i.path for i in error.value.issues] == ["webhooks[0].uri"]
    assert "hunter2" not in str(error.value)
