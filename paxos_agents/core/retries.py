"""A proposer's retry service: a learner's Retry answered, and how often one may cost work.

A learner that misses a slot sends Retry (learner.py). `Retries.answer`
answers what needs no new work: nothing for a slot below the compaction
point (the learner copies it from a peer), the value for a slot the
proposer knows decided (Decide), the Retry forwarded to a live leader.
What it cannot answer the proposer has decided again (proposer.py,
`on_retry`). Deciding again can take a new ballot, which deposes the
leader; so one slot is retried at most once per `retry_cooldown_ticks`,
and a leader runs a new phase 1 for retries at most once per cooldown
too (a lagging learner asks for many slots at once: an election per slot
would be a storm). A phase 1 covers every slot from its first one, so the
next one starts at the lowest slot asked for (`floor`).
"""

from __future__ import annotations

from typing import Mapping

from .commands import Value
from .messages import Decide, Retry
from .outbox import Outbox
from .stats import ProposerStats


class Retries:
    """Which slots were retried when, the lowest slot asked for, the last re-election."""

    __slots__ = ("_node_id", "_out", "_cooldown", "_stats", "_retried_at", "floor",
                 "_reelected_at")

    def __init__(self, node_id: str, out: Outbox, cooldown: int, stats: ProposerStats) -> None:
        self._node_id = node_id
        self._out = out
        self._cooldown = cooldown
        self._stats = stats
        self._retried_at: dict[int, int] = {}
        #: The lowest slot a learner asked for that our phase 1 does not cover.
        self.floor: int | None = None
        self._reelected_at = -(10**9)

    def answer(self, m: Retry, compacted: int, chosen: Mapping[int, Value],
               leader: str | None, now: int) -> bool:
        """A learner misses `m.slot`: answer it if that needs no new work.

        Below `compacted` nothing is sent: every learner stored the slot, so
        the asking learner copies it from a peer (state transfer); a new
        ballot there is refused by the acceptors and could only do harm. A
        slot in `chosen` (decided, value still held) is sent again as a
        Decide; with a live `leader` elsewhere the Retry is forwarded there.
        Returns True if the slot must be decided again here: none of those,
        and not retried within the cooldown (see `may_retry`).
        """
        slot = m.slot
        self._stats.retries_requested += 1
        if slot < compacted:
            self._stats.retries_compacted += 1
            return False
        value = chosen.get(slot)
        if value is not None:
            self._out.send.append(Decide(src=self._node_id, dst=m.src, slot=slot, value=value))
            return False
        if leader is not None:
            self._out.send.append(Retry(src=m.src, dst=leader, slot=slot))
            return False
        return self.may_retry(slot, now)

    def may_retry(self, slot: int, now: int) -> bool:
        """Whether `slot` may be retried at `now` (then it counts as retried;
        else as suppressed)."""
        last = self._retried_at.get(slot)
        if last is not None and now - last < self._cooldown:
            self._stats.retries_suppressed += 1
            return False
        self._retried_at[slot] = now
        self._stats.retries_performed += 1
        return True

    def ask_from(self, slot: int) -> None:
        """The next phase 1 must cover `slot`."""
        self.floor = slot if self.floor is None else min(self.floor, slot)

    def may_reelect(self, now: int) -> bool:
        """Whether a leader may run phase 1 for retries at `now` (then it counts as run)."""
        if now - self._reelected_at < self._cooldown:
            return False
        self._reelected_at = now
        return True

    def forget_below(self, slot: int) -> None:
        """Slots below `slot` are decided long ago: forget when they were retried."""
        for s in [s for s in self._retried_at if s < slot]:
            del self._retried_at[s]
