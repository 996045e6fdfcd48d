"""The learner: finds out which value each slot decided and applies them in order.

A value is chosen when a majority of acceptors accepted it under one
ballot (Paxos Made Simple, section 2.3). Votes are counted per ballot:
three acceptors that accepted in three different ballots decided nothing.

Commands are applied in slot order with no gap, and each request id once:
a command decided again in a later slot (a client retry, a re-proposal
after a leader change) is reported with the slot where it was first
decided and not applied again.

A learner cannot tell on its own that it missed the *last* slots (the
2012 demo's to-do list). The leader's heartbeat announces the highest slot
it proposed; a slot below that which stays undecided for `gap_ticks` is
asked for with a Retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .commands import Value
from .config import Membership, Settings
from .ids import ZERO_BALLOT, Ballot
from .messages import Accepted, Decide, Heartbeat, Retry
from .outbox import Outbox
from .ready import Applied, Record

#: How many missing slots a learner asks for in one tick at most.
MAX_RETRIES_PER_TICK = 64


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of the decided log: a command applied, or a no-op slot."""

    slot: int
    payload: str | None
    request_id: str | None
    noop: bool


class Learner:
    """One learner's state: votes seen, decided slots, the applied log."""

    def __init__(
        self,
        node_id: str,
        membership: Membership,
        settings: Settings,
        record: Record,
        out: Outbox,
        on_decided: Callable[[int, Value], None] | None = None,
    ) -> None:
        self.node_id = node_id
        #: Called for every slot decided here (a replica's proposer listens).
        self._on_decided = on_decided
        self.membership = membership
        self.settings = settings
        self._out = out
        self._cross_ballot = "cross-ballot-learner" in settings.plant
        #: slot -> ballot -> (acceptors that accepted it, the value), undecided slots only.
        self._tally: dict[int, dict[Ballot, tuple[set[str], Value]]] = {}
        #: slot -> decided value.
        self.decided: dict[int, Value] = {}
        #: Every slot below this is decided and applied.
        self.next_apply = 0
        #: request id -> slot where it was first decided.
        self.first_slot: dict[str, int] = {}
        self.log: list[LogEntry] = []
        #: Highest slot known to exist (decided here or announced by a leader).
        self.highest_known = -1
        self.leader: str | None = None
        self._leader_ballot: Ballot = ZERO_BALLOT
        self._leader_heard = -(10**9)
        self._missing_since: dict[int, int] = {}
        self._asked_at: dict[int, int] = {}
        self._next_proposer = 0
        self._now = 0
        self.retries_sent = 0
        # Rebuild from what was persisted: replay the decided prefix silently
        # (it was reported before the crash, or its client will retry).
        for slot, value in record.decisions.items():
            self.decided[slot] = value
            self.highest_known = max(self.highest_known, slot)
        self._apply(report=False)

    @property
    def decided_up_to(self) -> int:
        """Highest slot up to which every slot is decided (-1 for none)."""
        return self.next_apply - 1

    def on_accepted(self, m: Accepted) -> None:
        """Count a vote; decide the slot when a majority voted in one ballot."""
        if m.slot in self.decided:
            return
        # Planted bug: count votes across ballots, as if they were one.
        ballot = ZERO_BALLOT if self._cross_ballot else m.ballot
        by_ballot = self._tally.setdefault(m.slot, {})
        voters, _ = by_ballot.get(ballot) or (set(), m.value)
        voters.add(m.src)
        by_ballot[ballot] = (voters, m.value)
        if len(voters) >= self.membership.majority:
            self._decide(m.slot, m.value)

    def on_decide(self, m: Decide) -> None:
        """A proposer tells us a decision (the answer to a Retry)."""
        if m.slot not in self.decided:
            self._decide(m.slot, m.value)

    def on_heartbeat(self, m: Heartbeat) -> None:
        """Follow the leader, and learn how far the log reaches."""
        if m.ballot >= self._leader_ballot:
            self._leader_ballot = m.ballot
            self.leader = m.src
            self._leader_heard = self._now
        if m.highest_slot > self.highest_known:
            self.highest_known = m.highest_slot

    def tick(self) -> None:
        """Ask for the slots that have been missing for `gap_ticks`."""
        self._now += 1
        if self.highest_known < self.next_apply:
            return
        gap = self.settings.gap_ticks
        asked = 0
        for slot in range(self.next_apply, self.highest_known + 1):
            if slot in self.decided:
                continue
            since = self._missing_since.setdefault(slot, self._now)
            if self._now - since < gap or self._now - self._asked_at.get(slot, -gap) < gap:
                continue
            self._asked_at[slot] = self._now
            self._out.now.append(Retry(src=self.node_id, dst=self._retry_target(), slot=slot))
            self.retries_sent += 1
            asked += 1
            if asked >= MAX_RETRIES_PER_TICK:
                break

    def _retry_target(self) -> str:
        """The leader if it was heard from lately, else the proposers in turn."""
        if self.leader is not None and self._now - self._leader_heard <= self.settings.election_ticks:
            return self.leader
        proposers = self.membership.proposers
        self._next_proposer = (self._next_proposer + 1) % len(proposers)
        return proposers[self._next_proposer]

    def _decide(self, slot: int, value: Value) -> None:
        self.decided[slot] = value
        self._out.decisions[slot] = value
        self._tally.pop(slot, None)
        self._missing_since.pop(slot, None)
        self._asked_at.pop(slot, None)
        if slot > self.highest_known:
            self.highest_known = slot
        if self._on_decided is not None:
            self._on_decided(slot, value)
        if slot == self.next_apply:
            self._apply(report=True)

    def _apply(self, *, report: bool) -> None:
        """Apply the decided slots that follow the applied prefix, in order."""
        while self.next_apply in self.decided:
            slot = self.next_apply
            value = self.decided[slot]
            if not value:
                self.log.append(LogEntry(slot, None, None, True))
            for command in value:
                first = self.first_slot.get(command.request_id)
                if first is None:
                    first = self.first_slot[command.request_id] = slot
                    self.log.append(LogEntry(slot, command.payload, command.request_id, False))
                    if report:
                        self._out.applied.append(Applied(slot, command, first))
                elif report:
                    # Decided again: answer with the first slot, apply nothing.
                    self._out.applied.append(Applied(slot, command, first))
            self.next_apply += 1
