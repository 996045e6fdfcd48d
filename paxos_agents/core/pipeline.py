"""Phase 2 at the leader: the slots in flight, their Accepts, and their votes.

Paxos Made Simple, section 3: once phase 1 is won, the leader sends
Accept(ballot, slot, value) for each slot, up to `Settings.window` slots
at once. For a slot s, the Accept goes to config(s)'s acceptors only and
only their Accepted count (configs.py); a majority of them decides s.
Lost Accepts or Accepteds would stall a slot forever (the 2012 demo's
bug), so an Accept unanswered for `accept_timeout_ticks` is sent again to
the members that have not answered.

The pipeline also remembers, per slot, the last value it proposed there in
any ballot (`remembered`): a later proposal of another value in that slot
means ours lost, and its commands must be proposed again.

What to propose, and when, is the proposer's (proposer.py); this room only
keeps the slots it was handed and says which one a majority decided. It
also times each slot it sees decided with its value, from when the
slot's oldest command arrived (`CommitTimes`, committime.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from .commands import Value
from .committime import CommitTimes
from .configs import Config
from .ids import Ballot
from .messages import Accept, Accepted
from .outbox import Outbox


@dataclass(slots=True)
class InFlight:
    """A slot in phase 2: the value proposed, its configuration, and the
    members of it that accepted."""

    value: Value
    sent_at: int
    config: Config
    #: When the slot's oldest command arrived (the clock's seconds); None: not timed (a no-op).
    arrived: float | None = None
    accepted: set[str] = field(default_factory=set)


class Pipeline:
    """A leader's slots in phase 2, and what it proposed in each slot."""

    __slots__ = ("node_id", "_out", "_times", "next_slot", "fill_below", "inflight", "remembered")

    def __init__(self, node_id: str, out: Outbox, times: CommitTimes | None = None) -> None:
        self.node_id = node_id
        self._out = out
        #: Where decided slots are timed.
        self._times = times if times is not None else CommitTimes()
        #: The next slot to propose in.
        self.next_slot = 0
        #: Every slot below this must be filled (with no-ops if nothing else).
        self.fill_below = 0
        #: slot -> what is in flight there (leader only).
        self.inflight: dict[int, InFlight] = {}
        #: slot -> the last value this proposer proposed there, in any ballot.
        self.remembered: dict[int, Value] = {}

    def restart(self, next_slot: int, fill_below: int) -> None:
        """A new leadership: nothing in flight; propose from `next_slot`, and
        fill every slot below `fill_below`."""
        self.inflight = {}
        self.next_slot = next_slot
        self.fill_below = fill_below

    def fill_up_to(self, slot: int) -> None:
        """Every slot below `slot` must be filled too."""
        self.fill_below = max(self.fill_below, slot)

    def send(self, slot: int, value: Value, config: Config, ballot: Ballot, now: int,
             arrived: float | None = None) -> None:
        """Propose `value` in `slot` to `config`'s acceptors under `ballot`;
        timed from `arrived` once decided (None: not timed)."""
        self.inflight[slot] = InFlight(value, now, config, arrived)
        self.remembered[slot] = value
        for acceptor in config.acceptors:
            self._out.send.append(
                Accept(src=self.node_id, dst=acceptor, ballot=ballot, slot=slot, value=value))

    def resend_stale(self, ballot: Ballot, now: int, timeout: int) -> int:
        """Send again each Accept unanswered for `timeout` ticks, to the members
        that have not answered; returns how many slots were resent."""
        resent = 0
        for slot, flight in self.inflight.items():
            if now - flight.sent_at < timeout:
                continue
            flight.sent_at = now
            resent += 1
            for acceptor in flight.config.acceptors:
                if acceptor not in flight.accepted:
                    self._out.send.append(Accept(src=self.node_id, dst=acceptor,
                                                ballot=ballot, slot=slot, value=flight.value))
        return resent

    def resend_soon(self, slot: int, timeout: int) -> bool:
        """Make `slot`'s Accept stale at once (a learner misses it); False if
        it is not in flight."""
        flight = self.inflight.get(slot)
        if flight is None:
            return False
        flight.sent_at = -timeout
        return True

    def on_accepted(self, m: Accepted) -> Value | None:
        """Count `m` (for our ballot: the caller checked); the value its slot
        decided if a majority of the slot's configuration accepted it now.
        A non-member's vote never counts."""
        flight = self.inflight.get(m.slot)
        if flight is None or m.src not in flight.config.acceptors:
            return None
        flight.accepted.add(m.src)
        if len(flight.accepted) >= flight.config.majority:
            del self.inflight[m.slot]
            if flight.arrived is not None:
                self._times.observe(flight.arrived)
            return flight.value
        return None

    def withdraw(self, slots: Iterable[int]) -> list[Value]:
        """Take `slots` out of flight (each must be in flight); their values, in that order."""
        return [self.inflight.pop(slot).value for slot in slots]

    def settle(self, slot: int, value: Value) -> list[Value]:
        """`slot` was decided with `value`: out of flight. Our value there, if
        it was another (it lost: its commands must go in another slot)."""
        flight = self.inflight.pop(slot, None)
        if flight is None:
            return []
        if flight.value != value:
            return [flight.value]
        if flight.arrived is not None:
            self._times.observe(flight.arrived)  # ours, decided: learned by a Decide or our learner
        return []

    def skip_below(self, point: int) -> list[Value]:
        """Slots below `point` are decided (compacted): withdraw ours there,
        lowest first, and propose from `point` on."""
        lost = self.withdraw(sorted(s for s in self.inflight if s < point))
        if self.next_slot < point:
            self.next_slot = point
        return lost

    def forget_below(self, slot: int) -> None:
        """Forget what we proposed below `slot` (decided long ago)."""
        for s in [s for s in self.remembered if s < slot]:
            del self.remembered[s]
