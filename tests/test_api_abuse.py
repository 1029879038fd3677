"""The API listener under abuse, over real sockets: idle and slow connections,
a per-client connection cap, bodies nothing downstream can handle, token
guessing, and the cache headers of responses that carry tokens or secrets.

"Another client" is a socket bound to 127.0.0.2 (all of 127/8 is loopback on
Linux) while the attacker uses 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import resource
import socket

import gevent
import pytest
import requests
import yaml

from eslhook.api import ApiServer, create_app
from eslhook.api.envelope import MAX_JSON_DEPTH
from eslhook.api.limits import FailureThrottle, SummaryLog, TokenBucket, client_key
from eslhook.config import load_config
from eslhook.fakeswitch import FakeSwitch
from eslhook.service import Bridge
from helpers import FAST_TIMINGS, wait_until
from test_api_delivery import ACCOUNTS as DELIVERY_ACCOUNTS, API as DELIVERY_API
from world import World
from test_api_support import NEW_HOOK, PARENT, TOKENS, assert_error, assert_success, start_api

HOOKS = "/v2/accounts/%s/webhooks" % PARENT
OTHER_CLIENT = "127.0.0.2"


def other_client(api_url_host: str, port: int, method: str, path: str,
                 headers: dict | None = None, body: bytes | None = None,
                 timeout: float = 5.0) -> http.client.HTTPResponse:
    """One request from 127.0.0.2; ``timeout`` bounds every socket operation."""
    connection = http.client.HTTPConnection(api_url_host, port, timeout=timeout,
                                            source_address=(OTHER_CLIENT, 0))
    connection.request(method, path, body=body, headers=headers or {})
    reply = connection.getresponse()
    reply.body = reply.read()
    connection.close()
    return reply


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True if the server closes ``sock`` (EOF or reset) within ``within`` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.fixture
def api(tmp_path):
    """``api(**api_options)``: a started API (test_api_support), closed after the test."""
    with contextlib.ExitStack() as started:
        yield lambda **options: started.enter_context(
            contextlib.closing(start_api(tmp_path, **options)))


# -- item 9: idle connections -------------------------------------------------

@pytest.fixture
def bridge_api(tmp_path):
    """A running Bridge (fake switch connected) with the API on a free port."""
    fake = FakeSwitch(heartbeat_seconds=None)
    _, port = fake.start()
    started = []

    def start(**api):
        (tmp_path / "eslhook.yaml").write_text(yaml.safe_dump({
            "switches": [{"name": "fs1", "host": "127.0.0.1", "port": port,
                          "password": "ClueCon"}],
            "hooks_file": "hooks.yaml", "state_dir": "state",
            "accounts": [{"id": PARENT, "auth_tokens": [TOKENS["parent"]]}],
            "api": {"listen": "127.0.0.1:0", **api}}))
        bridge = Bridge(load_config(tmp_path / "eslhook.yaml"), timings=FAST_TIMINGS)
        bridge.start()
        started.append(bridge)
        assert fake.wait_for_subscribers(1, timeout=5)
        return bridge

    yield start
    for bridge in started:
        bridge.stop(drain_seconds=1)
    fake.stop()


def open_files_for(count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count:
        assert hard == resource.RLIM_INFINITY or hard >= count, "cannot open %d files" % count
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))


def test_healthz_answers_another_client_while_one_holds_1000_idle_connections(bridge_api):
    open_files_for(4096)
    bridge = bridge_api(header_timeout_seconds=30)   # the idle ones stay for the test
    api = bridge.api
    idle = []
    try:
        for _ in range(1000):
            try:
                idle.append(socket.create_connection((api.host, api.port), timeout=0.5))
            except TimeoutError:   # the listen backlog is full: the attack already won
                break
        reply = other_client(api.host, api.port, "GET", "/healthz", timeout=1.0)
        assert reply.status == 200 and json.loads(reply.body)["status"] == "ok"
        assert len(idle) == 1000
        # served: the per-client cap's worth (64), the rest closed at once, unread
        assert api.open_connections("127.0.0.1") == 64
        assert sum(closed_by_server(s, 0.01) for s in idle[-100:]) == 100
        assert not closed_by_server(idle[0], 0.01)    # held open, waiting for its head
    finally:
        for sock in idle:
            sock.close()


def test_a_silent_or_dribbling_connection_is_closed_after_the_header_timeout(api):
    server = api(header_timeout_seconds=0.3).server
    silent = socket.create_connection((server.host, server.port), timeout=5)
    dribbling = socket.create_connection((server.host, server.port), timeout=5)
    try:
        head = b"GET /v2/webhooks HTTP/1.1\r\n" + b"X-Pad: %s\r\n" % (b"p" * 100)
        for byte in head:     # a byte every 0.05 s: never a whole head, never silent
            dribbling.sendall(bytes([byte]))
            if closed_by_server(dribbling, 0.05):
                break
        else:
            raise AssertionError("the dribbling client was never closed")
        assert closed_by_server(silent, 3.0)
        assert wait_until(lambda: server.open_connections() == 0)
    finally:
        silent.close()
        dribbling.close()


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(api):
    server = api(idle_timeout_seconds=0.3, header_timeout_seconds=30).server
    sock = socket.create_connection((server.host, server.port), timeout=5)
    try:
        sock.sendall(b"GET /v2/webhooks HTTP/1.1\r\nHost: x\r\n\r\n")
        head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert closed_by_server(sock, 3.0)     # well before the 30 s header timeout
    finally:
        sock.close()


def test_a_client_over_its_connection_cap_is_closed_at_once_and_others_are_served(api, caplog):
    server = api(max_connections_per_client=3, header_timeout_seconds=30).server
    held = [socket.create_connection((server.host, server.port), timeout=5) for _ in range(3)]
    try:
        over = socket.create_connection((server.host, server.port), timeout=5)
        held.append(over)
        assert closed_by_server(over, 3.0)       # long before the 30 s header timeout
        reply = other_client(server.host, server.port, "GET", "/v2/webhooks")
        assert reply.status == 200
        assert not closed_by_server(held[0], 0.01)
        assert server.open_connections("127.0.0.1") == 3
    finally:
        for sock in held:
            sock.close()
    # closed connections give their places back
    assert wait_until(lambda: server.open_connections() == 0)
    assert requests.get(server.url("/v2/webhooks"), timeout=5).status_code == 200
    with caplog.at_level(logging.INFO):
        server.stop(timeout=1)
    assert [r.getMessage() for r in caplog.records] == [
        "API connections refused over api.max_connections_per_client (3) in the last 60 s: "
        "127.0.0.1: 1 (1 client, 1 in all)"]


def test_a_body_that_stops_arriving_gets_408(api):
    one = api(header_timeout_seconds=0.3)
    sock = socket.create_connection((one.server.host, one.server.port), timeout=5)
    try:
        sock.sendall(("PUT %s HTTP/1.1\r\nHost: x\r\nX-Auth-Token: %s\r\n"
                      "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"data\""
                      % (HOOKS, TOKENS["parent"])).encode())
        sock.settimeout(3.0)
        reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 408 ")
        assert b'"error": "408"' in reply
    finally:
        sock.close()
    assert one.file_hooks() == []


# -- item 10: nothing a client sends gives a 5xx ---------------------------------

def put(api, body: str, token: str | None = "parent"):
    return api.call("PUT", HOOKS, token=token, data=body.encode("utf-8"),
                    headers={"Content-Type": "application/json"})


def test_json_nested_10000_deep_is_a_400_and_logs_no_traceback(api, caplog):
    one = api()
    deep = '{"data": %s{}%s}' % ('{"a":' * 10000, "}" * 10000)
    with caplog.at_level(logging.DEBUG):
        reply = put(one, deep)
        anonymous = put(one, deep, token=None)
    body = assert_error(reply, 400, "validation error")
    assert body["data"] == {"json": {"maxDepth": {
        "message": "JSON nested deeper than %d levels" % MAX_JSON_DEPTH,
        "target": MAX_JSON_DEPTH}}}
    assert_error(anonymous, 401)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_json_just_past_the_depth_limit_is_a_400_naming_the_field(api):
    one = api()
    nested = "1"
    for _ in range(MAX_JSON_DEPTH):
        nested = '{"k": %s}' % nested
    reply = put(one, '{"data": {"name": "n", "uri": "http://127.0.0.1:9/", "hook": "all",'
                     ' "custom_data": %s}}' % nested)
    assert "maxDepth" in assert_error(reply, 400)["data"]["custom_data" + ".k" * 30]
    assert one.file_hooks() == []


@pytest.mark.parametrize("field, body", [
    ("name", '{"data": {"name": "caf\\ud800", "uri": "http://127.0.0.1:9/", "hook": "all"}}'),
    ("custom_data.\\udc00", '{"data": {"name": "n", "uri": "http://127.0.0.1:9/", '
                            '"hook": "all", "custom_data": {"\\udc00": "x"}}}'),
    ("auth_token", '{"auth_token": "\\ud800", "data": {}}'),
])
def test_a_lone_surrogate_is_a_400_field_error_and_nothing_is_stored(api, field, body):
    one = api()
    reply = put(one, body, token=None if field == "auth_token" else "parent")
    if field == "auth_token":   # the body is unreadable, so it carries no token
        assert_error(reply, 401)
        return
    error = assert_error(reply, 400, "validation error")["data"][field]["format"]
    assert "lone UTF-16 surrogate" in error["message"]
    assert one.file_hooks() == []
    # a valid pair is a character like any other, stored and returned as it came
    created = put(one, '{"data": {"name": "\\ud83d\\ude00", "uri": "http://127.0.0.1:9/",'
                       ' "hook": "all"}}')
    assert assert_success(created, 201)["data"]["name"] == "\U0001F600"
    assert one.file_hooks()[0]["name"] == "\U0001F600"


def test_a_number_beyond_a_float_is_a_400(api):
    reply = put(api(), '{"data": {"name": "n", "uri": "http://127.0.0.1:9/", "hook": "all",'
                       ' "retries": 1e400}}')
    assert "out of range" in assert_error(reply, 400, "malformed JSON")["data"]["json"][
        "parse"]["message"]


def test_a_30_digit_start_key_is_a_400_not_an_sqlite_overflow(tmp_path, caplog):
    world = World(tmp_path, accounts=DELIVERY_ACCOUNTS, extra={"api": DELIVERY_API})
    world.start()
    try:
        attempts = world.bridge.api.url(HOOKS + "/attempts")
        headers = {"X-Auth-Token": TOKENS["parent"]}
        with caplog.at_level(logging.DEBUG):
            replies = [requests.get(attempts, params=params, headers=headers, timeout=5)
                       for params in ({"start_key": "1" * 30}, {"start_key": str(2 ** 63)},
                                      {"page_size": "1" + "0" * 5000})]
            fine = requests.get(attempts, params={"start_key": str(2 ** 63 - 1)},
                                headers=headers, timeout=5)
    finally:
        world.close()
    for reply, field in zip(replies, ("start_key", "start_key", "page_size")):
        assert field in assert_error(reply, 400, "validation error")["data"]
    assert assert_success(fine)["data"] == []
    assert not [r for r in caplog.records if r.exc_info]


def test_hooks_file_replaced_by_a_directory_is_a_503_naming_the_problem(api, caplog):
    one = api()
    created = one.create()
    one.path.unlink()
    one.path.mkdir()
    with caplog.at_level(logging.DEBUG):
        change = one.call("PUT", HOOKS, json={"data": NEW_HOOK})
        delete = one.call("DELETE", HOOKS + "/" + created["id"])
        listing = one.call("GET", HOOKS)
    for reply in (change, delete):
        body = assert_error(reply, 503, "hooks file invalid")
        assert [i["message"] for i in body["data"]["issues"]] == ["cannot read: Is a directory"]
    # reads show the hooks in force, as for any bad hand edit
    assert [h["id"] for h in assert_success(listing)["data"]] == [created["id"]]
    assert not [r for r in caplog.records if r.exc_info]


def test_an_unexpected_exception_is_one_logged_500_envelope_without_internals(api, caplog):
    class Boom:
        def on_get(self, req, resp):
            raise RuntimeError("internal detail /var/lib/eslhook/secret")

    context = api().context
    server = ApiServer(create_app(context, extra=[lambda app, ctx: app.add_route("/boom", Boom())]),
                       "127.0.0.1", 0)
    server.start()
    try:
        with caplog.at_level(logging.DEBUG):
            reply = requests.get(server.url("/boom"), timeout=5)
    finally:
        server.stop(timeout=1)
    body = assert_error(reply, 500, "internal server error")
    assert "internal detail" not in reply.text and "RuntimeError" not in reply.text
    assert reply.headers["Cache-Control"] == "no-store"
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info and body["request_id"] in record.getMessage()


def test_malformed_requests_are_400s_summarised_not_logged_one_by_one(api, caplog):
    server = api().server      # one summary a minute
    with caplog.at_level(logging.INFO):
        for _ in range(50):
            sock = socket.create_connection((server.host, server.port), timeout=5)
            sock.sendall(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 400 ")
            sock.close()
        assert not caplog.records
        server.stop(timeout=1)     # stopping writes what the interval holds
    [line] = [r.getMessage() for r in caplog.records]
    assert line == ("malformed HTTP requests refused with 400 in the last 60 s: "
                    "127.0.0.1: 50 (1 client, 50 in all)")


# -- item 11: token guessing ------------------------------------------------------

def test_token_bucket_allows_the_burst_then_the_rate():
    rate, burst = 0.5, 3
    bucket = TokenBucket.full(burst, now=0.0)
    for _ in range(3):
        assert not bucket.empty(0.0, rate, burst)
        bucket = bucket.take(0.0, rate, burst)
    assert bucket.empty(0.0, rate, burst) and bucket.wait(0.0, rate, burst) == 2.0
    assert bucket.wait(1.5, rate, burst) == pytest.approx(0.5)
    assert not bucket.empty(2.0, rate, burst)           # one more fits after 1/rate
    assert bucket.level(100.0, rate, burst) == burst    # never more than the burst


def test_throttle_counts_per_client_and_forgets_refilled_ones():
    now = [0.0]
    throttle = FailureThrottle(burst=2, per_minute=60, clock=lambda: now[0])
    throttle.failed("10.0.0.1")
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 1 and throttle.retry_after("10.0.0.2") == 0
    now[0] = 5.0
    throttle.failed("10.0.0.3")          # 10.0.0.1 is full again: forgotten
    assert len(throttle) == 1 and throttle.retry_after("10.0.0.1") == 0


@pytest.mark.parametrize("address, key", [
    ("127.0.0.1", "127.0.0.1"), ("::ffff:10.1.2.3", "10.1.2.3"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"), ("fe80::1%eth0", "fe80::/64"),
    (None, "unknown")])
def test_client_key_groups_an_ipv6_host_by_its_64(address, key):
    assert client_key(address) == key


def test_summary_log_writes_one_line_per_interval_for_a_flood(caplog):
    summary = SummaryLog("refused", 0.05, logging.getLogger("eslhook.api.test"))
    with caplog.at_level(logging.INFO, logger="eslhook.api.test"):
        for n in range(1000):
            summary.count("10.0.0.%d" % (n % 12))
        assert wait_until(lambda: caplog.records)
        gevent.sleep(0.15)      # three more intervals: nothing more to say
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("refused in the last 0.05 s: 10.0.0.0: 84, 10.0.0.1: 84, ")
    assert line.endswith(", and 2 more (12 clients, 1000 in all)")


def test_failed_tokens_are_throttled_per_client_with_retry_after_and_logged_once(api, caplog):
    one = api(auth_failure_burst=20, auth_failures_per_minute=6)
    statuses = []
    with caplog.at_level(logging.INFO):
        for n in range(300):
            reply = one.call("GET", HOOKS, token="guess-%04d" % n)
            statuses.append(reply.status_code)
        throttled = reply
        good_same_address = one.call("GET", HOOKS)
        good_elsewhere = other_client(one.server.host, one.server.port, "GET", HOOKS,
                                      headers={"X-Auth-Token": TOKENS["parent"]})
        assert not [r for r in caplog.records if r.name.startswith("eslhook.api")]
        one.context.throttle.summary.flush()     # the 60 s interval's end
    assert statuses == [401] * 20 + [429] * 280
    body = assert_error(throttled, 429, "too many requests")
    assert 1 <= int(throttled.headers["Retry-After"]) <= 10
    assert "retry in" in body["data"]["message"]
    assert_error(good_same_address, 429)     # no oracle: a good token waits as well
    assert good_elsewhere.status == 200      # other clients are not slowed
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("eslhook.api")]
    assert lines == ["API authentications failed or throttled (429), by client in the "
                     "last 60 s: 127.0.0.1: 301 (1 client, 301 in all)"]
    assert not any("guess-" in r.getMessage() or TOKENS["parent"] in r.getMessage()
                   for r in caplog.records)


def test_requests_without_a_token_are_not_counted_as_guesses(api):
    one = api(auth_failure_burst=2)
    assert {one.call("GET", HOOKS, token=None).status_code for _ in range(5)} == {401}
    assert_success(one.call("GET", HOOKS))


# -- item 12: cache headers --------------------------------------------------------

def test_responses_with_tokens_or_secrets_are_no_store_and_all_are_nosniff(api):
    one = api()
    generated = one.call("PUT", HOOKS, json={"data": {**NEW_HOOK, "secret": "generate"}})
    assert assert_success(generated, 201)["data"]["secret"].startswith("whsec_")
    private = [generated, one.call("GET", HOOKS), one.call("GET", HOOKS, token="bad"),
               one.call("GET", "/v2/no/such/thing"), one.call("DELETE", HOOKS)]
    for reply in private:
        assert reply.headers["Cache-Control"] == "no-store", reply.request.url
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
    for path in ("/v2/webhooks", "/v2/webhooks/samples", "/v2/webhooks/samples/channel_create",
                 "/openapi.json"):
        reply = one.call("GET", path, token=None)
        assert reply.status_code == 200
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert "Cache-Control" not in reply.headers   # public, no token in it
