"""Reconciliation decisions, apart from any I/O or timing."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eslhook.calls import OpenCall, OpenCalls
from eslhook.config import ReconcileConfig
from eslhook.reconcile import destroy_payload, parse_channels, plan, row_event

CORE = "f8136d9c-bd7c-4a9e-b280-42f4dd7310ac"


MARK = 5              # the epoch started when the first read was sent
SEEN_BEFORE = 100.0   # the first read's sending time less confirm_seconds


def open_call(call_id, core=CORE, epoch=MARK - 1, first_seen=SEEN_BEFORE - 1):
    return OpenCall(call_id, "fs1", core, {"call_id": call_id, "switch": "fs1",
                                            "account_id": "a" * 32, "call_direction": "inbound"},
                    epoch=epoch, first_seen=first_seen)


def judge(calls, first, second, ended=(), core_uuid=CORE):
    return plan(calls, ended, first, second, core_uuid, mark=MARK, seen_before=SEEN_BEFORE)


def rows(*uuids):
    return {u: {"uuid": u, "direction": "inbound", "name": "sofia/internal/x",
                "callstate": "ACTIVE", "created_epoch": "1795908347"} for u in uuids}


def test_the_idle_answer_has_no_rows_key(captures):
    idle = (captures / "api-show-channels-as-json-idle.raw").read_bytes().split(b"\n\n")[-1]
    assert parse_channels(idle.decode()) == {}
    busy = (captures / "api-show-channels-as-json.raw").read_bytes().split(b"\n\n")[-1]
    assert set(parse_channels(busy.decode())) == {
        "cfca46c9-87c3-4a16-adde-c01e9abd390c", "84f6b423-99b1-4e67-8ff0-2769d67252be",
        "f9b94f07-c861-4d70-9dc9-bd327a63ebef"}


@pytest.mark.parametrize("text", ["-ERR no_such_command Command not found!\n", "[]", "{}"])
def test_anything_else_is_refused(text):
    with pytest.raises(ValueError):
        parse_channels(text)


def test_a_call_is_over_only_when_absent_from_both_reads():
    calls = {c: open_call(c) for c in ("gone", "lagging", "alive")}
    todo = judge(calls, first=rows("lagging", "alive"), second=rows("alive"))
    assert [(c.call_id, cause) for c, cause in todo.destroy] == [("gone", "UNKNOWN")]
    assert todo.create == ()


def test_a_channel_is_new_only_when_present_in_both_reads():
    todo = judge({}, first=rows("steady", "just-gone"), second=rows("steady", "just-born"))
    assert [row["uuid"] for row in todo.create] == ["steady"]
    assert todo.destroy == ()


def test_a_new_core_uuid_closes_every_call_of_the_old_switch_at_once():
    calls = {"old": open_call("old", core="old-core"), "current": open_call("current")}
    todo = judge(calls, first=rows("old", "current"), second=rows("old", "current"))
    assert [(c.call_id, cause) for c, cause in todo.destroy] == [("old", "SWITCH_RESTARTED")]


def test_nothing_to_do_when_beliefs_and_switch_agree():
    calls = {c: open_call(c) for c in ("a", "b")}
    todo = judge(calls, first=rows("a", "b"), second=rows("a", "b"))
    assert not todo


def test_reconcile_does_not_close_a_call_first_seen_after_the_first_read_was_sent():
    # Its CREATE came after the read went out (in the same write as the answer,
    # say): neither answer could list it.  Nor is a call with any event since.
    calls = {"new": open_call("new", epoch=MARK), "busy": open_call("busy", epoch=MARK + 1),
             "gone": open_call("gone")}
    todo = judge(calls, first=rows(), second=rows())
    assert [(c.call_id, cause) for c, cause in todo.destroy] == [("gone", "UNKNOWN")]


def test_reconcile_does_not_close_a_call_seen_too_recently_for_the_list_to_show_it():
    # Seen less than confirm_seconds before the first read: the list may not show
    # it yet in either read, and it may have ended between them with its hangup
    # still on the way.  The next run judges it.
    calls = {"recent": open_call("recent", first_seen=SEEN_BEFORE + 0.5),
             "settled": open_call("settled", first_seen=SEEN_BEFORE)}
    todo = judge(calls, first=rows(), second=rows())
    assert [c.call_id for c, _ in todo.destroy] == ["settled"]


def test_reconcile_does_not_find_open_a_channel_that_ended_recently():
    # Its hangup came while the reads were in flight (or just before): the list
    # still shows it for a moment.
    todo = judge({}, first=rows("ended", "born-away"), second=rows("ended", "born-away"),
                 ended={"ended": 12.5})
    assert [row["uuid"] for row in todo.create] == ["born-away"]


def test_a_switch_restart_closes_only_calls_known_before_the_first_read():
    calls = {"old": open_call("old", core="old-core"),
             "racing": open_call("racing", core="old-core", epoch=MARK)}
    todo = judge(calls, first=rows(), second=rows())
    assert [(c.call_id, cause) for c, cause in todo.destroy] == [("old", "SWITCH_RESTARTED")]


def test_epochs_tell_calls_seen_before_a_mark_from_calls_seen_after(tmp_path):
    now = [0.0]
    calls = OpenCalls(tmp_path / "open-calls.json", clock=lambda: now[0],
                      remember_ended_seconds=60)
    base = {"switch": "fs1", "account_id": "a" * 32}
    calls.observe({**base, "call_id": "before", "hook_event": "channel_create"}, CORE)
    calls.observe({**base, "call_id": "quiet", "hook_event": "channel_create"}, CORE)
    calls.observe({**base, "call_id": "ended", "hook_event": "channel_create"}, CORE)
    mark = calls.mark("fs1")
    calls.observe({**base, "call_id": "before", "hook_event": "channel_answer"}, CORE)
    calls.observe({**base, "call_id": "after", "hook_event": "channel_create"}, CORE)
    calls.observe({**base, "call_id": "ended", "hook_event": "channel_destroy"}, CORE)
    calls.observe({**base, "call_id": "never-seen", "hook_event": "channel_destroy"}, CORE)
    epochs = {c.call_id: c.epoch >= mark for c in calls.of_switch("fs1").values()}
    assert epochs == {"before": True, "quiet": False, "after": True}
    assert set(calls.ended_of("fs1")) == {"ended", "never-seen"}
    assert calls.is_known("fs1", "ended") and not calls.is_known("fs1", "other")
    # Ended calls are forgotten once older than remember_ended_seconds; epochs
    # mean nothing to another process, so loaded calls count as known before any read.
    now[0] = 61.0
    calls.observe({**base, "call_id": "later", "hook_event": "channel_destroy"}, CORE)
    assert set(calls.ended_of("fs1")) == {"later"}
    calls.flush()
    again = OpenCalls(tmp_path / "open-calls.json")
    again.load()
    assert {c.call_id: c.epoch for c in again.of_switch("fs1").values()} == {
        "before": 0, "quiet": 0, "after": 0}


def test_a_synthetic_destroy_keeps_what_was_known_and_says_it_is_synthetic():
    payload = destroy_payload(open_call("c1"), "UNKNOWN", now=1795908400.7)
    assert payload == {"call_id": "c1", "switch": "fs1", "account_id": "a" * 32,
                       "call_direction": "inbound", "hook_event": "channel_destroy",
                       "hangup_cause": "UNKNOWN", "reconciled": True,
                       "timestamp": 1795908400 + 62167219200,
                       "event_id": CORE + "-reconciled-destroy-c1"}


def test_a_row_stands_for_an_event_the_mapping_understands():
    event = row_event(rows("u1")["u1"] | {"cid_num": "+1555", "dest": "1000"}, CORE,
                      "CHANNEL_CREATE")
    assert event["Unique-ID"] == "u1" and event["Caller-Destination-Number"] == "1000"
    assert event["Event-Date-Timestamp"] == "1795908347000000"


def test_open_calls_follow_create_answer_destroy_and_survive_a_restart(tmp_path):
    path = tmp_path / "open-calls.json"
    calls = OpenCalls(path)
    base = {"switch": "fs1", "call_id": "c1", "account_id": "a" * 32}
    calls.observe({**base, "hook_event": "channel_create"}, CORE)
    calls.observe({**base, "hook_event": "channel_answer", "to": "1000"}, CORE)
    calls.observe({**base, "call_id": "c2", "hook_event": "channel_create"}, CORE)
    calls.observe({**base, "call_id": "c2", "hook_event": "channel_destroy"}, CORE)
    calls.flush()
    on_disk = json.loads(path.read_text())
    assert [c["call_id"] for c in on_disk["switches"]["fs1"]] == ["c1"]
    again = OpenCalls(path)
    again.load()
    call = again.of_switch("fs1")["c1"]
    assert call.answered and call.core_uuid == CORE and call.fields["to"] == "1000"


def test_an_unreadable_table_starts_empty_and_says_so(tmp_path, caplog):
    path = tmp_path / "open-calls.json"
    path.write_text("{not json")
    calls = OpenCalls(path)
    calls.load()
    assert len(calls) == 0
    assert "unreadable" in caplog.text


def test_settings_reject_nonsense():
    with pytest.raises(ValueError, match="interval_seconds"):
        ReconcileConfig(interval_seconds=0)


# -- the rule against a simulated busy switch (times in ms) ---------------------------
#
# A switch whose events reach eslhook up to BACKLOG late (in order), whose
# answers overtake queued events, and whose list shows a new channel up to
# LAG_NEW late and a gone one up to 3 x CONFIRM too long (eslhook remembers
# an end 4 x CONFIRM at least).  The two reads are CONFIRM apart.  Whatever the timings, as long as BACKLOG and LAG_NEW stay
# below CONFIRM: nothing lost means nothing synthesised, and a lost event
# is repaired only for the call it belonged to.

CONFIRM = 100
SENT_FIRST = 1000


@st.composite
def busy_switches(draw):
    calls = draw(st.lists(st.tuples(st.integers(0, 1400), st.integers(1, 1500) | st.none()),
                          max_size=25))
    events = sorted([(created, "channel_create", n) for n, (created, _) in enumerate(calls)]
                    + [(created + length, "channel_destroy", n)
                       for n, (created, length) in enumerate(calls) if length is not None])
    delays = draw(st.lists(st.integers(0, CONFIRM - 1), min_size=len(events),
                           max_size=len(events)))
    lost = draw(st.sets(st.integers(0, max(len(events) - 1, 0))) if events else st.just(set()))
    timing = draw(st.fixed_dictionaries({
        "lag_new": st.integers(0, CONFIRM - 1), "lag_gone": st.integers(0, 300),
        "answer": st.integers(0, 10), "reply": st.integers(0, 10), "plan": st.integers(0, 20)}))
    return calls, events, delays, lost, timing


def simulate(calls, events, delays, lost, timing):
    """(plan, (calls whose CREATE / hangup was lost), (calls that must be closed / created))."""
    delivered, previous = [], 0
    for (at, kind, n), delay in zip(events, delays):
        previous = max(previous, at + delay)          # in order: a backlog, not a shuffle
        delivered.append((previous, kind, n))
    answered_first = SENT_FIRST + timing["answer"]
    sent_second = answered_first + timing["reply"] + CONFIRM
    answered_second = sent_second + timing["answer"]
    planned = answered_second + timing["reply"] + timing["plan"]

    def listed(when):
        return rows(*("c%d" % n for n, (created, length) in enumerate(calls)
                      if created + timing["lag_new"] <= when
                      and (length is None or when < created + length + timing["lag_gone"])))

    now = [0]
    # remembered as long as Reconciler makes it at least (4 x confirm)
    table = OpenCalls(clock=lambda: now[0], remember_ended_seconds=4 * CONFIRM)
    mark = None
    for index, (when, kind, n) in enumerate(delivered):
        if mark is None and when >= SENT_FIRST:
            now[0] = SENT_FIRST
            mark = table.mark("fs1")
        now[0] = when
        if when <= planned and index not in lost:
            table.observe({"switch": "fs1", "call_id": "c%d" % n, "hook_event": kind}, CORE)
    if mark is None:
        mark = table.mark("fs1")
    first, second = listed(answered_first), listed(answered_second)
    todo = plan(table.of_switch("fs1"), table.ended_of("fs1"), first, second, CORE,
                mark=mark, seen_before=SENT_FIRST - CONFIRM)
    lost_creates = {"c%d" % events[i][2] for i in lost if events[i][1] == "channel_create"}
    lost_ends = {"c%d" % events[i][2] for i in lost if events[i][1] == "channel_destroy"}
    # What must be repaired: a call heard of only before the first read was
    # sent, first CONFIRM before it, whose hangup was lost, gone from both lists; a call whose CREATE was
    # lost, in both lists, whose hangup has not come.
    heard = {}
    for index, (when, kind, n) in enumerate(delivered):
        if index not in lost and when <= planned:
            heard.setdefault("c%d" % n, []).append((when, kind))
    must_close = {c for c in lost_ends if c in heard and c not in first and c not in second
                  and all(when < SENT_FIRST for when, _ in heard[c])
                  and heard[c][0][0] <= SENT_FIRST - CONFIRM}
    must_create = {c for c in lost_creates & set(first) & set(second) if c not in heard}
    return todo, (lost_creates, lost_ends), (must_close, must_create)


@settings(max_examples=200, deadline=None)
@given(busy_switches())
def test_reconcile_on_a_simulated_busy_switch_invents_nothing(world):
    calls, events, delays, _, timing = world
    todo, _, _ = simulate(calls, events, delays, set(), timing)
    assert not todo


@settings(max_examples=200, deadline=None)
@given(busy_switches())
def test_reconcile_on_a_simulated_busy_switch_repairs_what_was_lost_and_only_that(world):
    todo, (lost_creates, lost_ends), (must_close, must_create) = simulate(*world)
    closed, created = {c.call_id for c, _ in todo.destroy}, {r["uuid"] for r in todo.create}
    assert must_close <= closed <= lost_ends
    assert must_create <= created <= lost_creates
