"""Host slots and the circuit breaker: pure bookkeeping per host, no I/O, no clock.

At most ``max_per_host`` attempts run to one host; lanes beyond that wait in the
host's list for a slot.  Each host has a circuit (``policy.Circuit``): once it is
open, lanes wait in the spool instead of holding a slot.  The decisions are
``policy.circuit_admits`` / ``circuit_after``; this keeps their state.
"""

from __future__ import annotations

from collections import deque
from typing import Hashable

from eslhook.delivery.policy import (
    CLOSED, Circuit, CircuitPolicy, Outcome, circuit_admits, circuit_after, host_failed,
    is_success)

ADMITTED, PARKED, QUEUED = "admitted", "parked", "queued"


class Hosts:
    def __init__(self, policy: CircuitPolicy, max_per_host: int):
        self.policy = policy
        self._max_per_host = max_per_host
        self._busy: dict[Hashable, int] = {}
        self._waiting: dict[Hashable, deque] = {}
        self._circuits: dict[Hashable, Circuit] = {}

    def circuit(self, host: Hashable) -> Circuit:
        return self._circuits.get(host, CLOSED)

    def admit(self, host: Hashable, key: Hashable, now: float) -> tuple[str, Circuit]:
        """ADMITTED (a slot is taken: ``release`` it), PARKED (the circuit is open: the
        lane must wait in the spool) or QUEUED (``key`` waits for a slot)."""
        admitted, circuit = circuit_admits(self.circuit(host), now)
        if not admitted:
            return PARKED, circuit
        self._circuits[host] = circuit
        busy = self._busy.get(host, 0)
        if busy >= self._max_per_host:
            self._waiting.setdefault(host, deque()).append(key)
            return QUEUED, circuit
        self._busy[host] = busy + 1
        return ADMITTED, circuit

    def release(self, host: Hashable) -> Hashable | None:
        """An attempt to ``host`` ended: the key that gets its slot, if any."""
        self._busy[host] -= 1
        waiting = self._waiting.get(host)
        key = waiting.popleft() if waiting else None
        if not waiting and self._busy[host] == 0:
            self._waiting.pop(host, None)
            del self._busy[host]
        return key

    def settled(self, host: Hashable, outcome: Outcome, now: float) -> list[Hashable]:
        """Record an attempt's result on the host's circuit.  When it opens, the keys
        queued for a slot come back (to be parked in the spool)."""
        succeeded = is_success(outcome)
        if not (succeeded or host_failed(outcome)):
            return []
        circuit = circuit_after(self.circuit(host), self.policy, succeeded, now)
        self._circuits[host] = circuit
        if circuit.open_until is None:
            return []
        return list(self._waiting.pop(host, ()))

    def park_delay(self, circuit: Circuit, now: float, rand: float) -> float:
        """How long a lane parked by ``circuit`` waits.  Returns are spread so they do
        not all come back at the same instant; while a probe is finding out, look again
        a bit later."""
        spread = min(self.policy.open_seconds, 5.0) * rand
        if circuit.probing:
            return self.policy.open_seconds / 2 + spread
        assert circuit.open_until is not None     # parked, not probing: the circuit is open
        return max(0.0, circuit.open_until - now) + spread
