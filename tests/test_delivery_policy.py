"""Pure parts of delivery: request encoding and the retry policy, apart from any timing."""

import json
from types import MappingProxyType
from urllib.parse import parse_qs

import pytest

from eslhook import __version__
from eslhook.config import DeliveryConfig
from eslhook.delivery.policy import (
    BODY_EXCERPT_BYTES, Circuit, CircuitPolicy, DisablePolicy, HookHealth, Outcome, RetryPolicy,
    circuit_admits, circuit_after, disable_reason, health_after, host_failed, is_success,
    parse_retry_after, retry_delay, should_retry)
from eslhook.delivery.request import build_request, encode_form, encode_json
from helpers import ACCOUNT, HOOK_ID, make_hook
UA = "eslhook/" + __version__


# -- request encoding ------------------------------------------------------------

def test_form_encoding_matches_kazoo_byte_for_byte():
    # Kazoo's urlencode: space -> '+', unreserved kept, everything else %XX of UTF-8
    text = encode_form({"a": "x y&z=1/é~._-", "ok": True, "no": False, "n": 5, "none": None})
    assert text == "a=x+y%26z%3D1%2F%C3%A9~._-&ok=true&no=false&n=5&none="


def test_form_nested_objects_and_lists_use_brackets():
    payload = {"custom_channel_vars": {"account_id": "acc", "x y": {"deep": "v"}},
               "tags": ["a", "b"]}
    text = encode_form(payload)
    assert text == ("custom_channel_vars[account_id]=acc&custom_channel_vars[x+y][deep]=v"
                    "&tags[]=a&tags[]=b")
    assert parse_qs(text) == {"custom_channel_vars[account_id]": ["acc"],
                              "custom_channel_vars[x y][deep]": ["v"], "tags[]": ["a", "b"]}


def test_post_form_request():
    request = build_request(make_hook(), {"call_id": "c1", "account_id": "sub"}, user_agent=UA)
    assert request.method == "POST"
    assert request.url == "http://127.0.0.1:9/hook"
    assert request.body == b"call_id=c1&account_id=sub"
    assert dict(request.headers) == {
        "X-Hook-ID": HOOK_ID, "X-Account-ID": ACCOUNT, "User-Agent": UA,
        "Content-Type": "application/x-www-form-urlencoded"}


def test_put_json_is_compact_utf8():
    request = build_request(make_hook(http_verb="put", format="json"),
                            {"caller_id_name": "Café €", "answered": True}, user_agent=UA)
    assert request.method == "PUT"
    assert request.body == '{"caller_id_name":"Café €","answered":true}'.encode("utf-8")
    assert request.headers["Content-Type"] == "application/json"


def test_get_appends_to_an_existing_query_and_drops_the_fragment():
    hook = make_hook(http_verb="get", uri="http://h/x?token=abc&#frag")
    request = build_request(hook, {"call_id": "c 1"}, user_agent=UA)
    assert request.method == "GET"
    assert request.url == "http://h/x?token=abc&call_id=c+1"
    assert request.body == b""
    assert "Content-Type" not in request.headers


def test_get_with_empty_payload_adds_no_question_mark():
    request = build_request(make_hook(http_verb="get", uri="http://h/x"), {}, user_agent=UA)
    assert request.url == "http://h/x"


def test_custom_data_is_merged_over_the_payload():
    hook = make_hook(format="json",
                     custom_data=MappingProxyType({"call_id": "mine", "extra": "1"}))
    request = build_request(hook, {"call_id": "theirs", "other": "2"}, user_agent=UA)
    assert json.loads(request.body) == {"call_id": "mine", "other": "2", "extra": "1"}


def test_account_header_is_the_hooks_own_account():
    # as Kazoo: an include_subaccounts hook hears a sub-account's call, and the
    # header still names the hook's account (the payload's account_id names the call's)
    request = build_request(make_hook(), {"call_id": "c"}, user_agent=UA)
    assert request.headers["X-Account-ID"] == ACCOUNT
    request = build_request(make_hook(include_subaccounts=True),
                            {"call_id": "c", "account_id": "sub"}, user_agent=UA)
    assert request.headers["X-Account-ID"] == ACCOUNT
    assert b"account_id=sub" in request.body


@pytest.mark.parametrize("fields, message", [
    ({"http_verb": "delete"}, "http_verb"),
    ({"format": "xml"}, "format"),
])
def test_bad_hook_fields_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        build_request(make_hook(**fields), {"call_id": "c"}, user_agent=UA)


@pytest.mark.parametrize("fmt", ["form-data", "json"])
def test_unencodable_payload_value_is_a_clear_error(fmt):
    with pytest.raises(ValueError, match="payload"):
        build_request(make_hook(format=fmt), {"call_id": "c", "bad": {"x": object()}},
                      user_agent=UA)


@pytest.mark.parametrize("account", ["acc\r\nX-Evil: 1", "café€"])
def test_a_payload_account_id_unfit_for_a_header_stays_out_of_the_headers(account):
    request = build_request(make_hook(format="json"), {"call_id": "c", "account_id": account},
                            user_agent=UA)
    assert request.headers["X-Account-ID"] == ACCOUNT
    assert all(v.isascii() and v.isprintable() for v in request.headers.values())
    assert json.loads(request.body)["account_id"] == account


def stdlib_json(data) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


@pytest.mark.parametrize("data", [
    {"call_id": "c", "n": 5, "ok": True, "none": None, "nested": {"a": ["x", 1, False]}},
    {"text": "caf\u00e9 \u20ac \U0001f600 \u2028 \x7f", "ctl": "a\x00b\x1fc\n\t\"\\"},
    {1: "int key", "big": 2 ** 70},            # orjson refuses both: the stdlib encodes them
    {"f": 1.5, "list": (1, 2)},
])
def test_json_bodies_are_what_the_standard_library_writes(data):
    assert encode_json(data) == stdlib_json(data)


@pytest.mark.parametrize("data", [{"x": float("nan")}, {"x": [float("inf")]},
                                  {"x": "lone \ud800 surrogate"}, {"x": object()}])
def test_json_refuses_what_the_standard_library_refuses(data):
    with pytest.raises(ValueError, match="payload cannot be encoded as JSON"):
        encode_json(data)


def test_json_bodies_of_real_payloads_match_the_standard_library(captures):
    from eslhook.accounts import AccountDirectory
    from eslhook.mapping import channel_payload
    from eslhook.source.framing import split_frames
    from eslhook.source.parsing import parse_event
    accounts = AccountDirectory(default_account_id=ACCOUNT)
    count = 0
    for frame in split_frames((captures / "json-single-calls.esl").read_bytes()):
        event = parse_event(frame)
        if event is None:
            continue
        payload = channel_payload(event, switch="fs1", accounts=accounts,
                                  channel_variables=("*",))
        if payload is not None:
            assert encode_json(payload) == stdlib_json(payload)
            count += 1
    assert count >= 3


# -- policy -----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, field", [
    ({"schedule_seconds": ()}, "schedule_seconds"),
    ({"schedule_seconds": (1.0, -1.0)}, r"schedule_seconds\[1\]"),
    ({"schedule_seconds": (float("nan"),)}, r"schedule_seconds\[0\]"),
    ({"schedule_seconds": ("1",)}, r"schedule_seconds\[0\]"),
    ({"jitter": 1.0}, "jitter"),
    ({"jitter": -0.1}, "jitter"),
])
def test_retry_policy_is_validated_when_built(kwargs, field):
    with pytest.raises(ValueError, match="RetryPolicy.%s" % field):
        RetryPolicy(**kwargs)


def test_retry_policy_from_config():
    policy = RetryPolicy.from_config(DeliveryConfig(retry_schedule_seconds=(2.0, 7.0), jitter=0.1))
    assert (policy.schedule_seconds, policy.jitter) == ((2.0, 7.0), 0.1)


def test_default_schedule_is_the_issues():
    assert RetryPolicy().schedule_seconds == (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800,
                                              43200)
    assert RetryPolicy().jitter == 0.2


@pytest.mark.parametrize("status, expected", [
    (200, True), (201, True), (204, True), (299, True),
    (199, False), (300, False), (404, False), (500, False), (None, False)])
def test_is_success_is_any_2xx(status, expected):
    assert is_success(Outcome(status, "x")) is expected


@pytest.mark.parametrize("outcome, expected", [
    (Outcome(None, "timeout"), True),
    (Outcome(None, "connection refused"), True),
    (Outcome(None, "connection error"), True),
    (Outcome(500, "bad response code"), True),
    (Outcome(502, "bad response code"), True),
    (Outcome(429, "bad response code"), True),
    (Outcome(302, "bad response code"), True),
    (Outcome(408, "bad response code"), True),
    (Outcome(400, "bad response code"), False),
    (Outcome(401, "bad response code"), False),
    (Outcome(403, "bad response code"), False),
    (Outcome(404, "bad response code"), False),
    (Outcome(410, "bad response code"), False),
    (Outcome(405, "bad response code"), False),
    (Outcome(413, "bad response code"), False),
    (Outcome(422, "bad response code"), False),
    (Outcome(409, "bad response code"), True),
    (Outcome(501, "bad response code"), True),
    (Outcome(None, "invalid payload"), False),
    (Outcome(200, "success"), False),
    (Outcome(None, "invalid request"), False),
])
def test_should_retry(outcome, expected):
    assert should_retry(outcome) is expected


def test_retry_delay_follows_the_schedule_then_stays_at_its_end():
    policy = RetryPolicy(schedule_seconds=(1.0, 5.0, 15.0), jitter=0.0)
    failed = Outcome(500, "bad response code")
    delays = [retry_delay(policy, n, failed, rand=0.3) for n in range(1, 6)]
    assert delays == [1.0, 5.0, 15.0, 15.0, 15.0]


def test_retry_delay_jitter_stays_within_its_fraction():
    policy = RetryPolicy(schedule_seconds=(10.0,), jitter=0.2)
    failed = Outcome(None, "timeout")
    assert retry_delay(policy, 1, failed, rand=0.0) == pytest.approx(8.0)
    assert retry_delay(policy, 1, failed, rand=0.5) == pytest.approx(10.0)
    assert retry_delay(policy, 1, failed, rand=0.999999) == pytest.approx(12.0, abs=1e-4)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_wins_on_429_and_503_clamped_to_an_hour(status):
    policy = RetryPolicy(schedule_seconds=(1.0, 30.0), jitter=0.5)
    assert retry_delay(policy, 1, Outcome(status, "bad response code", retry_after=7.0),
                       rand=0.9) == 7.0
    assert retry_delay(policy, 1, Outcome(status, "bad response code", retry_after=3000.0),
                       rand=0.9) == 3000.0
    assert retry_delay(policy, 1, Outcome(status, "bad response code", retry_after=86400.0),
                       rand=0.9) == 3600.0
    assert retry_delay(policy, 1, Outcome(status, "bad response code", retry_after=0.0),
                       rand=0.9) == 0.0


def test_retry_after_is_ignored_on_other_statuses():
    policy = RetryPolicy(schedule_seconds=(1.0,), jitter=0.0)
    assert retry_delay(policy, 1, Outcome(500, "bad response code", retry_after=20.0),
                       rand=0.5) == 1.0


def test_retry_delay_rejects_attempt_zero():
    with pytest.raises(ValueError, match="attempt_number"):
        retry_delay(RetryPolicy(), 0, Outcome(500, "bad response code"), rand=0.5)


NOW = 1445412480.0          # Wed, 21 Oct 2015 07:28:00 GMT


@pytest.mark.parametrize("header, expected", [
    ("120", 120.0), (" 5 ", 5.0), ("0", 0.0), (None, None), ("-1", None), ("1.5", None),
    ("Wed, 21 Oct 2015 07:30:00 GMT", 120.0), ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),
    ("Wed, 21 Oct 2015 07:30:00", None), ("soon", None), ("", None)])
def test_parse_retry_after_seconds_or_http_date(header, expected):
    assert parse_retry_after(header, NOW) == expected


# -- circuit breaking -------------------------------------------------------------

def test_circuit_opens_after_consecutive_failures_and_lets_one_probe_through():
    policy = CircuitPolicy(failures_to_open=3, open_seconds=30)
    circuit = Circuit()
    for now in (1.0, 2.0):
        circuit = circuit_after(circuit, policy, False, now)
        assert circuit_admits(circuit, now)[0]           # still closed
    circuit = circuit_after(circuit, policy, False, 3.0)
    assert circuit.open_until == 33.0
    assert circuit_admits(circuit, 32.9) == (False, circuit)
    admitted, probing = circuit_admits(circuit, 33.0)
    assert admitted and probing.probing
    assert not circuit_admits(probing, 40.0)[0]          # one probe at a time
    reopened = circuit_after(probing, policy, False, 41.0)
    assert (reopened.open_until, reopened.probing) == (71.0, False)
    assert circuit_after(probing, policy, True, 41.0) == Circuit()


def test_a_success_resets_the_failure_count():
    policy = CircuitPolicy(failures_to_open=2, open_seconds=30)
    circuit = circuit_after(Circuit(), policy, False, 1.0)
    circuit = circuit_after(circuit, policy, True, 2.0)
    circuit = circuit_after(circuit, policy, False, 3.0)
    assert circuit.open_until is None


@pytest.mark.parametrize("outcome, expected", [
    (Outcome(None, "timeout"), True), (Outcome(500, "bad response code"), True),
    (Outcome(429, "bad response code"), True), (Outcome(404, "bad response code"), False)])
def test_which_failures_count_against_a_host(outcome, expected):
    assert host_failed(outcome) is expected


@pytest.mark.parametrize("kwargs, field", [({"failures_to_open": 0}, "failures_to_open"),
                                           ({"open_seconds": -1}, "open_seconds")])
def test_circuit_policy_is_validated(kwargs, field):
    with pytest.raises(ValueError, match="CircuitPolicy.%s" % field):
        CircuitPolicy(**kwargs)


# -- auto-disable -------------------------------------------------------------------

FAILED = Outcome(500, "bad response code")


def failures(policy, times):
    health = HookHealth()
    for now in times:
        health = health_after(health, policy, False, now)
    return health


def test_disable_needs_both_the_silence_and_the_failures():
    policy = DisablePolicy(after_seconds=100, after_failures=3)
    # 3 failures, but the streak is only 50 s old: a short outage does not disable
    assert disable_reason(failures(policy, [0, 25, 50]), policy, FAILED, 50) is None
    # 100 s without success and 3 failures within them: disable
    assert disable_reason(failures(policy, [0, 50, 100]), policy, FAILED, 100) == \
        "too many failed attempts"
    # 100 s without success but only 2 failures in the last 100 s
    assert disable_reason(failures(policy, [0, 1, 2, 150]), policy, FAILED, 150) is None


def test_a_success_ends_the_streak():
    policy = DisablePolicy(after_seconds=100, after_failures=2)
    health = health_after(failures(policy, [0, 90]), policy, True, 95)
    health = health_after(health, policy, False, 150)
    assert disable_reason(health, policy, FAILED, 150) is None
    assert health.streak_start == 150


def test_410_disables_at_once_and_zero_failures_turns_it_off():
    gone = Outcome(410, "bad response code")
    assert disable_reason(HookHealth(), DisablePolicy(), gone, 0) == "gone (410)"
    off = DisablePolicy(after_seconds=0, after_failures=0)
    assert disable_reason(failures(off, range(100)), off, FAILED, 99) is None


def test_kazoos_behaviour_is_a_60_second_window():
    kazoo = DisablePolicy(after_seconds=60, after_failures=6)
    assert disable_reason(failures(kazoo, range(0, 61, 12)), kazoo, FAILED, 60) == \
        "too many failed attempts"


def test_outcome_keeps_at_most_2_kib_of_body():
    outcome = Outcome(500, "bad response code", b"x" * (BODY_EXCERPT_BYTES + 10))
    assert outcome.body_excerpt == b"x" * BODY_EXCERPT_BYTES
