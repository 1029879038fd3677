"""scripts/bench_fleet.py's whole-process scenarios (throughput, failover, db-away).

Each builds a Fleet (fleet_parts.py) on a fresh database of the run's one
PostgreSQL, lets the switch send, waits (bounded) for the receiver, then judges the
arrivals against what the switch sent (fleet_analysis.py) and prints RESULT lines.
Every instance keeps its JSON log under the run's directory (printed at the end).
"""

from __future__ import annotations

import os
import re
import time
from argparse import Namespace
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlparse

import fleet_analysis as analysis
from fleet_parts import Fleet
from pg_support import LocalPostgres  # type: ignore[import-not-found]

POLL_SECONDS = 1.0


def verdict_ok(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def start_fleet(work: Path, server: LocalPostgres, label: str, names: list[str],
                count: int, rate: float) -> Fleet:
    fleet = Fleet(work, server, label)
    fleet.start_switch(count, rate, subscribers=len(names))
    for name in names:
        fleet.write_config(name)
    fleet.import_hooks(names[0])
    for name in names:
        fleet.start_instance(name)
    fleet.wait_healthy(names)
    return fleet


def wait_delivered(fleet: Fleet, count: int, timeout: float,
                   tick: Callable[[], None] = lambda: None) -> analysis.Verdict:
    """Until the switch sent ``count`` and each sent event arrived, or ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        tick()
        sent = analysis.load_sent(fleet.sent)
        done = len(fleet.sent.read_text().splitlines()) >= count if fleet.sent.exists() else False
        if done and fleet.arrived() >= len(sent):
            verdict = analysis.judge(sent, analysis.load_arrivals(fleet.arrived_path))
            if not verdict.lost or time.monotonic() >= deadline:
                return verdict
        elif time.monotonic() >= deadline:
            return analysis.judge(sent, analysis.load_arrivals(fleet.arrived_path))
        time.sleep(POLL_SECONDS)


def sleep_until(moment: float, tick: Callable[[], None] = lambda: None) -> None:
    while (left := moment - time.monotonic()) > 0:
        tick()
        time.sleep(min(left, POLL_SECONDS))


# -- (a) throughput: one vs two instances on the same events ---------------------------

# (deliveries/s, cores per process, verdict, log summary, CPU seconds per delivery)
Round = tuple[float, dict[str, float], analysis.Verdict, list[str], float]


def throughput_round(work: Path, server: LocalPostgres, label: str, instances: int,
                     count: int, rate: float) -> Round:
    """(deliveries/s from the first event written to the last arrival, cores used by
    each process over that time, verdict, each instance's log summary)."""
    names = ["i%d" % n for n in range(instances)]
    fleet = start_fleet(work, server, label, names, count, rate)
    try:
        before, started = fleet.cpu(), time.monotonic()
        verdict = wait_delivered(fleet, count, timeout=120 + count / 100)
        elapsed = time.monotonic() - started
        after = fleet.cpu()
        logs = log_results("throughput_%d_instances" % instances, fleet)
        logs += ["  " + line for line in diagnosis(fleet, verdict)]
    finally:
        fleet.close()
    sent = analysis.load_sent(fleet.sent)
    wall = (verdict.last_arrival_ns - sent[0].at_ns) / 1e9 if sent and verdict.delivered else 0
    used = {name: after[name] - before.get(name, 0.0) for name in after}
    cores = {name: seconds / elapsed for name, seconds in used.items()}
    per_delivery = sum(used.values()) / verdict.delivered if verdict.delivered else 0.0
    return (verdict.delivered / wall if wall > 0 else 0.0), cores, verdict, logs, per_delivery


def scenario_throughput(args: Namespace, work: Path, server: LocalPostgres) -> list[str]:
    best: dict[int, Round] = {}
    for round_number in range(args.rounds):
        for instances in (1, 2):
            rate, cores, verdict, logs, per_delivery = throughput_round(
                work, server, "throughput-%d-r%d" % (instances, round_number), instances,
                args.events, args.throughput_rate)
            print("round %d, %d instance(s): %.0f deliveries/s, %d of %d delivered, cores %s"
                  % (round_number, instances, rate, verdict.delivered, verdict.expected,
                     cpu_text(cores)), flush=True)
            if instances not in best or rate > best[instances][0]:
                best[instances] = (rate, cores, verdict, logs, per_delivery)
    lines = []
    for instances in (1, 2):
        rate, cores, verdict, logs, _ = best[instances]
        lines.append("RESULT throughput_%s_instance%s_per_s=%.0f delivered=%d/%d "
                     "cpu_cores{%s}" % ("one" if instances == 1 else "two",
                                        "" if instances == 1 else "s", rate,
                                        verdict.delivered, verdict.expected, cpu_text(cores)))
        lines += logs
    ratio = best[2][0] / best[1][0] if best[1][0] else 0.0
    lines.append("RESULT two_vs_one_instance=%.2fx (target >= 1.6x) %s"
                 % (ratio, verdict_ok(ratio >= 1.6)))
    lines.append(ceiling_line(best[1]))
    return lines


def ceiling_line(one: Round) -> str:
    """The most two instances could reach on this machine, from the one-instance run:
    every process of the run (PostgreSQL, switch, receiver) shares these cores, and
    two instances spend at least the CPU one spends per delivery (each hears, parses
    and maps every event; the switch writes each twice), so two reach at most
    nproc / (CPU seconds per delivery) deliveries/s."""
    rate, per_delivery = one[0], one[4]
    cores = os.cpu_count() or 1
    if not (rate and per_delivery):
        return "RESULT two_vs_one_ceiling_on_this_machine=unknown"
    return ("RESULT two_vs_one_ceiling_on_this_machine=%.2fx (%d cores / %.0f us of CPU "
            "per delivery with one instance, all processes)" % (
                cores / per_delivery / rate, cores, per_delivery * 1e6))


def cpu_text(cores: dict[str, float]) -> str:
    return " ".join("%s=%.2f" % (name, value) for name, value in sorted(cores.items()))


# -- (b) failover: kill -9 of one of two instances under a steady rate -----------------

def scenario_failover(args: Namespace, work: Path, server: LocalPostgres) -> list[str]:
    count = int(args.rate * args.seconds)
    fleet = start_fleet(work, server, "failover", ["a", "b"], count, args.rate)
    started = time.monotonic()
    timeline = []
    try:
        sleep_until(started + args.kill_at)
        fleet.kill9("b")
        killed = time.monotonic()
        back: float | None = None
        timeline.append("b killed -9 at %.1fs" % (killed - started))
        if args.restart_after > 0:
            sleep_until(started + args.kill_at + args.restart_after)
            back = time.monotonic()
            fleet.start_instance("b")
            fleet.wait_healthy(["b"])
            timeline.append("b restarted, healthy at %.1fs" % (time.monotonic() - started))
        verdict = wait_delivered(fleet, count, timeout=args.seconds + args.drain_timeout)
        time.sleep(3)                 # late repeats still count
        verdict = analysis.judge(analysis.load_sent(fleet.sent),
                                 analysis.load_arrivals(fleet.arrived_path))
        found = diagnosis(fleet, verdict)
    finally:
        fleet.close()
    sent = analysis.load_sent(fleet.sent)
    latencies = verdict.latencies_ms(sent)
    restart = ("restarted %gs later" % args.restart_after if args.restart_after > 0
               else "not restarted")
    arrivals = analysis.load_arrivals(fleet.arrived_path)
    takeover = takeover_text(sent, arrivals, int(killed * 1e9),
                             int(back * 1e9) if back is not None else None)
    lines = ["RESULT failover: 2 instances, %g events/s for %gs, b killed -9 at %gs, %s; "
             "%s; arrivals by instance %s" % (args.rate, args.seconds, args.kill_at, restart,
                                               "; ".join(timeline), verdict.by_instance),
             "RESULT failover_takeover: %s" % takeover]
    lines += fleet_results("failover", verdict, latencies) + log_results("failover", fleet)
    return lines + ["  " + line for line in analysis.details(verdict) + found]


def diagnosis(fleet: Fleet, verdict: analysis.Verdict) -> list[str]:
    """For the first few calls with a lost webhook or out of order: the database's rows
    (read while the instances still run)."""
    calls = sorted({sent.call_id for sent in verdict.lost[:analysis.EXAMPLES]}
                   | {call for call, _ in verdict.order_violations[:analysis.EXAMPLES]})
    return fleet.db_state(calls) if calls else []


def log_results(label: str, fleet: Fleet) -> list[str]:
    return ["RESULT %s_log_%s: %s" % (label, name, fleet.log_summary(name))
            for name in fleet.instances]


def takeover_text(sent: list[analysis.Sent], arrivals: list[analysis.Arrival],
                  killed_ns: int, back_ns: int | None) -> str:
    """Who delivered the events that were sent before the kill and had not arrived by
    then, and when (a lease is 10 s: a should take b's over ~10-12 s after the kill);
    how many calls began and ended while b was gone."""
    first: dict[str, analysis.Arrival] = {}
    for arrival in sorted(arrivals, key=lambda a: a.at_ns):
        first.setdefault(arrival.event_id, arrival)
    late: dict[str, list[float]] = {}
    for event in sent:
        delivered = first.get(event.event_id)
        if event.at_ns < killed_ns and delivered is not None and delivered.at_ns > killed_ns:
            late.setdefault(delivered.instance, []).append(
                (delivered.at_ns - killed_ns) / 1e9)
    span: dict[str, list[int]] = {}
    for event in sent:
        span.setdefault(event.call_id, []).append(event.at_ns)
    end = back_ns if back_ns is not None else 1 << 62
    gone = sum(1 for times in span.values() if min(times) > killed_ns and max(times) < end)
    who = ", ".join("%d by %s from +%.1fs to +%.1fs" % (len(times), name, min(times),
                                                        max(times))
                    for name, times in sorted(late.items()))
    return ("events sent before the kill, arriving after it: %s; %d calls began and ended "
            "while b was gone" % (who or "none", gone))


def fleet_results(label: str, verdict: analysis.Verdict, latencies: list[float]) -> list[str]:
    lost, invented = len(verdict.lost), len(verdict.invented)
    twice = len(verdict.different_id_repeats)
    order = len(verdict.order_violations)
    p50 = latencies[len(latencies) // 2] if latencies else 0.0
    worst = latencies[-1] if latencies else 0.0
    return [
        "RESULT %s_lost=%d of %d (target 0) %s" % (label, lost, verdict.expected,
                                                    verdict_ok(lost == 0)),
        "RESULT %s_invented=%d (target 0) %s; reconciled payloads=%d"
        % (label, invented, verdict_ok(invented == 0), len(verdict.reconciled)),
        "RESULT %s_twice_same_webhook_id=%d (reported)" % (label, verdict.same_id_repeats),
        "RESULT %s_twice_different_webhook_ids=%d (must be 0) %s"
        % (label, twice, verdict_ok(twice == 0)),
        "RESULT %s_order_violations=%d calls (target 0) %s"
        % (label, order, verdict_ok(order == 0)),
        "RESULT %s_latency_ms p50=%.0f max=%.0f (switch write -> first arrival)"
        % (label, p50, worst)]


# -- (c) the database away for --outage seconds ----------------------------------------

def pg_stop(server: LocalPostgres) -> None:
    server._pg_ctl("stop")          # -w -m fast


def pg_start(server: LocalPostgres) -> None:
    """Start it again on the same data, on the same unix socket as pgserver did."""
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]
    socket_dir = parse_qs(urlparse(server.dsn()).query)["host"][0]
    pg_ctl(["-w", "-o", '-h ""', "-o", "-k %s" % socket_dir, "-l",
            str(Path(server.server.pgdata) / "restart.log"), "start"],
           pgdata=server.server.pgdata, user=server.server.system_user, timeout=60)


class HealthLog:
    """Each instance's /healthz answers, as runs of the same (code, status, degraded
    reasons with their numbers as N), each run with the largest number it showed."""

    def __init__(self, fleet: Fleet, names: list[str], started: float) -> None:
        self.fleet, self.names, self.started = fleet, names, started
        self.runs: dict[str, list[list]] = {name: [] for name in names}

    def __call__(self) -> None:
        for name in self.names:
            code, body = self.fleet.healthz(name)
            text = "%d %s%s" % (code, body.get("status", "-"),
                                " degraded=%s" % body["degraded"] if body.get("degraded")
                                else "")
            numbers = [int(n) for n in re.findall(r"\d+", text[3:])]
            state = text[:3] + re.sub(r"\d+", "N", text[3:])
            at = time.monotonic() - self.started
            runs = self.runs[name]
            if runs and runs[-1][0] == state:
                runs[-1][2] = at
                runs[-1][3] = max([runs[-1][3]] + numbers)
            else:
                runs.append([state, at, at, max(numbers, default=0)])

    def text(self, name: str) -> str:
        return "; ".join("%.0f-%.0fs: %s%s" % (start, end, state,
                                               " (N up to %d)" % top if top else "")
                         for state, start, end, top in self.runs[name])


def scenario_db_away(args: Namespace, work: Path, server: LocalPostgres) -> list[str]:
    count = int(args.rate * args.db_seconds)
    names = ["a", "b"]
    fleet = start_fleet(work, server, "db-away", names, count, args.rate)
    started = time.monotonic()
    health = HealthLog(fleet, names, started)
    try:
        sleep_until(started + args.outage_at, health)
        pg_stop(server)
        stopped = time.monotonic()
        sleep_until(stopped + args.outage, health)
        pg_start(server)
        back = time.monotonic()
        verdict = wait_delivered(fleet, count, timeout=args.db_seconds + args.drain_timeout,
                                 tick=health)
        health()
        found = diagnosis(fleet, verdict)
    finally:
        fleet.close()
    sent = analysis.load_sent(fleet.sent)
    back_ns = int(back * 1e9)
    before_back = [s for s in sent if s.at_ns < back_ns]
    undrained = [s for s in before_back if s.event_id not in verdict.first_arrival_ns]
    drained = max((verdict.first_arrival_ns[s.event_id] for s in before_back
                   if s.event_id in verdict.first_arrival_ns), default=back_ns)
    ratio = verdict.delivered / verdict.expected if verdict.expected else 0.0
    lines = ["RESULT db_away: 2 instances, %g events/s for %gs, PostgreSQL stopped (-m fast) "
             "at %.1fs for %.1fs; arrivals by instance %s"
             % (args.rate, args.db_seconds, stopped - started, back - stopped,
                verdict.by_instance),
             "RESULT db_away_delivered_over_expected=%.4f (%d of %d) (target 1.0) %s"
             % (ratio, verdict.delivered, verdict.expected,
                verdict_ok(verdict.delivered == verdict.expected)),
             ("RESULT db_away_drain_seconds=%.1f after the database was back (every event "
              "sent before then delivered)" % ((drained - back_ns) / 1e9)) if not undrained
             else "RESULT db_away_drain_seconds: not drained, %d events sent before the "
                  "database was back never arrived MISSED" % len(undrained)]
    lines += fleet_results("db_away", verdict, verdict.latencies_ms(sent))
    lines += log_results("db_away", fleet)
    lines += ["RESULT db_away_healthz_%s: %s" % (name, health.text(name)) for name in names]
    return lines + ["  " + line for line in analysis.details(verdict) + found]


SCENARIOS = {"throughput": scenario_throughput, "failover": scenario_failover,
             "db-away": scenario_db_away}


def run_scenarios(names: list[str], args: Namespace, work: Path,
                  server: LocalPostgres) -> list[str]:
    results = []
    for name in names:
        print("== scenario %s" % name, flush=True)
        lines = SCENARIOS[name](args, work, server)
        print("\n".join(lines), flush=True)
        results += lines
    return results

