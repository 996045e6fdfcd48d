"""A learner's missing slots: since when each is missing, and the Retries it sends.

A slot below the highest one known (a leader's heartbeat, a peer's
`Stored`) that stays undecided for `gap_ticks` is missing. The learner
first tries to copy it from a peer learner (state transfer, peers.py);
what no peer has stored is asked of the proposers with a `Retry`: of the
leader if it was heard from within `election_ticks`, else of the
proposers in turn. A slot is asked at most once per `gap_ticks`, and at
most `MAX_RETRIES_PER_TICK` slots per tick.
"""

from __future__ import annotations

from typing import Container

from .settings import Membership, Settings
from .ids import ZERO_BALLOT, Ballot
from .messages import Heartbeat, Retry
from .outbox import Outbox

#: How many missing slots a learner asks for in one tick at most.
MAX_RETRIES_PER_TICK = 64


class Gaps:
    """The slots one learner misses, the leader it follows, the Retries it sent."""

    __slots__ = ("node_id", "_out", "_settings", "_membership", "_missing_since", "_asked_at",
                 "_next_proposer", "leader", "_leader_ballot", "_leader_heard", "retries_sent")

    def __init__(self, node_id: str, out: Outbox, settings: Settings,
                 membership: Membership) -> None:
        self.node_id = node_id
        self._out = out
        self._settings = settings
        self._membership = membership
        self._missing_since: dict[int, int] = {}
        self._asked_at: dict[int, int] = {}
        self._next_proposer = 0
        #: The leader last heard (None: none, or it was removed).
        self.leader: str | None = None
        self._leader_ballot: Ballot = ZERO_BALLOT
        self._leader_heard = -(10**9)
        self.retries_sent = 0

    def follow(self, m: Heartbeat, now: int) -> None:
        """A leader's heartbeat: follow it if its ballot is the highest heard."""
        if m.ballot >= self._leader_ballot:
            self._leader_ballot = m.ballot
            self.leader = m.src
            self._leader_heard = now

    def set_membership(self, membership: Membership) -> None:
        """Retries go to the current proposers only."""
        self._membership = membership
        if self.leader is not None and self.leader not in membership.proposers:
            self.leader = None  # retry at the proposers in turn until a leader is heard

    def missing_for(self, slot: int, now: int) -> int:
        """How long `slot` has been missing (it starts being missing now if new)."""
        return now - self._missing_since.setdefault(slot, now)

    def ask(self, first: int, last: int, now: int, decided: Container[int]) -> None:
        """Send a Retry for each slot in [first, last] not in `decided` that has
        been missing, and not asked, for `gap_ticks`."""
        gap = self._settings.gap_ticks
        missing_since, asked_at = self._missing_since, self._asked_at
        asked = 0
        for slot in range(first, last + 1):
            if slot in decided:
                continue
            since = missing_since.setdefault(slot, now)
            if now - since < gap or now - asked_at.get(slot, -gap) < gap:
                continue
            asked_at[slot] = now
            self._out.send.append(Retry(src=self.node_id, dst=self._target(now), slot=slot))
            self.retries_sent += 1
            asked += 1
            if asked >= MAX_RETRIES_PER_TICK:
                break

    def _target(self, now: int) -> str:
        """The leader if it was heard from lately, else the proposers in turn."""
        if self.leader is not None and now - self._leader_heard <= self._settings.election_ticks:
            return self.leader
        proposers = self._membership.proposers
        self._next_proposer = (self._next_proposer + 1) % len(proposers)
        return proposers[self._next_proposer]

    def found(self, slot: int) -> None:
        """`slot` is decided here: no longer missing."""
        self._missing_since.pop(slot, None)
        self._asked_at.pop(slot, None)

    def found_below(self, slot: int) -> None:
        """Every slot below `slot` is applied here."""
        if self._missing_since and min(self._missing_since) < slot:
            for table in (self._missing_since, self._asked_at):
                for s in [s for s in table if s < slot]:
                    del table[s]
