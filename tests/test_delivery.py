"""Delivery end to end: DeliveryQueue/HttpSender -> real sockets -> the test receiver."""

import logging
import random
import socket
from urllib.parse import parse_qs

import gevent
import pytest

from helpers import free_port, make_hook, self_signed_certificate
from receiver import Receiver, Reply

from eslhook import __version__
from eslhook.config import DeliveryConfig
from eslhook.delivery.http import HttpSender
from eslhook.delivery.queue import DeliveryQueue
from eslhook.delivery.request import HttpRequest

ACCOUNT = "4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"
FAST = DeliveryConfig(timeout_seconds=2.0, connect_timeout_seconds=1.0, max_in_flight=16,
                      buffer_size=1000, retry_schedule_seconds=(0.05,))
EVENTS = ("channel_create", "channel_answer", "channel_destroy")
PAYLOAD = {
    "hook_event": "channel_create", "call_id": "b3ad3a4c-1a85-4543-aab9-4a2e60dd8e05",
    "account_id": ACCOUNT, "caller_id_name": "Alice Example", "caller_id_number": "+15551234567",
    "to": "1000@127.0.0.1:5080", "call_direction": "inbound",
    "custom_channel_vars": {"some_custom": "hello world&x=1", "unicode_custom": "café €5 %41"},
}
# PAYLOAD as a form/query decodes it (nested keys in brackets)
PAYLOAD_AS_FORM = {
    "hook_event": ["channel_create"], "call_id": [PAYLOAD["call_id"]], "account_id": [ACCOUNT],
    "caller_id_name": ["Alice Example"], "caller_id_number": ["+15551234567"],
    "to": ["1000@127.0.0.1:5080"], "call_direction": ["inbound"],
    "custom_channel_vars[some_custom]": ["hello world&x=1"],
    "custom_channel_vars[unicode_custom]": ["café €5 %41"],
}


def deliver(queues, hook, *payloads, config=FAST):
    queue = queues(config)
    for payload in payloads:
        assert queue.submit(hook, payload)
    assert queue.wait_idle(10), queue.stats
    return queue


# -- encodings as received ----------------------------------------------------------

@pytest.mark.parametrize("verb, fmt", [("post", "form-data"), ("put", "form-data"),
                                       ("post", "json"), ("put", "json"),
                                       ("get", "form-data"), ("get", "json")])
def test_each_verb_and_format_arrives_decodable(receiver, queues, verb, fmt):
    hook = make_hook(receiver.url("/hook"), http_verb=verb, format=fmt)
    deliver(queues, hook, PAYLOAD)
    [got] = receiver.wait_for(1, timeout=5)
    assert got.method == verb.upper()
    assert got.path == "/hook"
    assert got.parse_error is None
    if verb == "get":              # get ignores format: the payload is the query string
        assert got.query == PAYLOAD_AS_FORM
        assert got.body == b""
    elif fmt == "form-data":
        assert got.header("content-type") == "application/x-www-form-urlencoded"
        assert got.form == PAYLOAD_AS_FORM
        assert got.query == {}
    else:
        assert got.header("content-type") == "application/json"
        assert got.json == PAYLOAD
        assert b": " not in got.body and "café".encode() in got.body   # compact, raw UTF-8


def test_get_keeps_the_hooks_own_query(receiver, queues):
    hook = make_hook(receiver.url("/hook?token=s3cret&src=fs"), http_verb="get")
    deliver(queues, hook, {"call_id": "c1", "answered": True, "flags": {"internal": False}})
    [got] = receiver.wait_for(1, timeout=5)
    assert got.query_string == "token=s3cret&src=fs&call_id=c1&answered=true&flags[internal]=false"
    assert parse_qs(got.query_string)["token"] == ["s3cret"]


def test_custom_data_overrides_and_extends_the_payload(receiver, queues):
    hook = make_hook(receiver.url("/"), custom_data={"caller_id_name": "Override", "site": "x"})
    deliver(queues, hook, PAYLOAD)
    [got] = receiver.wait_for(1, timeout=5)
    assert got.form["caller_id_name"] == ["Override"]
    assert got.form["site"] == ["x"]
    assert got.form["call_id"] == [PAYLOAD["call_id"]]


def test_headers(receiver, queues):
    hook = make_hook(receiver.url("/"), format="json")
    deliver(queues, hook, dict(PAYLOAD, account_id="11112222333344445555666677778888"))
    [got] = receiver.wait_for(1, timeout=5)
    assert got.header("x-hook-id") == hook.id
    # a sub-account's call (an include_subaccounts hook): the header is the hook's account
    assert got.header("x-account-id") == hook.account_id
    assert got.json["account_id"] == "11112222333344445555666677778888"
    assert got.header("user-agent") == "eslhook/" + __version__
    assert got.header("content-length") == str(len(got.body))


# -- success, retries, giving up -----------------------------------------------------

@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_any_2xx_is_delivered_once(receiver, queues, status):
    receiver.default_reply = Reply(status, body=b"")
    queue = deliver(queues, make_hook(receiver.url("/")), PAYLOAD)
    assert len(receiver.requests) == 1
    assert (queue.stats.delivered, queue.stats.retried, queue.stats.given_up) == (1, 0, 0)


def test_500_is_retried_until_success(receiver, queues):
    receiver.script(Reply(500), Reply(502))
    queue = deliver(queues, make_hook(receiver.url("/"), retries=2), PAYLOAD)
    got = receiver.requests
    assert len(got) == 3
    assert got[0].body == got[1].body == got[2].body
    stats = queue.stats
    assert (stats.delivered, stats.retried, stats.given_up, stats.pending) == (1, 2, 0, 0)


def test_500_given_up_after_the_hooks_retries(receiver, queues, caplog):
    receiver.default_reply = Reply(500, body=b"broken")
    hook = make_hook(receiver.url("/"), retries=3)
    with caplog.at_level(logging.WARNING, logger="eslhook.delivery.queue"):
        queue = deliver(queues, hook, PAYLOAD)
    assert len(receiver.requests) == 4           # first try + 3 retries
    assert (queue.stats.delivered, queue.stats.retried, queue.stats.given_up) == (0, 3, 1)
    [line] = [r.getMessage() for r in caplog.records if "giving up" in r.getMessage()]
    assert hook.id in line and PAYLOAD["call_id"] in line and "channel_create" in line
    assert "bad response code 500" in line


def test_retries_zero_means_one_try(receiver, queues):
    receiver.default_reply = Reply(503)
    queue = deliver(queues, make_hook(receiver.url("/"), retries=0), PAYLOAD)
    assert len(receiver.requests) == 1
    assert queue.stats.given_up == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 413, 422])
def test_final_statuses_are_not_retried(receiver, queues, status):
    receiver.default_reply = Reply(status)
    queue = deliver(queues, make_hook(receiver.url("/"), retries=5), PAYLOAD)
    assert len(receiver.requests) == 1
    assert (queue.stats.retried, queue.stats.given_up) == (0, 1)


def test_retry_after_on_503_overrides_a_long_schedule(receiver, queues):
    # the schedule alone would wait 30 s; Retry-After: 0 lets the retry go at once
    slow_schedule = DeliveryConfig(timeout_seconds=2.0, max_in_flight=4,
                                   retry_schedule_seconds=(30.0,))
    receiver.script(Reply.retry_after(503, 0))
    queue = deliver(queues, make_hook(receiver.url("/")), PAYLOAD, config=slow_schedule)
    assert len(receiver.requests) == 2
    assert queue.stats.delivered == 1


def test_connection_refused_is_retried_then_given_up(queues):
    hook = make_hook("http://127.0.0.1:%d/hook" % free_port(), retries=2)
    queue = deliver(queues, hook, PAYLOAD)
    assert (queue.stats.retried, queue.stats.given_up) == (2, 1)
    outcome = HttpSender(FAST).send(HttpRequest("POST", hook.uri, {}, b"x"))
    assert (outcome.status, outcome.reason) == (None, "connection refused")


def test_a_hanging_receiver_times_out(receiver):
    receiver.default_reply = Reply(delay=30)
    sender = HttpSender(DeliveryConfig(timeout_seconds=0.5))
    try:
        outcome = sender.send(HttpRequest("POST", receiver.url("/"), {}, b"x"))
    finally:
        sender.close()
    assert (outcome.status, outcome.reason) == (None, "timeout")
    assert 0.5 <= outcome.duration_seconds < 5      # bounded by timeout_seconds, not 30 s


def test_a_trickling_receiver_cannot_hold_an_attempt_and_the_host_stays_usable(receiver):
    # each byte comes well within the socket timeout; only the whole-attempt bound stops it
    receiver.script(Reply(body=b"x" * 100, trickle_interval=0.05))
    sender = HttpSender(DeliveryConfig(timeout_seconds=0.5), max_connections_per_host=1)
    try:
        first = sender.send(HttpRequest("POST", receiver.url("/"), {}, b"x"))
        second = sender.send(HttpRequest("POST", receiver.url("/"), {}, b"y"))
    finally:
        sender.close()
    assert (first.status, first.reason) == (None, "timeout")
    assert (second.status, second.reason, second.body_excerpt) == (200, "success", b"ok")


def test_outcome_carries_status_body_and_retry_after(receiver):
    receiver.script(Reply(429, body=b"slow down " * 500, headers=(("Retry-After", "7"),)))
    sender = HttpSender(FAST)
    try:
        outcome = sender.send(HttpRequest("POST", receiver.url("/"), {}, b"x"))
    finally:
        sender.close()
    assert (outcome.status, outcome.reason, outcome.retry_after) == (429, "bad response code", 7.0)
    assert outcome.body_excerpt == (b"slow down " * 500)[:2048]


@pytest.mark.parametrize("uri", ["ftp://127.0.0.1/x", "http:///nohost", "http://127.0.0.1:99999/",
                                 "http://127.0.0.1:9/a path with spaces"])
def test_an_unsendable_uri_is_given_up_at_once(queues, uri, caplog):
    # refused when a hook is built or loaded; the queue's own defence, for a hook
    # that skipped the checks (check=False: a row edited in the database by hand)
    queue = deliver(queues, make_hook(uri, retries=3, check=False), PAYLOAD)
    assert (queue.stats.retried, queue.stats.given_up) == (0, 1)
    assert any("invalid request" in r.getMessage() for r in caplog.records)


def test_an_unencodable_payload_is_given_up_without_a_request(receiver, queues, caplog):
    queue = queues(FAST)
    hook = make_hook(receiver.url("/"))
    assert queue.submit(hook, {"call_id": "c", "x": object()})
    assert queue.submit(hook, {"call_id": "c", "hook_event": "channel_answer"})
    assert queue.wait_idle(5)
    assert (queue.stats.invalid, queue.stats.given_up, queue.stats.delivered) == (1, 1, 1)
    assert [r.json or r.form for r in receiver.requests][0]["hook_event"] in (
        "channel_answer", ["channel_answer"])  # the lane went on after the bad one
    assert any("invalid payload" in r.getMessage() for r in caplog.records)


# -- https ---------------------------------------------------------------------------

@pytest.fixture
def certificate(tmp_path):
    return self_signed_certificate(tmp_path, "127.0.0.1", "IP:127.0.0.1")


def test_https_delivery(certificate):
    cert, key = certificate
    server = Receiver(certfile=cert, keyfile=key)
    try:
        trusted = HttpSender(FAST, ca_file=cert)
        untrusted = HttpSender(FAST)
        ok = trusted.send(HttpRequest("POST", server.url("/tls"), {}, b"a=1"))
        refused = untrusted.send(HttpRequest("POST", server.url("/tls"), {}, b"a=2"))
        trusted.close()
        untrusted.close()
    finally:
        server.stop()
    assert (ok.status, ok.reason) == (200, "success")
    assert [r.body for r in server.requests] == [b"a=1"]      # the untrusted one never arrived
    assert (refused.status, refused.reason) == (None, "connection error")
    assert "tls" in refused.error


# -- ordering and parallelism ---------------------------------------------------------

def test_each_calls_events_arrive_in_order_while_calls_go_in_parallel(receiver, queues):
    rng = random.Random(7)
    failed_once = set()

    def respond(request):
        key = (request.form["call_id"][0], request.form["hook_event"][0])
        if key not in failed_once and rng.random() < 0.1:
            failed_once.add(key)
            return Reply(500, delay=rng.uniform(0, 0.01))
        return Reply(200, delay=rng.uniform(0, 0.02))

    receiver.responder = respond
    hook = make_hook(receiver.url("/"), retries=3)
    calls = ["call-%02d" % n for n in range(50)]
    queue = queues(FAST)
    for event in EVENTS:            # all creates, then all answers, then all destroys
        for call in calls:
            assert queue.submit(hook, {"call_id": call, "hook_event": event})
    assert queue.wait_idle(30), queue.stats

    arrivals = {call: [] for call in calls}
    for request in sorted(receiver.requests, key=lambda r: r.arrived):
        arrivals[request.form["call_id"][0]].append(EVENTS.index(request.form["hook_event"][0]))
    for call, order in arrivals.items():
        assert order == sorted(order), (call, order)                # retries included
        assert sorted(set(order)) == [0, 1, 2], (call, order)
    assert failed_once, "the responder should have failed some requests"
    assert len(receiver.requests) == 150 + len(failed_once)
    assert queue.stats.delivered == 150 and queue.stats.given_up == 0
    assert receiver.max_active > 1                                # calls overlapped in time


def test_a_call_waiting_for_a_retry_holds_back_only_its_own_later_events(receiver, queues):
    def respond(request):
        first_try = sum(1 for r in receiver.requests if r.form == request.form) == 1
        if request.form["call_id"] == ["slow"] and request.form["hook_event"] == [EVENTS[0]] \
                and first_try:
            return Reply(500)
        return Reply(200)

    receiver.responder = respond
    config = DeliveryConfig(max_in_flight=4, retry_schedule_seconds=(0.3,))
    hook = make_hook(receiver.url("/"), retries=1)
    queue = queues(config)
    for event in EVENTS:
        assert queue.submit(hook, {"call_id": "slow", "hook_event": event})
        assert queue.submit(hook, {"call_id": "fast", "hook_event": event})
    assert queue.wait_idle(10)
    seen = [(r.form["call_id"][0], r.form["hook_event"][0]) for r in receiver.requests]
    slow = [event for call, event in seen if call == "slow"]
    assert slow == [EVENTS[0], EVENTS[0], EVENTS[1], EVENTS[2]]
    # the fast call finished while the slow one waited for its retry
    assert seen.index(("fast", EVENTS[2])) < seen.index(("slow", EVENTS[1]))


# -- buffer, stop, idle -----------------------------------------------------------------

def test_a_full_buffer_drops_without_blocking_and_logs_once(receiver, caplog):
    config = DeliveryConfig(max_in_flight=2, buffer_size=3, retry_schedule_seconds=(0.05,))
    queue = DeliveryQueue(config)        # not started yet: nothing drains the buffer
    hook = make_hook(receiver.url("/"))
    with caplog.at_level(logging.WARNING, logger="eslhook.delivery.queue"), gevent.Timeout(5):
        accepted = [queue.submit(hook, {"call_id": "c%d" % n}) for n in range(3)]
        refused = [queue.submit(hook, {"call_id": "x%d" % n}) for n in range(100)]
    assert accepted == [True] * 3 and refused == [False] * 100
    assert (queue.stats.dropped, queue.stats.pending) == (100, 3)
    drop_lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drop_lines) == 1 and "buffer full" in drop_lines[0]
    queue.start()
    try:
        assert queue.wait_idle(5)
    finally:
        queue.stop(timeout=1)
    assert sorted(r.form["call_id"][0] for r in receiver.requests) == ["c0", "c1", "c2"]


def test_stop_refuses_new_work_and_bounds_running_attempts(receiver):
    receiver.default_reply = Reply(delay=30)
    queue = DeliveryQueue(DeliveryConfig(max_in_flight=2, timeout_seconds=20))
    queue.start()
    hook = make_hook(receiver.url("/"))
    assert queue.submit(hook, {"call_id": "a"})
    receiver.wait_for(1, timeout=5)
    assert not queue.wait_idle(0.1)
    assert queue.stats.in_flight == 1
    with gevent.Timeout(5):           # not the 20 s request timeout, nor the 30 s delay
        queue.stop(timeout=0.2)
    assert queue.stats.pending == 1 and queue.stats.delivered == 0
    assert not queue.submit(hook, {"call_id": "b"})
    assert queue.stats.dropped == 1


def test_stop_drains_accepted_deliveries_before_the_deadline(receiver):
    receiver.default_reply = Reply(delay=0.01)
    receiver.script(Reply(500))                   # one retry must happen while stopping
    queue = DeliveryQueue(DeliveryConfig(max_in_flight=2, retry_schedule_seconds=(0.05,)))
    queue.start()
    hook = make_hook(receiver.url("/"))
    for n in range(20):
        assert queue.submit(hook, {"call_id": "c%d" % n})
    with gevent.Timeout(10):
        queue.stop(timeout=10)
    assert sorted({r.form["call_id"][0] for r in receiver.requests}) == sorted(
        "c%d" % n for n in range(20))
    assert len(receiver.requests) == 21
    assert (queue.stats.delivered, queue.stats.pending) == (20, 0)


def test_stop_abandons_a_delivery_waiting_for_retry(receiver):
    receiver.default_reply = Reply(500)
    queue = DeliveryQueue(DeliveryConfig(max_in_flight=2, retry_schedule_seconds=(30.0,)))
    queue.start()
    assert queue.submit(make_hook(receiver.url("/"), retries=5), {"call_id": "a"})
    receiver.wait_for(1, timeout=5)
    with gevent.Timeout(5):
        queue.stop(timeout=0.3)
    assert len(receiver.requests) == 1
    assert queue.stats.pending == 1 and queue.stats.given_up == 0


def test_a_receiver_closing_idle_connections_costs_no_failed_attempt():
    # Many servers close a kept-alive connection after a short idle time (Node's default
    # is 5 s). The next delivery must notice and use a new connection, not fail.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []

    def serve():
        for _ in range(3):
            conn, _ = listener.accept()
            accepted.append(conn)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            gevent.sleep(0.05)       # idle timeout
            conn.close()

    server = gevent.spawn(serve)
    sender = HttpSender(FAST)
    url = "http://127.0.0.1:%d/hook" % listener.getsockname()[1]
    try:
        outcomes = []
        for body in (b"1", b"2", b"3"):
            outcomes.append(sender.send(HttpRequest("POST", url, {}, body)))
            gevent.sleep(0.2)
    finally:
        sender.close()
        server.kill()
        listener.close()
    assert [(o.status, o.reason) for o in outcomes] == [(200, "success")] * 3
    assert len(accepted) == 3


class _KeyThatBreaksEncoding:
    """A payload key whose str() raises: the form encoder meets an error it does not
    expect (not the ValueError of an unencodable value), as a bug in eslhook would."""

    def __str__(self):
        raise RuntimeError("encoder bug")


def test_an_internal_error_is_not_logged_to_the_receiver_as_invalid_payload(receiver, queues,
                                                                             caplog):
    queue = queues(FAST)
    hook = make_hook(receiver.url("/"), retries=3)
    with caplog.at_level(logging.ERROR, logger="eslhook.delivery.queue"):
        assert queue.submit(hook, {"call_id": "c", _KeyThatBreaksEncoding(): 1})
        assert queue.submit(hook, {"call_id": "c", "hook_event": "channel_answer"})
        assert queue.wait_idle(5)
    records = queue.attempts(ACCOUNT).attempts
    assert [(r["reason"], r["result"], r["retries_left"]) for r in reversed(records)] == [
        ("internal error", "failure", 0), ("success", "success", 0)]
    assert len(receiver.requests) == 1              # nothing sent for the broken one
    assert (queue.stats.given_up, queue.stats.invalid, queue.stats.delivered) == (1, 0, 1)
    [crash] = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert crash.levelno == logging.ERROR and crash.exc_info is not None
    assert "encoder bug" in caplog.text             # the operator gets the traceback
