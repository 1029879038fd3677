"""eslhook/supervise.py: the pure decision after a crash, the supervisor on real
greenlets, and a running bridge whose critical greenlet dies (/healthz over real
HTTP) or whose restartable source comes back and delivers again."""

import time

import gevent
import pytest
from helpers import wait_until

from eslhook.health import health
from eslhook.metrics import render
from eslhook.ports import StatusSnapshot
from eslhook.supervise import (
    CRITICAL, DEAD_ACTION, LOGGED_ACTION, RESTART, RESTART_ACTION, TASK, AfterCrash,
    Deadline, Supervision, SupervisionStatus, Supervisor, after_crash)

QUICK = Supervision("restart", first_delay=0.01, max_delay=0.04, healthy_seconds=5,
                    max_quick_crashes=3)


# -- the pure decision --------------------------------------------------------------

def test_a_task_is_logged_and_a_critical_one_is_dead_at_once():
    assert after_crash(TASK, 0, 0.0) == AfterCrash(LOGGED_ACTION)
    assert after_crash(CRITICAL, 0, 1000.0) == AfterCrash(DEAD_ACTION)


def test_quick_crashes_double_the_delay_up_to_the_cap_then_give_up():
    decisions, streak = [], 0
    for _ in range(4):
        decision = after_crash(QUICK, streak, ran_seconds=0.5)
        decisions.append((decision.action, decision.delay))
        streak = decision.streak
    assert decisions == [(RESTART_ACTION, 0.01), (RESTART_ACTION, 0.02),
                         (RESTART_ACTION, 0.04), (DEAD_ACTION, 0.0)]
    assert after_crash(RESTART, 8, 0.0).delay == RESTART.max_delay == 10.0   # capped


def test_a_crash_after_a_healthy_run_starts_the_count_again():
    assert after_crash(QUICK, 3, ran_seconds=5.0) == AfterCrash(RESTART_ACTION, 0.01, 1)


@pytest.mark.parametrize("fields", [{"kind": "sometimes"}, {"kind": "restart", "first_delay": 20},
                                    {"kind": "restart", "max_quick_crashes": 0}])
def test_supervision_is_validated_when_built(fields):
    with pytest.raises(ValueError):
        Supervision(**fields)


def test_a_deadline_is_one_instant_whoever_asks():
    deadline = Deadline.after(0.05)
    assert 0 < deadline.left() <= 0.05 and not deadline.passed
    gevent.sleep(0.06)
    assert deadline.left() == 0.0 and deadline.passed
    with pytest.raises(ValueError):
        Deadline.after(-1)


# -- the supervisor, on real greenlets ---------------------------------------------

def test_a_restartable_loop_is_restarted_and_counted_until_it_runs():
    supervisor, runs = Supervisor(), []

    def flaky():
        runs.append(time.monotonic())
        if len(runs) < 3:
            raise RuntimeError("crash %d" % len(runs))
        gevent.sleep(10)

    handle = supervisor.spawn_supervised("flaky", flaky, how=QUICK)
    assert wait_until(lambda: len(runs) == 3, timeout=2)
    assert dict(supervisor.status().restarts) == {"flaky": 2}
    assert not supervisor.failed.is_set() and supervisor.status().dead == ()
    # backing off: each wait at least its delay (lower bounds only: a loaded
    # machine may wake any of them late)
    assert runs[1] - runs[0] >= QUICK.first_delay
    assert runs[2] - runs[1] >= 2 * QUICK.first_delay
    handle.kill()
    gevent.sleep(0.05)
    assert len(runs) == 3 and dict(supervisor.status().crashes) == {"flaky": 2}


def test_a_loop_that_only_crashes_is_given_up_as_dead():
    supervisor = Supervisor()
    supervisor.spawn_supervised("broken", lambda: 1 / 0, how=QUICK)
    assert supervisor.failed.wait(2)
    (name, why), = supervisor.status().dead
    assert name == "broken" and "gave up after 3 quick crashes" in why
    assert "ZeroDivisionError" in why


def test_a_critical_death_is_recorded_once_and_a_kill_is_no_death(caplog):
    supervisor = Supervisor()
    killed = supervisor.spawn_supervised("sleeper", gevent.sleep, 10, how=CRITICAL)
    killed.kill()
    supervisor.spawn_supervised("flusher", lambda: [].pop(), how=CRITICAL)
    assert supervisor.failed.wait(2)
    assert [name for name, _ in supervisor.status().dead] == ["flusher"]
    deaths = [r for r in caplog.records if "critical greenlet" in r.getMessage()]
    assert len(deaths) == 1 and deaths[0].exc_info is not None     # with its traceback


def test_no_restart_once_the_supervisor_is_closed():
    supervisor, runs = Supervisor(), []
    supervisor.close()
    supervisor.spawn_supervised("once", lambda: runs.append(1) or 1 / 0, how=QUICK)
    gevent.sleep(0.1)
    assert runs == [1] and dict(supervisor.status().crashes) == {"once": 1}


# -- /healthz and /metrics from a snapshot ------------------------------------------

def test_a_dead_critical_greenlet_is_503_failed_and_named():
    snapshot = StatusSnapshot(supervision=SupervisionStatus(
        dead=(("spool flusher", "RuntimeError('x')"),), restarts=(("switch fs1", 2),),
        crashes=(("spool flusher", 1), ("switch fs1", 2))))
    status, body = health(snapshot, now=0.0)
    assert status == 503 and body["status"] == "failed"
    assert body["dead"] == [{"greenlet": "spool flusher", "reason": "RuntimeError('x')"}]
    text = render(snapshot)[1].decode()
    assert "eslhook_critical_greenlets_dead 1.0" in text
    assert 'eslhook_greenlet_restarts_total{greenlet="switch fs1"} 2.0' in text
    assert health(StatusSnapshot(), now=0.0)[0] == 200


# -- a running bridge ------------------------------------------------------------------

def test_a_dead_spool_flusher_turns_healthz_503_naming_it(ops_world):
    w = ops_world()
    w.write_hooks([w.hook("/all")])
    w.start()
    spool_db = w.bridge.delivery._store._db

    def broken_commit(batch):      # a bug in the commit path: not a disk error
        raise RuntimeError("commit path bug")

    spool_db.apply_what_fits = broken_commit
    w.call()                       # its deliveries are to be committed: the flusher dies
    assert w.bridge.supervisor.failed.wait(5)
    response = w.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failed"
    assert body["dead"][0]["greenlet"] == "spool flusher"
    assert "commit path bug" in body["dead"][0]["reason"]
    assert "eslhook_critical_greenlets_dead 1.0" in w.get("/metrics").text


def test_a_crashed_source_is_restarted_and_the_pipeline_delivers_again(ops_world):
    w = ops_world()
    w.write_hooks([w.hook("/all")])
    source = w.bridge.sources[0]
    connected = source.on_connected

    def fails_once(src, conn):     # a bug on the connect path, the first time only
        source.on_connected = connected
        raise RuntimeError("on_connected bug")

    source.on_connected = fails_once
    w.start(subscribers=False)
    assert wait_until(lambda: source.state.connects == 2 and source.state.connected, timeout=5)
    assert w.fakes["fs1"].wait_for_subscribers(1, timeout=5)
    call_id = w.call()
    w.receiver.wait_for(3, timeout=5)
    assert {r.json["call_id"] for r in w.receiver.requests} == {call_id}
    assert w.get("/healthz").status_code == 200
    text = w.get("/metrics").text
    assert 'eslhook_greenlet_restarts_total{greenlet="switch fs1"} 1.0' in text
    assert "eslhook_critical_greenlets_dead 0.0" in text
