"""The lane state machine (delivery.lanes) and host slots (delivery.hosts), apart from
timing: each transition and what it asks the shell to do."""

from eslhook.delivery.hosts import ADMITTED, PARKED, QUEUED, Hosts
from eslhook.delivery.lanes import (
    ACTIVE, HELD, LOAD, LOADING, NOTHING, SCHEDULE, WAITING, Lanes)
from eslhook.delivery.policy import CircuitPolicy, Outcome
from eslhook.delivery.rows import Delivery
from eslhook.hooks.model import Hook

HOOK = Hook(id="0123456789abcdef0123456789abcdef", account_id="4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5",
            name="t", uri="http://127.0.0.1:9/", hook="all")
_ids = iter(range(1, 10_000))


def delivery(call_id="c1", hook=HOOK) -> Delivery:
    n = next(_ids)
    return Delivery(n, hook, {"call_id": call_id}, call_id, "e%d" % n, "channel_create",
                    "w%d" % n, 1000.0)


def test_submit_to_a_new_lane_goes_to_memory_and_is_scheduled_once():
    lanes = Lanes()
    first, second = delivery(), delivery()
    lane = lanes.submit(first)
    assert lane is not None and lanes.schedule(lane) is True
    assert lanes.submit(second) is lane and lanes.schedule(lane) is False   # already ready
    assert list(lane.items) == [first, second] and lanes.resident == 2


def test_attempt_started_then_finished_moves_to_the_next_head_then_forgets_the_lane():
    lanes = Lanes()
    first, second = delivery(), delivery()
    lane = lanes.submit(first)
    lanes.submit(second)
    lanes.schedule(lane)
    assert lanes.head(lane.key) == (lane, first)
    assert lanes.finished(lane, first) == SCHEDULE
    assert lanes.head(lane.key) == (lane, second)
    assert lanes.finished(lane, second) == NOTHING
    assert lanes.get(lane.key) is None and lanes.resident == 0


def test_a_retry_puts_the_lane_in_the_spool_and_later_submits_follow_it_there():
    lanes = Lanes()
    head, later = delivery(), delivery()
    lane = lanes.submit(head)
    assert lanes.wait(lane, due=2000.0) is True          # the shell starts a timer
    assert (lane.state, lane.due, lane.more, lanes.resident) == (WAITING, 2000.0, True, 0)
    assert lanes.submit(later) is None                   # spool only: read back in order
    assert lanes.is_due(lane) is True


def reading_after_a_retry(head: Delivery):
    """(lanes, lane): the lane's head failed, its retry came due, the read began."""
    lanes = Lanes()
    lane = lanes.submit(head)
    lanes.wait(lane, due=2000.0)
    lanes.loading(lane)
    lanes.reading(lane)
    return lanes, lane


def test_retry_due_reads_back_then_schedules_what_was_fresh():
    head = delivery()
    lanes, lane = reading_after_a_retry(head)
    assert lanes.read_still_wanted(lane) is True
    assert lanes.loaded(lane, [head], batch_full=False) == SCHEDULE
    assert (lane.state, list(lane.items), lane.more) == (ACTIVE, [head], False)


def test_a_submit_during_a_read_makes_the_lane_read_again_after():
    lanes, lane = reading_after_a_retry(delivery())
    assert lanes.submit(delivery()) is None              # arrives while the read runs
    assert lanes.loaded(lane, [], batch_full=False) == LOAD


def test_expiry_of_everything_read_ends_the_lane_or_reads_the_next_batch():
    lanes, lane = reading_after_a_retry(delivery())
    assert lanes.loaded(lane, [], batch_full=True) == LOAD        # more rows behind these
    lanes.reading(lane)
    assert lanes.loaded(lane, [], batch_full=False) == NOTHING    # all expired: lane ends
    assert lanes.get(lane.key) is None


def test_hook_disabled_holds_every_lane_and_new_ones_then_enabled_resumes_them():
    lanes = Lanes()
    a, b = lanes.submit(delivery("a")), lanes.submit(delivery("b"))
    lanes.wait(b, due=5.0)
    assert set(lanes.disable(HOOK.id)) == {a, b}
    assert lanes.disable(HOOK.id) is None                # once only
    assert (a.state, b.state, lanes.resident) == (HELD, HELD, 0)
    assert lanes.wait(a, due=9.0) is False               # a held lane gets no timer
    assert lanes.submit(delivery("c")) is None           # a new lane of it is held too
    assert lanes.get((HOOK.id, "c")).state == HELD
    assert lanes.held_hook_ids() == {HOOK.id}
    assert set(lanes.resume(HOOK.id)) == {a, b, lanes.get((HOOK.id, "c"))}
    assert HOOK.id not in lanes.held_hooks


def test_a_held_read_is_abandoned_and_a_gone_hook_forgets_the_lane():
    lanes = Lanes()
    lane = lanes.submit(delivery())
    lanes.loading(lane)
    lanes.reading(lane)
    lanes.hold(lane)                                     # disabled while the read ran
    assert lanes.read_still_wanted(lane) is False and lane.more is True
    lanes.forget(lane)
    assert lanes.get(lane.key) is None


def test_a_lane_not_active_is_not_attempted():
    lanes = Lanes()
    lane = lanes.submit(delivery())
    lanes.schedule(lane)
    lanes.wait(lane, due=1.0)
    assert lanes.head(lane.key) is None and lane.scheduled is False


def test_stopping_schedules_nothing_and_starts_no_timer():
    lanes = Lanes()
    lane = lanes.submit(delivery())
    lanes.stopping = True
    assert lanes.schedule(lane) is False
    assert lanes.wait(lane, due=1.0) is False and lanes.is_due(lane) is False


def test_start_resumes_a_spooled_lane_ahead_of_what_was_submitted_before_start():
    lanes = Lanes()
    lane = lanes.submit(delivery())
    assert lanes.resumed(lane.key) is lane
    assert (list(lane.items), lane.more, lanes.resident) == ([], True, 0)


def test_replayed_rows_load_an_idle_lane_and_wait_behind_a_busy_one():
    lanes = Lanes()
    new = lanes.spool_arrival((HOOK.id, "r"))
    assert new is not None and new.more
    busy = lanes.submit(delivery("b"))
    lanes.schedule(busy)
    assert lanes.spool_arrival(busy.key) is None and busy.more
    lanes.disable("f" * 32)
    assert lanes.spool_arrival(("f" * 32, "x")) is None
    assert lanes.get(("f" * 32, "x")).state == HELD


# -- host slots and the circuit ---------------------------------------------------------

def test_host_slots_queue_beyond_the_limit_and_hand_the_slot_on():
    hosts = Hosts(CircuitPolicy(failures_to_open=5, open_seconds=30.0), max_per_host=1)
    assert hosts.admit("h", "k1", 0.0)[0] == ADMITTED
    assert hosts.admit("h", "k2", 0.0)[0] == QUEUED
    assert hosts.release("h") == "k2"


def test_an_open_circuit_parks_lanes_and_sends_the_queued_ones_back():
    hosts = Hosts(CircuitPolicy(failures_to_open=1, open_seconds=30.0), max_per_host=1)
    hosts.admit("h", "k1", 0.0)
    hosts.admit("h", "k2", 0.0)
    assert hosts.settled("h", Outcome(500, "bad response code"), 1.0) == ["k2"]
    assert hosts.release("h") is None                              # k1's attempt ended
    verdict, circuit = hosts.admit("h", "k3", 2.0)
    assert verdict == PARKED and circuit.open_until == 31.0
    assert hosts.park_delay(circuit, 2.0, rand=0.0) == 29.0
    assert hosts.admit("h", "k3", 31.0)[0] == ADMITTED            # the probe
    verdict, probing = hosts.admit("h", "k4", 31.0)
    assert verdict == PARKED and hosts.park_delay(probing, 31.0, rand=0.0) == 15.0


def test_a_refusal_and_an_internal_error_leave_the_circuit_closed():
    hosts = Hosts(CircuitPolicy(failures_to_open=1, open_seconds=30.0), max_per_host=4)
    for reason in ("refused by network policy", "internal error"):
        assert hosts.settled("h", Outcome(None, reason), 1.0) == []
    assert hosts.admit("h", "k", 2.0)[0] == ADMITTED
