"""The lane state machine: pure bookkeeping, no I/O, no clock, no greenlets.

Each (hook id, call id) is a *lane*, delivered strictly one after another
(create before answer before destroy), also while its head waits for a retry.
A lane is in one of four states:

- ``ACTIVE``: its next deliveries are in memory; it is in the ready queue, waiting
  for a connection slot to its host, or being attempted (``scheduled``).
- ``WAITING``: its head failed (or its host's circuit is open); everything of the
  lane is in the spool only, and a timer brings it back at the head's next attempt.
- ``LOADING``: being read back from the spool.
- ``HELD``: its hook is disabled; it stays in the spool until the hook is resumed.

Anything submitted to a lane that is not ACTIVE (or that has more in the spool
than in memory) goes to the spool only (``more``), and is read back in order.
Each transition returns what the I/O shell (``queue.DeliveryQueue``) must do next:
put the lane in the ready queue (``SCHEDULE``), read it back (``LOAD``), start a
timer, or nothing; so every transition is tested apart from timing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from eslhook.delivery.rows import Delivery

ACTIVE, WAITING, LOADING, HELD = "active", "waiting", "loading", "held"
SCHEDULE, LOAD, NOTHING = "schedule", "load", "nothing"     # what the shell does next

LaneKey = tuple[str, str | None]


@dataclass(eq=False)
class Lane:
    key: LaneKey
    state: str = ACTIVE
    items: deque = field(default_factory=deque)    # resident deliveries, in order
    more: bool = False              # the spool holds deliveries of this lane not in items
    scheduled: bool = False         # in the ready queue, a host's wait list, or an attempt
    due: float = 0.0                # unix time a WAITING lane comes back
    timer: Any = None               # the shell's timer handle; never touched here


def lane_key(delivery: Delivery) -> LaneKey:
    return (delivery.hook.id, delivery.call_id)


class Lanes:
    """Every lane with something pending, the resident count, the held hooks."""

    def __init__(self) -> None:
        self.lanes: dict[LaneKey, Lane] = {}
        self.resident = 0                   # deliveries held in lanes' items
        self.held_hooks: set[str] = set()
        self.stopping = False               # no more scheduling or timers

    def __iter__(self) -> Iterator[Lane]:
        return iter(list(self.lanes.values()))

    def get(self, key: LaneKey) -> Lane | None:
        return self.lanes.get(key)

    def count(self, state: str) -> int:
        return sum(1 for lane in self.lanes.values() if lane.state == state)

    def _lane(self, key: LaneKey) -> tuple[Lane, bool]:
        lane = self.lanes.get(key)
        if lane is not None:
            return lane, False
        lane = self.lanes[key] = Lane(key)
        return lane, True

    # -- arrivals -----------------------------------------------------------------

    def submit(self, delivery: Delivery) -> Lane | None:
        """A new delivery; the lane to schedule when it went to memory, else None."""
        lane, new = self._lane(lane_key(delivery))
        if new and delivery.hook.id in self.held_hooks:
            lane.state, lane.more = HELD, True
            return None
        if lane.state == ACTIVE and not lane.more:
            lane.items.append(delivery)
            self.resident += 1
            return lane
        lane.more = True              # in the spool only; read back in order
        return None

    def resumed(self, key: LaneKey) -> Lane:
        """At start: the spool holds pending deliveries of ``key``; they go first, so
        whatever was submitted before start goes back to being read from the spool.
        The caller then makes it wait until the head's next attempt."""
        lane, new = self._lane(key)
        if not new:
            self._clear(lane)
        lane.more = True
        return lane

    def spool_arrival(self, key: LaneKey) -> Lane | None:
        """Deliveries for ``key`` were added to the spool directly (a replay): the lane
        to read back now, or None (it will read them after what it has)."""
        lane, new = self._lane(key)
        lane.more = True
        if new:
            if key[0] in self.held_hooks:
                lane.state = HELD
                return None
            return lane
        if lane.state == ACTIVE and not lane.items and not lane.scheduled:
            return lane
        return None

    # -- dispatching and attempts -------------------------------------------------

    def schedule(self, lane: Lane) -> bool:
        """True when the lane must be put in the ready queue now."""
        if lane.scheduled or self.stopping:
            return False
        lane.scheduled = True
        return True

    def head(self, key: LaneKey) -> tuple[Lane, Delivery] | None:
        """A worker took ``key`` from the ready queue: (lane, head) to attempt, or None
        (the lane ended, or stopped being ACTIVE, meanwhile)."""
        lane = self.lanes.get(key)
        if lane is None:
            return None
        if lane.state != ACTIVE or not lane.items:
            lane.scheduled = False
            return None
        return lane, lane.items[0]

    def finished(self, lane: Lane, head: Delivery) -> str:
        """The head ended (delivered, given up): SCHEDULE, LOAD or NOTHING."""
        if lane.items and lane.items[0] is head:
            lane.items.popleft()
            self.resident -= 1
        return self.next_step(lane)

    def next_step(self, lane: Lane) -> str:
        if lane.state != ACTIVE or self.lanes.get(lane.key) is not lane:
            return NOTHING
        if lane.items:
            return SCHEDULE
        if lane.more:
            return LOAD
        del self.lanes[lane.key]
        return NOTHING

    # -- waiting in the spool, reading back ---------------------------------------

    def _clear(self, lane: Lane) -> None:
        self.resident -= len(lane.items)
        lane.items.clear()
        lane.more = True

    def wait(self, lane: Lane, due: float) -> bool:
        """Everything of the lane now waits in the spool until ``due``; True when the
        shell must start a timer for it (not for a held lane, nor while stopping)."""
        self._clear(lane)
        if lane.state == HELD or self.stopping:
            return False
        lane.state, lane.due = WAITING, due
        return True

    def is_due(self, lane: Lane) -> bool:
        """Its timer fired: True when it must be read back now."""
        return lane.state == WAITING and not self.stopping

    def loading(self, lane: Lane) -> None:
        lane.state = LOADING

    def reading(self, lane: Lane) -> None:
        """A read of the lane's first pending rows begins: what arrives meanwhile sets
        ``more`` again."""
        lane.more = False

    def read_still_wanted(self, lane: Lane) -> bool:
        """After the read: False when the lane was held or the queue stopped meanwhile."""
        if lane.state != LOADING or self.stopping:
            lane.more = True
            return False
        return True

    def loaded(self, lane: Lane, fresh: list[Delivery], batch_full: bool) -> str:
        """The read gave ``fresh`` deliveries (the expired ones ended already);
        SCHEDULE, LOAD (read again: all expired but more are there) or NOTHING."""
        lane.more = lane.more or batch_full
        if fresh:
            lane.items.extend(fresh)
            self.resident += len(fresh)
            lane.state = ACTIVE
            return SCHEDULE
        if not lane.more:
            lane.state = ACTIVE
            return self.next_step(lane)
        return LOAD

    # -- disable, resume, deleted hooks ---------------------------------------------

    def hold(self, lane: Lane) -> None:
        self._clear(lane)
        lane.state = HELD

    def forget(self, lane: Lane) -> None:
        """The lane leaves memory: its hook was deleted (the shell ends its rows), or
        another instance took its lease over (fleet mode: the rows are the other's).
        An attempt of its head still running finds it gone and schedules nothing."""
        self.hold(lane)
        if self.lanes.get(lane.key) is lane:
            del self.lanes[lane.key]

    def disable(self, hook_id: str) -> list[Lane] | None:
        """Hold every lane of the hook; None when it was held already."""
        if hook_id in self.held_hooks:
            return None
        self.held_hooks.add(hook_id)
        held = [lane for lane in self.lanes.values() if lane.key[0] == hook_id]
        for lane in held:
            self.hold(lane)
        return held

    def resume(self, hook_id: str) -> list[Lane]:
        """The hook is enabled again: its held lanes, to read back."""
        self.held_hooks.discard(hook_id)
        return [lane for lane in self.lanes.values()
                if lane.key[0] == hook_id and lane.state == HELD]

    def held_hook_ids(self) -> set[str]:
        return {lane.key[0] for lane in self.lanes.values() if lane.state == HELD}

