"""A proposer's retry service: how often a learner's Retry may cost work.

A learner that misses a slot sends Retry (learner.py); the proposer
answers with the value it holds, forwards the Retry to a live leader, or
has the slot decided again (proposer.py, `on_retry`). Deciding again can
take a new ballot, which deposes the leader; so one slot is retried at
most once per `retry_cooldown_ticks`, and a leader runs a new phase 1 for
retries at most once per cooldown too (a lagging learner asks for many
slots at once: an election per slot would be a storm). A phase 1 covers
every slot from its first one, so the next one starts at the lowest slot
asked for (`floor`).
"""

from __future__ import annotations

from .stats import ProposerStats


class Retries:
    """Which slots were retried when, the lowest slot asked for, the last re-election."""

    __slots__ = ("_cooldown", "_stats", "_retried_at", "floor", "_reelected_at")

    def __init__(self, cooldown: int, stats: ProposerStats) -> None:
        self._cooldown = cooldown
        self._stats = stats
        self._retried_at: dict[int, int] = {}
        #: The lowest slot a learner asked for that our phase 1 does not cover.
        self.floor: int | None = None
        self._reelected_at = -(10**9)

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
