"""What the operator console needs from the API, over real HTTP against a running
Bridge (fake switch over TCP): ``GET /v2/accounts``, the live event stream (Server-
Sent Events: account-scoped, token in the query and never logged, bounded, heart-
beats, ended by shutdown) and the static ``/ui/`` files with their security headers.
The browser itself is driven in tests/test_console.py."""

from __future__ import annotations

import json
import logging
import uuid
from html.parser import HTMLParser
from pathlib import Path

import gevent
import pytest
import requests

from eslhook.live import EventTap, TapLimits
from eslhook.api.stream import sse_frames

ACME = "a0000000000000000000000000000001"
CHILD = "a0000000000000000000000000000002"
OTHER = "c0000000000000000000000000000003"
ACME_REALM, OTHER_REALM = "acme.example.com", "other.example.com"
TOKENS = {"admin": "console-admin-token-0123456789", "acme": "console-acme-token-0123456789",
          "child": "console-child-token-0123456789", "other": "console-other-token-012345678"}
ACCOUNTS = [
    {"id": ACME, "name": "Acme", "realms": [ACME_REALM], "auth_tokens": [TOKENS["acme"]]},
    {"id": CHILD, "name": "Acme East", "parent_id": ACME, "realms": ["east.acme.example.com"],
     "auth_tokens": [TOKENS["child"]]},
    {"id": OTHER, "name": "Other", "realms": [OTHER_REALM], "auth_tokens": [TOKENS["other"]]},
]
API = {"listen": "127.0.0.1:0", "admin_tokens": [TOKENS["admin"]]}
UI = Path(__file__).resolve().parent.parent / "eslhook" / "ui"


def console_world(world, tap: EventTap | None = None, **api):
    made = world(accounts=ACCOUNTS, extra={"api": {**API, **api}}, heartbeat_seconds=None)
    if tap is not None:
        made.bridge.tap = tap          # before start: the API is given the bridge's tap
    return made.start()


def stream_url(made, account: str, token: str) -> str:
    return made.url("/v2/accounts/%s/events/stream?auth_token=%s" % (account, token))


def read_sse(reply: requests.Response, until, timeout: float = 5.0) -> list[tuple[str, str]]:
    """(event, data) frames (comments as ("comment", text)) until ``until(frames)``;
    the reply's lines are read by one iterator across calls (it buffers)."""
    frames: list[tuple[str, str]] = []
    event, data = "message", []
    if not hasattr(reply, "sse_lines"):
        reply.sse_lines = reply.iter_lines(decode_unicode=True)   # type: ignore[attr-defined]
    with gevent.Timeout(timeout, AssertionError("stream: %r" % frames)):
        for line in reply.sse_lines:    # type: ignore[attr-defined]
            if line.startswith(":"):
                frames.append(("comment", line[1:].strip()))
            elif line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: "):
                data.append(line[len("data: "):])
            elif line == "" and data:
                frames.append((event, "\n".join(data)))
                event, data = "message", []
            if until(frames):
                return frames
    raise AssertionError("stream ended: %r" % frames)


def channel_events(frames) -> list[dict]:
    return [json.loads(data) for event, data in frames if event == "channel"]


def test_accounts_lists_what_each_token_reaches_with_names_and_parents(world):
    made = console_world(world)

    def ids(token: str) -> list[tuple[str, str, str | None]]:
        reply = made.get("/v2/accounts", headers={"X-Auth-Token": TOKENS[token]})
        assert reply.status_code == 200, reply.text
        return [(a["id"], a["name"], a["parent_id"]) for a in reply.json()["data"]]

    assert ids("admin") == [(ACME, "Acme", None), (CHILD, "Acme East", ACME),
                            (OTHER, "Other", None)]
    assert ids("acme") == [(ACME, "Acme", None), (CHILD, "Acme East", ACME)]
    assert ids("child") == [(CHILD, "Acme East", ACME)]
    assert made.get("/v2/accounts").status_code == 401
    assert made.get("/v1/accounts", headers={"X-Auth-Token": "nope"}).status_code == 401


def test_stream_carries_the_accounts_calls_as_mapped_and_only_them(world):
    made = console_world(world)
    assert requests.get(stream_url(made, ACME, TOKENS["other"]), timeout=5).status_code == 403
    with requests.get(stream_url(made, ACME, TOKENS["acme"]), stream=True, timeout=5) as reply:
        assert reply.status_code == 200
        assert reply.headers["Content-Type"].startswith("text/event-stream")
        assert reply.headers["Cache-Control"] == "no-store"
        read_sse(reply, lambda frames: frames)        # subscribed: the first comment came
        other, acme = str(uuid.uuid4()), str(uuid.uuid4())
        made.call(other, domain_name=OTHER_REALM, caller_id_number="+15550000001")
        made.call(acme, domain_name=ACME_REALM, caller_id_number="+15551234567")
        frames = read_sse(reply, lambda frames: len(channel_events(frames)) >= 3)
    events = channel_events(frames)
    assert [(e["hook_event"], e["call_id"]) for e in events] == [
        ("channel_create", acme), ("channel_answer", acme), ("channel_destroy", acme)]
    assert events[-1]["hangup_cause"] == "NORMAL_CLEARING"
    assert events[0]["account_id"] == ACME and events[0]["switch"] == "fs1"
    assert "custom_channel_vars" not in events[0]      # the tail's view, not the payload


def test_the_query_token_is_never_logged(world, caplog):
    caplog.set_level(logging.DEBUG)
    made = console_world(world, abuse_log_interval_seconds=0.1)
    with requests.get(stream_url(made, ACME, TOKENS["acme"]), stream=True, timeout=5) as reply:
        made.call(str(uuid.uuid4()), domain_name=ACME_REALM)
        read_sse(reply, lambda frames: len(channel_events(frames)) >= 3)
    wrong = "console-wrong-token-9876543210"
    assert requests.get(stream_url(made, ACME, wrong), timeout=5).status_code == 401

    def logged() -> str:   # eslhook's own lines (the test's HTTP client logs its requests)
        return "\n".join(record.getMessage() + str(record.exc_text or "")
                         for record in caplog.records if record.name.startswith("eslhook"))

    with gevent.Timeout(5, AssertionError("no abuse summary line: %s" % logged())):
        while "authentications failed" not in logged():
            gevent.sleep(0.05)
    made.close()
    made.close = lambda: None
    assert TOKENS["acme"] not in logged() and wrong not in logged()


def test_streams_are_bounded_beat_and_end_when_eslhook_stops(world):
    tap = EventTap(TapLimits(max_streams=2, heartbeat_seconds=0.1))
    made = console_world(world, tap)
    url = stream_url(made, ACME, TOKENS["admin"])
    first = requests.get(url, stream=True, timeout=5)
    second = requests.get(url, stream=True, timeout=5)
    assert first.status_code == second.status_code == 200
    third = requests.get(url, timeout=5)
    assert third.status_code == 503 and third.headers["Retry-After"] == "10"
    beats = read_sse(first, lambda frames: frames.count(("comment", "heartbeat")) >= 2)
    assert beats[0] == ("comment", "connected")
    second.close()          # the server notices at its next heartbeat write
    with gevent.Timeout(5, AssertionError("the closed stream still counts")):
        while tap.streams > 1:
            gevent.sleep(0.05)
    made.bridge.stop(drain_seconds=5)
    frames = read_sse(first, lambda frames: any(event == "end" for event, _ in frames))
    assert frames[-1][0] == "end" and tap.streams == 0
    with gevent.Timeout(3, AssertionError("the connection outlived its stream")):
        assert list(first.sse_lines) == []      # type: ignore[attr-defined]
    first.close()


def test_a_subscriber_that_falls_behind_loses_events_counted_never_blocking():
    tap = EventTap(TapLimits(queue_size=3, heartbeat_seconds=0.05))
    acme, other = tap.subscribe(ACME), tap.subscribe(OTHER)
    assert acme is not None and other is not None
    for n in range(5):      # the reader's side: publish returns at once, full queue or not
        tap.publish({"hook_event": "channel_create", "call_id": str(n), "account_id": ACME})
    tap.publish({"hook_event": "webhook_disabled", "account_id": ACME})  # not a channel event
    frames = sse_frames(acme, tap.limits.heartbeat_seconds)
    assert next(frames).startswith(b"retry: ")
    chunk = next(frames).decode()
    assert [json.loads(line[len("data: "):])["call_id"] for line in chunk.splitlines()
            if line.startswith("data: {\"hook_event\"")] == ["0", "1", "2"]
    assert 'event: dropped\ndata: {"dropped": 2}' in chunk
    assert next(frames) == b": heartbeat\n\n"
    assert other.wait(0.01) is not None and other.dropped == 0
    tap.close()
    assert next(frames).startswith(b"event: end") and tap.subscribe(ACME) is None


class _Markup(HTMLParser):
    """What the CSP would block in a page: inline scripts, styles and handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "style" or "style" in names or any(n.startswith("on") for n in names):
            self.inline.append(tag)
        if tag == "script" and "src" not in names:
            self.inline.append("inline script")


def test_console_files_are_served_with_a_strict_policy(world):
    made = console_world(world)
    page = made.get("/ui/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'self'") and "unsafe" not in policy
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    script = made.get("/ui/console.js")
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert script.text == (UI / "console.js").read_text()
    assert made.get("/ui/console.css").headers["Content-Type"].startswith("text/css")
    for missing in ("/ui/nothing.js", "/ui/%2e%2e%2fsetup.cfg", "/ui/../setup.cfg"):
        assert made.get(missing).status_code == 404, missing
    moved = made.get("/ui", allow_redirects=False)
    assert moved.status_code == 301 and moved.headers["Location"].endswith("/ui/")
    markup = _Markup()
    markup.feed(page.text)
    assert markup.inline == []
    assert "innerHTML" not in script.text and "insertAdjacentHTML" not in script.text


@pytest.mark.parametrize("path", ["/v2/accounts", "/v2/accounts/{account_id}/events/stream"])
def test_console_endpoints_are_in_the_openapi_document(world, path):
    made = console_world(world)
    document = made.get("/openapi.json").json()
    assert "get" in document["paths"][path]
