"""The acceptor: promises and votes, durable before they are announced.

Paxos Made Simple, section 2.2: an acceptor may accept a proposal numbered
n iff it has not responded to a prepare request numbered greater than n;
it promises on a prepare request numbered n only if n is greater than any
it has already responded to. Section 2.5: it records its response in
stable storage before sending it.

Compaction (Paxos Made Live, section 5.5: snapshots let replicas drop the
log below them). The acceptor keeps its votes on disk, not in memory, and
deletes the votes below its *compaction point*: the slot below which every
configured learner has told it (`Stored`) that it holds the decisions
durably. See `on_stored` for the rule and why it is safe.
"""

from __future__ import annotations

from .ids import Ballot
from .messages import Accept, Accepted, Nack, Prepare, Promise, Stored, Vote
from .outbox import Outbox
from .ready import Record
from .store import DurableLog

#: Latest slots whose vote an acceptor keeps in memory (to skip rewriting resent Accepts).
RECENT_VOTES = 64


class Acceptor:
    """One acceptor's state: the promised ballot and the compaction point.

    Votes live in `store` (read back only to answer a Prepare), so memory
    does not grow with the log.
    """

    def __init__(
        self,
        node_id: str,
        learners: tuple[str, ...],
        record: Record,
        out: Outbox,
        store: DurableLog,
    ) -> None:
        self.node_id = node_id
        self.learners = learners
        #: Highest ballot promised or accepted; never decreases.
        self.promised: Ballot = record.promised
        #: Every slot below this is decided and stored by every learner; its
        #: votes are deleted and any Prepare or Accept below it is refused.
        self.compacted: int = record.compacted
        self._store = store
        self._out = out
        #: learner -> highest slot it reported durable (since this incarnation began).
        self._stored: dict[str, int] = {}
        #: slot -> the vote cast there, for the latest slots only: a resent
        #: Accept repeating it needs no write.
        self._recent: dict[int, Vote] = {}
        self.prepares_rejected = 0
        self.accepts_rejected = 0
        self.compacted_refusals = 0

    # ----------------------------------------------------------------- reads

    def votes_from(self, slot: int) -> list[Vote]:
        """Every vote in slots >= `slot`: the durable ones and those not yet persisted."""
        votes = {v.slot: v for v in self._store.votes_from(slot)}
        for vote in self._out.votes.values():
            if vote.slot >= slot:
                votes[vote.slot] = vote
        return [votes[s] for s in sorted(votes)]

    def vote_at(self, slot: int) -> Vote | None:
        """The vote cast in `slot`, if any (for tests and checks)."""
        pending = self._out.votes.get(slot)
        if pending is not None:
            return pending
        votes = self._store.votes_from(slot)
        return votes[0] if votes and votes[0].slot == slot else None

    # -------------------------------------------------------------- phase 1

    def on_prepare(self, m: Prepare) -> None:
        """Phase 1b: promise a strictly higher ballot, else nack with what is promised.

        A Prepare from below the compaction point is refused whatever its
        ballot: this acceptor can no longer report the votes there, and a
        proposer that saw "no votes" would fill decided slots with no-ops.
        """
        if m.first_slot < self.compacted:
            self.compacted_refusals += 1
            self._nack(m.src, m.ballot)
        elif m.ballot > self.promised:
            self.promised = m.ballot
            self._out.promised = m.ballot
            self._out.send_after_persist.append(
                Promise(src=self.node_id, dst=m.src, ballot=m.ballot, first_slot=m.first_slot,
                        votes=tuple(self.votes_from(m.first_slot)), compacted=self.compacted)
            )
        else:
            self.prepares_rejected += 1
            self._nack(m.src, m.ballot)

    # -------------------------------------------------------------- phase 2

    def on_accept(self, m: Accept) -> None:
        """Phase 2b: accept at or above the promise and raise the promise to it."""
        if m.slot < self.compacted:
            self.compacted_refusals += 1  # decided long ago; a stale leader's Accept
            self._nack(m.src, m.ballot)
            return
        if not self._may_accept(m.ballot):
            self.accepts_rejected += 1
            self._nack(m.src, m.ballot)
            return
        self._raise_promise(m.ballot)
        # A resend of the vote we cast needs no write. (Older slots drop out
        # of `_recent`; a resend there is written again, which is harmless.)
        vote = Vote(m.slot, m.ballot, m.value)
        if self._recent.get(m.slot) != vote:
            self._out.votes[m.slot] = vote
            self._recent[m.slot] = vote
            if len(self._recent) > 2 * RECENT_VOTES:
                self._recent = dict(sorted(self._recent.items())[-RECENT_VOTES:])
        # A duplicate Accept gets its Accepted again (the first may be lost).
        for dst in dict.fromkeys((m.src, *self.learners)):
            self._out.send_after_persist.append(
                Accepted(src=self.node_id, dst=dst, ballot=m.ballot, slot=m.slot, value=m.value)
            )

    def _may_accept(self, ballot: Ballot) -> bool:
        return ballot >= self.promised

    def _raise_promise(self, ballot: Ballot) -> None:
        if ballot > self.promised:
            self.promised = ballot
            self._out.promised = ballot

    def _nack(self, dst: str, ballot: Ballot) -> None:
        self._out.send.append(Nack(src=self.node_id, dst=dst, ballot=ballot,
                                  promised=self.promised, compacted=self.compacted))

    # ------------------------------------------------------------ compaction

    def on_stored(self, m: Stored) -> None:
        """A learner holds every decision up to `m.upto` durably: maybe compact.

        The rule: the compaction point is one above the lowest `upto` that
        *every configured learner* has reported; the point is persisted in
        the same transaction that deletes the votes below it.

        Why it is safe. A learner reports `upto` only after the decisions up
        to it are on its disk (`Stored` is sent after the persist), so every
        slot below the point is decided, and every learner can serve it to
        any other learner (state transfer): no learner ever needs these
        votes again. No proposer can need them either: this acceptor
        refuses any Prepare or Accept below the point and says where the
        point is, so a stale leader (or a retry of an old slot) can never
        run phase 1 there, see "no votes", and propose a no-op over a
        decided slot; it moves its phase 1 above the point instead. A point
        that is lost in a crash is not a risk, because it is durable before
        any vote goes. A learner that stays down holds the point back (it
        reports nothing); votes stay on disk, not in memory, meanwhile.
        """
        if m.src not in self.learners:
            return
        if m.upto > self._stored.get(m.src, -1):
            self._stored[m.src] = m.upto
        point = self._point()
        if point > self.compacted:
            self.compacted = point
            self._out.compacted = point

    def set_learners(self, learners: tuple[str, ...]) -> None:
        """The configured learners changed (`Node.set_membership`).

        Reports of removed learners are forgotten, so they hold nothing back.
        An added learner has not reported: the point stays where it is (it
        never moves down) until it does. It starts below the point, and
        copies those slots from a peer learner, which stored them all.
        """
        self.learners = learners
        self._stored = {k: v for k, v in self._stored.items() if k in learners}

    def _point(self) -> int:
        if len(self._stored) < len(self.learners):
            return 0  # some learner has not reported since we started
        return min(self._stored[learner] for learner in self.learners) + 1
