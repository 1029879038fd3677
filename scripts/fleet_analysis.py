"""What arrived against what the switch sent (scripts/bench_fleet.py's scenarios).

Expected: every channel event fleet_switch.py wrote to at least one instance, one
webhook each for the bench's "all" hook: (call = Unique-ID, hook_event, event_id =
Core-UUID-Event-Sequence).  Arrived: fleet_receiver.py's lines.  Nothing is derived
from the arrivals alone.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

HOOK_EVENTS = {"CHANNEL_CREATE": "channel_create", "CHANNEL_ANSWER": "channel_answer",
               "CHANNEL_BRIDGE": "channel_bridge",
               "CHANNEL_HANGUP_COMPLETE": "channel_destroy"}
EXAMPLES = 5


@dataclass(frozen=True)
class Sent:
    at_ns: int
    call_id: str
    hook_event: str
    event_id: str
    sequence: int


@dataclass(frozen=True)
class Arrival:
    at_ns: int
    instance: str
    webhook_id: str
    call_id: str
    hook_event: str
    event_id: str
    sequence: int
    reconciled: bool


def load_sent(path: Path) -> list[Sent]:
    sent = []
    for line in path.read_text().splitlines():
        at_ns, name, call_id, core_uuid, sequence, clients = line.split()
        if int(clients) > 0 and name in HOOK_EVENTS:
            sent.append(Sent(int(at_ns), call_id, HOOK_EVENTS[name],
                             "%s-%s" % (core_uuid, sequence), int(sequence)))
    return sent


def load_arrivals(path: Path) -> list[Arrival]:
    if not path.exists():
        return []
    return [Arrival(*json.loads(line)) for line in path.read_text().splitlines() if line]


@dataclass
class Verdict:
    expected: int
    delivered: int                   # distinct expected events that arrived
    lost: list[Sent] = field(default_factory=list)
    invented: list[Arrival] = field(default_factory=list)     # no such event sent
    reconciled: list[Arrival] = field(default_factory=list)   # reconciler's own payloads
    same_id_repeats: int = 0          # arrivals beyond the first of one webhook-id
    different_id_repeats: list[tuple[str, str, list[str]]] = field(default_factory=list)
    order_violations: list[tuple[str, list[int]]] = field(default_factory=list)
    by_instance: dict[str, int] = field(default_factory=dict)
    last_arrival_ns: int = 0
    first_arrival_ns: dict[str, int] = field(default_factory=dict)   # by event_id

    def latencies_ms(self, sent: list[Sent]) -> list[float]:
        """Switch write -> first arrival of each delivered event, sorted."""
        return sorted((self.first_arrival_ns[s.event_id] - s.at_ns) / 1e6 for s in sent
                      if s.event_id in self.first_arrival_ns)


def judge(sent: list[Sent], arrivals: list[Arrival]) -> Verdict:
    by_event = {s.event_id: s for s in sent}
    verdict = Verdict(expected=len(by_event), delivered=0)
    ids_per_key: dict[tuple[str, str], set[str]] = defaultdict(set)
    seen_ids: set[str] = set()
    first_order: dict[str, list[int]] = defaultdict(list)
    by_instance: dict[str, int] = defaultdict(int)
    for arrival in sorted(arrivals, key=lambda a: a.at_ns):
        by_instance[arrival.instance] += 1
        verdict.last_arrival_ns = max(verdict.last_arrival_ns, arrival.at_ns)
        verdict.first_arrival_ns.setdefault(arrival.event_id, arrival.at_ns)
        if arrival.webhook_id in seen_ids:
            verdict.same_id_repeats += 1
            continue
        seen_ids.add(arrival.webhook_id)
        # create/answer/destroy are once per (hook, call): a second webhook-id for
        # one is a double delivery, whether it is a reconciled copy or not
        ids_per_key[(arrival.call_id, arrival.hook_event)].add(arrival.webhook_id)
        if arrival.reconciled:
            verdict.reconciled.append(arrival)
            continue
        if arrival.event_id not in by_event:
            verdict.invented.append(arrival)
            continue
        first_order[arrival.call_id].append(by_event[arrival.event_id].sequence)
    arrived_events = {a.event_id for a in arrivals}
    verdict.lost = [s for s in sent if s.event_id not in arrived_events]
    verdict.delivered = len(by_event) - len({s.event_id for s in verdict.lost})
    verdict.different_id_repeats = [(call, event, sorted(ids))
                                    for (call, event), ids in ids_per_key.items()
                                    if len(ids) > 1]
    verdict.order_violations = [(call, seqs) for call, seqs in first_order.items()
                                if seqs != sorted(seqs)]
    verdict.by_instance = dict(by_instance)
    return verdict


def details(verdict: Verdict) -> list[str]:
    """Lines naming the first few calls and events behind each non-zero count."""
    lines = []
    for sent in verdict.lost[:EXAMPLES]:
        lines.append("lost: call %s %s %s (sent at %d ns)" % (
            sent.call_id, sent.hook_event, sent.event_id, sent.at_ns))
    for arrival in verdict.invented[:EXAMPLES]:
        lines.append("invented: %s" % (arrival,))
    for arrival in verdict.reconciled[:EXAMPLES]:
        lines.append("reconciled payload: %s" % (arrival,))
    for call, event, ids in verdict.different_id_repeats[:EXAMPLES]:
        lines.append("twice with different webhook-ids: call %s %s %s" % (call, event, ids))
    for call, seqs in verdict.order_violations[:EXAMPLES]:
        lines.append("order: call %s arrived in switch sequence %s" % (call, seqs))
    return lines
