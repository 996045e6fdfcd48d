"""What a proposer knows was decided: values, the gap-free prefix, the compaction point.

A proposer learns decisions from its own count of Accepteds, from Decides,
from its replica's learner, and (without values) from heartbeats and
acceptors' compaction points. It keeps:

- `chosen`: the values it knows, to answer a learner's Retry with a
  Decide and to feed the configuration history; values more than
  `KEEP_DECIDED` below the prefix are forgotten (`forget`), so memory does
  not grow with the log: a learner that misses one copies it from a peer
  learner, or gets it through a new phase 1;
- `decided_up_to`: every slot up to it is decided, so phase 1 starts
  above it. It is persisted (`Outbox.floor`) when it grew by `FLOOR_EVERY`
  slots, with the history: only an optimisation, so a restarted leader's
  phase 1 starts near it;
- `compacted`: the highest compaction point an acceptor told us; every
  slot below it is decided and stored by every learner (see
  `Acceptor.on_stored`), and acceptors refuse Prepares and Accepts below it.
"""

from __future__ import annotations

from .commands import Value
from .configs import History
from .outbox import Outbox

#: The decided prefix is persisted when it grew by this many slots.
FLOOR_EVERY = 1024
#: Decided values kept in memory below the decided prefix (to answer Retries
#: with a Decide); older ones are forgotten, so memory does not grow with the log.
KEEP_DECIDED = 64


class Decisions:
    """The decided values a proposer holds, its decided prefix and compaction point."""

    __slots__ = ("_out", "chosen", "decided_up_to", "_persisted_floor", "compacted",
                 "forgotten_below")

    def __init__(self, out: Outbox, floor: int) -> None:
        """`floor`: the decided prefix persisted last (`Record.floor`)."""
        self._out = out
        self.chosen: dict[int, Value] = {}
        self.decided_up_to = floor
        self._persisted_floor = floor
        self.compacted = 0
        #: `chosen` holds no values below this slot any more.
        self.forgotten_below = 0

    def learn(self, slot: int, value: Value) -> bool:
        """Record that `slot` decided `value`; False if it was known already."""
        chosen = self.chosen
        if slot in chosen:
            return False
        chosen[slot] = value
        while self.decided_up_to + 1 in chosen:
            self.decided_up_to += 1
        return True

    def first_undecided(self, history: History, asked: int | None) -> int:
        """Where phase 1 starts: our first undecided slot, or `asked` if lower
        (a learner asked for it). If `history` does not know that slot's
        configuration (we heard of decisions, not their values), the first
        slot it has not fed: phase 1 then decides those slots again, and
        their values feed it. Never below the compaction point: acceptors
        refuse it (nothing there to recover)."""
        first = self.decided_up_to + 1
        if not history.knows(first):
            first = history.known
        if asked is not None:
            first = min(first, asked)
        return max(first, self.compacted)

    def decided_below(self, upto: int, history: History) -> None:
        """Every slot up to `upto` is decided (a leader's heartbeat says so)."""
        if upto > self.decided_up_to:
            self.decided_up_to = upto
            self.note_floor(history)

    def note_compacted(self, point: int, history: History) -> None:
        """Slots below `point` are decided and stored by every learner."""
        self.compacted = point = max(point, self.compacted)
        if self.decided_up_to < point - 1:
            self.decided_up_to = point - 1
            while self.decided_up_to + 1 in self.chosen:
                self.decided_up_to += 1
            self.note_floor(history)

    def note_floor(self, history: History) -> None:
        """Persist the prefix (and `history`) if it grew by `FLOOR_EVERY` since last time."""
        if self.decided_up_to - self._persisted_floor >= FLOOR_EVERY:
            self._persisted_floor = self.decided_up_to
            self._out.floor = self.decided_up_to
            self._out.note_history(history)

    def forget(self) -> int | None:
        """Forget values `KEEP_DECIDED` below the prefix, in steps of as many;
        the slot below which the caller may forget too (None: not this time)."""
        below = self.decided_up_to + 1 - KEEP_DECIDED
        if below - self.forgotten_below < KEEP_DECIDED:
            return None
        for slot in [s for s in self.chosen if s < below]:
            del self.chosen[slot]
        self.forgotten_below = below
        return below
