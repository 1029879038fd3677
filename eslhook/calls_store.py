"""The open-call store: the calls eslhook believes are open, behind one interface.

The bridge (which records every payload and stamps its ``sequence``) and
reconciliation (``reconcile.py``, which compares the table with the switch's own
list) hold an ``OpenCallStore``, never a file: the embedded backend is
``calls.OpenCalls`` (a table in memory, written to ``open-calls.json``), chosen in
``eslhook/stores.py``; the fleet mode's PostgreSQL backend (issue 14) is one more
class there.  Every backend passes ``tests/contract/test_open_call_store.py``.

What every backend promises (the contract suite checks each):

- ``observe`` runs on the hub for every payload and never blocks.  Each payload
  of a call gets the next ``sequence`` (1, 2, 3...), its destroy too (fleet mode,
  ``sequence_from_switch``: the switch's Event-Sequence instead, the same whichever
  instance maps the event; an event eslhook made itself continues from the call's
  last); a destroy
  closes the call, and the call is then remembered as ended for at least
  ``remember_ended_for`` seconds.  A ``channel_bridge`` of a call not open
  does not open it (its sequence is 1, like a destroy of a call never seen).
- ``mark(switch)`` starts a new epoch of the switch; a call carries the epoch of
  its latest event (``OpenCall.epoch``), so reconciliation can tell events before
  a read of the switch's list from those after it.
- Across ``stop()`` and a new store's ``load()``, the open calls come back with
  their sequence, answered flag, Core-UUID and ``KEPT_FIELDS``, so a destroy
  synthesised after a restart continues the sequence.  (Epochs and first-seen
  times mean nothing to another process: they are not kept.)
- Saving is in the background; a save that fails sets ``write_error`` (the
  table in memory stays whole and is saved once saving works again, which
  clears it).  Unreadable saved state is logged and starts empty: reconciliation
  rebuilds it from the switch.

A ``typing.Protocol``, not an ABC: backends satisfy it as they are and mypy checks
the fit where the factory returns one (as for ``eslhook/ports.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from eslhook.payload import ChannelPayload
from eslhook.supervise import Deadline, Supervisor

# What a synthetic channel_destroy can reuse of the last payload of a call.
KEPT_FIELDS = ("call_direction", "account_id", "request", "to", "from", "call_id",
               "sip_call_id", "other_leg_call_id", "caller_id_name", "caller_id_number",
               "callee_id_name", "callee_id_number", "is_internal_leg", "switch",
               "custom_channel_vars")
IN_MEMORY_ONLY = ("epoch", "first_seen")    # OpenCall's fields no store keeps
# A bridge is not a new call: one the store does not know stays unknown, so
# reconciliation announces it from the switch's list (channel_create first).
NOT_OPENING_EVENTS = frozenset(("channel_bridge",))


def switch_sequence(payload: Mapping[str, Any]) -> int | None:
    """The switch's own number of the event the payload comes from (its
    ``Event-Sequence``, the tail of ``event_id``): the same for every instance
    listening to that switch, and increasing along a call.  None for an event
    eslhook made itself (reconciled) or one without a number."""
    event_id = payload.get("event_id")
    if not isinstance(event_id, str) or payload.get("reconciled"):
        return None
    tail = event_id.rpartition("-")[2]
    return int(tail) if tail.isdigit() and len(tail) <= 18 else None


@dataclass
class OpenCall:
    call_id: str
    switch: str
    core_uuid: str | None
    # The last payload itself: payloads are never changed once dispatched, so
    # keeping a reference costs nothing per event; KEPT_FIELDS are picked out
    # only when the table is written or a destroy is synthesised.
    fields: Mapping[str, Any] = field(default_factory=dict)
    answered: bool = False
    since: float = field(default_factory=time.time)  # when eslhook first saw it
    sequence: int = 0                                # last stamped on a payload
    # Not kept by a store (they mean nothing to another process):
    epoch: int = 0                        # the switch's epoch at its latest event
    first_seen: float = float("-inf")     # the store's clock when this process first saw it


def kept_fields(call: OpenCall) -> dict:
    return {k: call.fields[k] for k in KEPT_FIELDS if k in call.fields}


class OpenCallStore(Protocol):
    """Calls seen created and not yet destroyed, per switch (module docstring)."""

    @property
    def clock(self) -> Callable[[], float]:
        """The monotonic clock of ``first_seen`` and ``ended_of``'s times."""
        ...

    @property
    def write_error(self) -> str | None:
        """Why the last save failed; None while saving works."""
        ...

    def observe(self, payload: ChannelPayload, core_uuid: str | None) -> None:
        """Record the payload's call and stamp the payload's ``sequence``."""
        ...

    def mark(self, switch: str) -> int:
        """Start a new epoch of ``switch`` (right before sending a read); returns it."""
        ...

    def of_switch(self, switch: str) -> Mapping[str, OpenCall]:
        """The open calls of ``switch`` by call id (live: do not keep across yields)."""
        ...

    def ended_of(self, switch: str) -> Mapping[str, float]:
        """Calls of ``switch`` ended recently: call id -> when (``clock``)."""
        ...

    def is_open(self, switch: str, call_id: str) -> bool:
        ...

    def is_known(self, switch: str, call_id: str) -> bool:
        """Open, or ended recently."""
        ...

    def remember_ended_for(self, seconds: float) -> None:
        """Remember ended calls at least ``seconds`` (never shortens it)."""
        ...

    def __len__(self) -> int:
        """Open calls, all switches together."""
        ...

    def load(self) -> None:
        """Read what a previous run left (nothing or unreadable: start empty)."""
        ...

    def start(self, supervisor: Supervisor | None = None) -> None:
        """Start saving changes in the background."""
        ...

    def stop(self, deadline: Deadline | None = None) -> None:
        """Stop saving in the background; save what changed, if it can."""
        ...
