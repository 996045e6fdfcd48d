"""The acceptor: promises and votes, durable before they are announced.

Paxos Made Simple, section 2.2: an acceptor may accept a proposal numbered
n iff it has not responded to a prepare request numbered greater than n;
it promises on a prepare request numbered n only if n is greater than any
it has already responded to. Section 2.5: it records its response in
stable storage before sending it.
"""

from __future__ import annotations

from .ids import Ballot
from .messages import Accept, Accepted, Nack, Prepare, Promise, Vote
from .outbox import Outbox
from .ready import Record


class Acceptor:
    """One acceptor's state: the promised ballot and its vote per slot."""

    def __init__(
        self,
        node_id: str,
        learners: tuple[str, ...],
        record: Record,
        out: Outbox,
        *,
        accept_without_promise: bool = False,
    ) -> None:
        self.node_id = node_id
        self.learners = learners
        #: Highest ballot promised or accepted; never decreases.
        self.promised: Ballot = record.promised
        #: slot -> the highest-ballot vote cast in it.
        self.votes: dict[int, Vote] = dict(record.votes)
        self._out = out
        # Planted bug (the 2012 demo's): accept any ballot, never raise the promise.
        self._accept_without_promise = accept_without_promise
        self.prepares_rejected = 0
        self.accepts_rejected = 0

    def on_prepare(self, m: Prepare) -> None:
        """Phase 1b: promise a strictly higher ballot, else nack with what is promised."""
        if m.ballot > self.promised:
            self.promised = m.ballot
            self._out.promised = m.ballot
            votes = tuple(v for s, v in sorted(self.votes.items()) if s >= m.first_slot)
            self._out.after_persist.append(
                Promise(src=self.node_id, dst=m.src, ballot=m.ballot,
                        first_slot=m.first_slot, votes=votes)
            )
        else:
            self.prepares_rejected += 1
            self._out.now.append(
                Nack(src=self.node_id, dst=m.src, ballot=m.ballot, promised=self.promised)
            )

    def on_accept(self, m: Accept) -> None:
        """Phase 2b: accept at or above the promise and raise the promise to it."""
        if self._accept_without_promise:
            pass  # planted: no check, no raise
        elif m.ballot < self.promised:
            self.accepts_rejected += 1
            self._out.now.append(
                Nack(src=self.node_id, dst=m.src, ballot=m.ballot, promised=self.promised)
            )
            return
        elif m.ballot > self.promised:
            self.promised = m.ballot
            self._out.promised = m.ballot
        vote = Vote(m.slot, m.ballot, m.value)
        if self.votes.get(m.slot) != vote:
            self.votes[m.slot] = vote
            self._out.votes[m.slot] = vote
        # A duplicate Accept gets its Accepted again (the first may be lost).
        for dst in dict.fromkeys((m.src, *self.learners)):
            self._out.after_persist.append(
                Accepted(src=self.node_id, dst=dst, ballot=m.ballot, slot=m.slot, value=m.value)
            )
