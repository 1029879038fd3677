"""Where a hook can make eslhook connect (issue items 7 and 8), over real sockets.

The checked address is the one connected to, after resolution, at every new
connection; tenant hooks (written with an account token) reach no internal
address; operator hooks (hooks.yaml, admin token) everything but
``delivery.blocked_networks``.  ``localhost`` is the one real name resolved
here; other names go to a resolver the test injects (real DNS cannot run in
tests), which only answers what the test says.
"""

from __future__ import annotations

import socket
import uuid

import pytest
import yaml

from receiver import Receiver
from test_api_support import (NEW_HOOK, PARENT, TOKENS, assert_error, assert_success,
                              start_api)
from test_api_delivery import ACCOUNTS, API, Client
from world import World

import helpers
from eslhook.config import ConfigError, DeliveryConfig, load_config
from eslhook.delivery.http import HttpSender
from eslhook.delivery.policy import REFUSED
from eslhook.delivery.request import HttpRequest
from eslhook.hooks.model import Hook
from eslhook.netpolicy import OPERATOR, TENANT

HOOKS = "/v2/accounts/%s/webhooks"
HOOK = "/v2/accounts/%s/webhooks/%s"
FAST = DeliveryConfig(timeout_seconds=2.0, connect_timeout_seconds=1.0, max_in_flight=8,
                      buffer_size=100, retry_schedule_seconds=(0.05,))


def numeric_only(host, port, family=0, type=0, proto=0, flags=0):
    """A resolver that knows no names: numeric hosts only (getaddrinfo never asks DNS
    for those), so a spelling that is not read as an address fails to connect
    instead of being refused."""
    return socket.getaddrinfo(host, port, family, type, proto, socket.AI_NUMERICHOST)


class Dns:
    """An injected resolver: ``answers[name]`` is a list of answer lists, one used
    per lookup (the last one repeats)."""

    def __init__(self, answers: dict[str, list[list[str]]]):
        self.answers = {name: list(a) for name, a in answers.items()}

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        answers = self.answers.get(host)
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, "no such name in this test")
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        out = []
        for address in addresses:
            family_ = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, port, 0, 0) if family_ == socket.AF_INET6 else (address, port)
            out.append((family_, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return out


def post(sender: HttpSender, url: str, policy: str = TENANT, body: bytes = b"a=1"):
    return sender.send(HttpRequest("POST", url, {}, body, network_policy=policy))


# -- end to end: the API, the bridge, the attempt log ---------------------------------

@pytest.fixture
def bridge_world(tmp_path):
    """A running bridge with the API and the default network policy (nothing opened to
    tenants); ``(world, client)``."""
    world = World(tmp_path, accounts=ACCOUNTS, extra={"api": API, "delivery": {
        "timeout_seconds": 2, "retry_schedule_seconds": [0.05], "jitter": 0.0}})
    world.start()
    client = Client(world)
    yield world, client
    client.session.close()
    world.close()


def localhost_url(receiver, path: str) -> str:
    return "http://localhost:%d%s" % (receiver.port, path)


def attempts(client, hook_id: str, token: str = "parent") -> list[dict]:
    return assert_success(client("GET", HOOK % (PARENT, hook_id) + "/attempts", token),
                          token=token)["data"]


def test_a_tenant_hook_to_a_name_resolving_to_loopback_is_refused_when_connecting(
        bridge_world):
    world, client = bridge_world
    created = assert_success(client("PUT", HOOKS % PARENT, json={"data": {
        "name": "sneaky", "uri": localhost_url(world.receiver, "/internal"),
        "hook": "channel_create", "format": "json", "retries": 3}}), 201)["data"]
    world.call(str(uuid.uuid4()), "CHANNEL_CREATE", account_id=PARENT)
    assert helpers.wait_until(lambda: attempts(client, created["id"]), timeout=5)
    assert world.bridge.delivery.wait_idle(5)
    assert world.receiver.requests == []                     # nothing reached the port
    [attempt] = attempts(client, created["id"])              # and no retry, with 3 left
    assert (attempt["result"], attempt["reason"], attempt["response_code"],
            attempt["retries_left"]) == ("failure", REFUSED, None, 0)
    assert attempt["response_body"].startswith(
        "eslhook sent nothing: localhost resolved to an address that is in 127.0.0.0/8, "
        "loopback, which a hook written with an account token may not reach")


def test_the_same_hook_written_with_an_admin_token_is_delivered(bridge_world):
    world, client = bridge_world
    created = assert_success(client("PUT", HOOKS % PARENT, json={"data": {
        "name": "crm", "uri": localhost_url(world.receiver, "/crm"),
        "hook": "channel_create", "format": "json"}}), 201)["data"]
    # an admin renaming it does not vouch for its uri: still refused
    assert_success(client("PATCH", HOOK % (PARENT, created["id"]), "admin",
                          json={"data": {"name": "renamed"}}), token="admin")
    world.call(str(uuid.uuid4()), "CHANNEL_CREATE", account_id=PARENT)
    assert helpers.wait_until(lambda: attempts(client, created["id"]), timeout=5)
    assert world.receiver.requests == []
    # written again with the admin token, uri and all: the operator's policy applies
    assert_success(client("POST", HOOK % (PARENT, created["id"]), "admin", json={"data": {
        "name": "crm", "uri": localhost_url(world.receiver, "/crm"),
        "hook": "channel_create", "format": "json"}}), token="admin")
    world.call(str(uuid.uuid4()), "CHANNEL_CREATE", account_id=PARENT)
    [request] = world.receiver.wait_for(1, timeout=5)
    assert request.path == "/crm" and request.json["hook_event"] == "channel_create"
    assert request.header("Host") == "localhost:%d" % world.receiver.port


def test_who_wrote_a_hook_survives_in_hooks_yaml_and_decides_its_policy(tmp_path, receiver):
    world = World(tmp_path, accounts=ACCOUNTS, extra={"delivery": {
        "timeout_seconds": 2, "retry_schedule_seconds": [0.05]}})
    operator = world.hook(PARENT, "/hand-written", hook="channel_create",
                          uri=localhost_url(world.receiver, "/hand-written"))
    tenant = world.hook(PARENT, "/tenant", hook="channel_create", written_by="account",
                        uri=localhost_url(world.receiver, "/tenant"), retries=0)
    world.write_hooks([operator, tenant])
    try:
        world.start()
        world.call(str(uuid.uuid4()), "CHANNEL_CREATE", account_id=PARENT)
        world.receiver.wait_for(1, timeout=5)
        assert world.bridge.delivery.wait_idle(5)
        assert [r.path for r in world.receiver.requests] == ["/hand-written"]
        assert world.bridge.delivery.stats.given_up == 1      # the tenant's: refused, final
    finally:
        world.close()


# -- the API records the writer; a client cannot set it ---------------------------------

@pytest.fixture
def strict_api(tmp_path):
    """The API with the default policy: nothing opened to tenants."""
    api = start_api(tmp_path, network=DeliveryConfig())
    yield api
    api.close()


def test_a_tenant_cannot_set_who_wrote_a_hook(strict_api):
    api = strict_api
    for value in ("operator", None, "account"):
        refused = api.call("PUT", HOOKS % PARENT, json={"data": {
            **NEW_HOOK, "uri": "https://crm.example.com/x", "written_by": value}})
        assert "written_by" in assert_error(refused, 400, "validation error")["data"]
    created = api.create(uri="https://crm.example.com/x")
    assert "written_by" not in created
    assert api.file_hooks()[0]["written_by"] == "account"
    patched = api.call("PATCH", HOOK % (PARENT, created["id"]),
                       json={"data": {"written_by": "operator"}})
    assert "written_by" in assert_error(patched, 400)["data"]
    assert api.file_hooks()[0]["written_by"] == "account"
    shown = assert_success(api.call("GET", HOOK % (PARENT, created["id"])))["data"]
    assert "written_by" not in shown
    # an admin writing the uri makes it the operator's: nothing recorded
    assert_success(api.call("POST", HOOK % (PARENT, created["id"]), token="admin",
                            json={"data": {**NEW_HOOK, "uri": "https://crm.example.com/x"}}),
                   token="admin")
    assert "written_by" not in api.file_hooks()[0]


TENANT_REFUSED_LITERALS = [
    # the issue's three, then the other ways to spell an internal address
    "[64:ff9b::a9fe:a9fe]", "[::a9fe:a9fe]", "169.254.169.254.",
    "2852039166", "0251.0376.0251.0376", "0xa9fea9fe", "0xa9.0xfe.0xa9.0xfe", "169.254.43518",
    "[::ffff:169.254.169.254]", "[::ffff:a9fe:a9fe]", "[::ffff:0:a9fe:a9fe]",
    "[64:ff9b:1::a9fe:a9fe]", "[2002:a9fe:a9fe::1]", "[fe80::1%25lo]",
    "127.0.0.1", "127.1", "2130706433", "0x7f000001", "017700000001", "127.0.0.1.",
    "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[64:ff9b::7f00:1]",
    "0.0.0.0", "0", "[::]", "10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1",
    "[fd00::1]", "224.0.0.1", "[ff02::1]", "255.255.255.255", "240.0.0.1", "198.18.0.1",
    "192.0.2.1", "[2001:db8::1]", "[2001:0:4136:e378:8000:63bf:3f57:fdf2]",
]
METADATA_SPELLINGS = TENANT_REFUSED_LITERALS[:14]


@pytest.mark.parametrize("host", TENANT_REFUSED_LITERALS)
def test_internal_address_spellings_are_refused_when_a_tenant_saves_a_hook(strict_api, host):
    uri = "http://%s:8080/x" % host
    body = assert_error(strict_api.call("PUT", HOOKS % PARENT,
                                        json={"data": {**NEW_HOOK, "uri": uri}}), 400)
    error = body["data"]["uri"]["blocked_network"]
    assert error["value"] == uri and error["target"]
    assert error["message"].startswith("the uri's host ")
    assert "cannot be the target of a webhook" in error["message"]
    assert strict_api.file_hooks() == []


@pytest.mark.parametrize("host", METADATA_SPELLINGS)
def test_metadata_address_spellings_are_refused_for_admin_hooks_too(strict_api, host):
    body = assert_error(strict_api.call("PUT", HOOKS % PARENT, token="admin", json={
        "data": {**NEW_HOOK, "uri": "http://%s/latest/meta-data/" % host}}), 400)
    assert "blocked_network" in body["data"]["uri"]


@pytest.mark.parametrize("host", TENANT_REFUSED_LITERALS)
def test_internal_address_spellings_are_refused_when_connecting(host, receiver):
    # hooks.yaml or a hand edit can hold any uri: the connect-time check is the one
    # that counts.  A spelling misread as a name would fail with "connection error".
    sender = HttpSender(FAST, resolver=numeric_only)
    try:
        outcome = post(sender, "http://%s:%d/x" % (host, receiver.port))
    finally:
        sender.close()
    assert (outcome.status, outcome.reason) == (None, REFUSED), outcome
    assert outcome.body_excerpt.startswith(b"eslhook sent nothing: ")
    assert receiver.requests == []


@pytest.mark.parametrize("host", METADATA_SPELLINGS)
def test_metadata_address_spellings_are_refused_when_an_operator_hook_connects(host):
    sender = HttpSender(FAST, resolver=numeric_only)
    try:
        outcome = post(sender, "http://%s/latest/meta-data/" % host, OPERATOR)
    finally:
        sender.close()
    assert (outcome.status, outcome.reason) == (None, REFUSED), outcome


# -- resolution at every connection -----------------------------------------------------

def test_dns_rebinding_to_loopback_after_saving_is_refused(strict_api, receiver):
    # saved while the name looked public (names are not resolved when saved) ...
    api = strict_api
    created = api.create(uri="http://rebind.test:%d/x" % receiver.port)
    hook = Hook.from_dict(api.file_hooks()[0])
    assert hook.id == created["id"] and hook.written_by == "account"
    # ... and at the attempt it answers loopback
    dns = Dns({"rebind.test": [["127.0.0.1"]]})
    sender = HttpSender(FAST, resolver=dns)
    try:
        outcome = post(sender, hook.uri, hook.network_policy)
    finally:
        sender.close()
    assert (outcome.status, outcome.reason) == (None, REFUSED)
    assert b"rebind.test resolved to an address that is in 127.0.0.0/8, loopback" \
        in outcome.body_excerpt
    assert receiver.requests == []


def test_the_checked_address_is_the_one_connected_to(receiver):
    # 127.0.0.2 stands for a public address here (opened to tenants); nothing listens
    # there.  The name answers it once, then the receiver's 127.0.0.1: were the name
    # resolved a second time to connect, the request would reach the receiver.
    config = DeliveryConfig(timeout_seconds=2.0, connect_timeout_seconds=1.0,
                            tenant_allowed_networks=("127.0.0.2/32",))
    dns = Dns({"flip.test": [["127.0.0.2"], ["127.0.0.1"]]})
    sender = HttpSender(config, resolver=dns)
    try:
        first = post(sender, "http://flip.test:%d/x" % receiver.port)
        second = post(sender, "http://flip.test:%d/x" % receiver.port)
    finally:
        sender.close()
    assert (first.status, first.reason) == (None, "connection refused")
    assert (second.status, second.reason) == (None, REFUSED)
    assert receiver.requests == []


def test_a_name_with_one_internal_answer_among_public_ones_is_refused(receiver):
    config = DeliveryConfig(timeout_seconds=2.0, tenant_allowed_networks=("127.0.0.2/32",))
    sender = HttpSender(config, resolver=Dns({"mixed.test": [["127.0.0.2", "127.0.0.1"]]}))
    try:
        outcome = post(sender, "http://mixed.test:%d/x" % receiver.port)
    finally:
        sender.close()
    assert (outcome.status, outcome.reason) == (None, REFUSED)
    assert receiver.requests == []


def test_a_tenant_request_never_reuses_an_operator_hooks_connection(receiver):
    sender = HttpSender(FAST)
    try:
        delivered = post(sender, receiver.url("/operator"), OPERATOR)   # kept alive
        refused = post(sender, receiver.url("/tenant"), TENANT)
        again = post(sender, receiver.url("/operator"), OPERATOR)
    finally:
        sender.close()
    assert (delivered.status, refused.reason, again.status) == (200, REFUSED, 200)
    assert [r.path for r in receiver.requests] == ["/operator", "/operator"]


@pytest.fixture
def localhost_certificate(tmp_path):
    return helpers.self_signed_certificate(tmp_path, "localhost", "DNS:localhost")


def test_https_to_a_checked_address_verifies_the_certificate_for_the_name(
        localhost_certificate):
    cert, key = localhost_certificate
    server = Receiver(certfile=cert, keyfile=key)
    config = DeliveryConfig(timeout_seconds=5.0, tenant_allowed_networks=("127.0.0.0/8",))
    sender = HttpSender(config, ca_file=cert)
    try:
        by_name = post(sender, "https://localhost:%d/tls" % server.port, TENANT)
        by_address = post(sender, "https://127.0.0.1:%d/tls" % server.port, TENANT)
    finally:
        sender.close()
        server.stop()
    assert (by_name.status, by_name.reason) == (200, "success")
    assert [r.header("Host") for r in server.requests] == ["localhost:%d" % server.port]
    assert by_address.reason == "connection error" and "tls" in by_address.error


def test_refused_tenant_attempts_do_not_open_the_circuit_for_operator_hooks(receiver, queues):
    config = DeliveryConfig(timeout_seconds=2.0, connect_timeout_seconds=1.0,
                            retry_schedule_seconds=(0.05,), circuit_failures=2,
                            circuit_open_seconds=60.0)
    queue = queues(config)
    url = localhost_url(receiver, "/shared-host")
    base = dict(account_id=PARENT, name="n", hook="all", format="json", retries=0, uri=url)
    tenant = Hook(id=uuid.uuid4().hex, written_by="account", **base)
    operator = Hook(id=uuid.uuid4().hex, **base)
    for n in range(4):
        assert queue.submit(tenant, {"hook_event": "channel_create", "call_id": "t%d" % n,
                                     "event_id": "e%d" % n})
    assert queue.wait_idle(5)
    assert queue.submit(operator, {"hook_event": "channel_create", "call_id": "o",
                                   "event_id": "o"})
    [request] = receiver.wait_for(1, timeout=5)     # not parked for the 60 s circuit
    assert request.json["call_id"] == "o"


# -- item 8: uris that cannot be sent ---------------------------------------------------

def test_a_hooks_yaml_uri_with_a_nul_or_a_port_out_of_range_is_reported(tmp_path):
    from eslhook.accounts import AccountDirectory
    from eslhook.config import AccountConfig, load_hooks
    path = tmp_path / "hooks.yaml"
    hooks = [{"id": uuid.uuid4().hex, "account_id": PARENT, "name": "n", "hook": "all",
              "uri": uri} for uri in ("http://a\0b/", "http://x:99999/", "http://x:0/")]
    path.write_text(yaml.safe_dump({"webhooks": hooks}))
    with pytest.raises(ConfigError) as raised:
        load_hooks(path, AccountDirectory([AccountConfig(id=PARENT)]))
    issues = {i.path: i.message for i in raised.value.issues}
    assert issues == {"webhooks[0].uri": "must not contain NUL (at character 9)",
                      "webhooks[1].uri": "port must be 1..65535 (got 99999)",
                      "webhooks[2].uri": "port must be 1..65535 (got 0)"}


# -- config -----------------------------------------------------------------------------

MINIMAL = "switches: [{name: fs1}]\n"


def test_api_blocked_networks_is_still_read_as_delivery_blocked_networks(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(MINIMAL + "api: {listen: '127.0.0.1:0', blocked_networks: [10.0.0.0/8]}\n")
    assert load_config(path).delivery.blocked_networks == ("10.0.0.0/8",)
    path.write_text(MINIMAL + "api: {listen: '127.0.0.1:0', blocked_networks: [10.0.0.0/8]}\n"
                    "delivery: {blocked_networks: [10.0.0.0/8]}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert [i.path for i in raised.value.issues] == ["api.blocked_networks"]
    assert "keep only delivery.blocked_networks" in raised.value.issues[0].message


def test_network_lists_are_checked_with_their_path(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(MINIMAL + "delivery: {blocked_networks: [169.254.0.0/16, nonsense],"
                    " tenant_allowed_networks: [10.0.0.0/33]}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert sorted(i.path for i in raised.value.issues) == [
        "delivery.blocked_networks[1]", "delivery.tenant_allowed_networks[0]"]
    path.write_text(MINIMAL + "delivery: {tenant_allowed_networks: [10.20.0.0/16]}\n")
    delivery = load_config(path).delivery
    assert (delivery.blocked_networks, delivery.tenant_allowed_networks) == (
        ("169.254.0.0/16", "fe80::/10"), ("10.20.0.0/16",))
