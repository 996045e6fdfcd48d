"""What a learner tells and asks the others: durable progress, and state transfer.

A learner reports how far its log is durable (`Stored`) to the acceptors,
which compact below the lowest report of all learners, and to the other
learners, which then know whom to copy a missing slot from (`Fetch`,
answered with a `Chunk` of the applied log, as Raft's InstallSnapshot).
Installing a chunk changes the learner's own log, so that stays in
`Learner.on_chunk`; everything else about peers is here.
"""

from __future__ import annotations

from .settings import Membership, Settings
from .configs import History
from .messages import Chunk, Fetch, Stored
from .outbox import Outbox
from .store import DurableLog

_NEVER = -(10**9)


class Peers:
    """One learner's view of the other learners, and its own progress reports."""

    def __init__(self, node_id: str, membership: Membership, settings: Settings, out: Outbox,
                 store: DurableLog) -> None:
        self.node_id = node_id
        self.membership = membership
        self.settings = settings
        self._out = out
        self._store = store
        #: peer learner -> highest slot it reported durable.
        self.stored: dict[str, int] = {}
        self.fetch_at = _NEVER
        #: The peer our unanswered Fetches go to, and since when (tick) none was answered.
        self._fetching: str | None = None
        self._fetching_since = _NEVER
        self._answered: dict[str, int] = {}
        self._reported = -2
        self._reported_at = _NEVER
        self.fetches_sent = 0
        self.chunks_served = 0

    def set_membership(self, membership: Membership) -> None:
        """Forget the progress of learners no longer configured: never fetch from one."""
        self.membership = membership
        self.stored = {k: v for k, v in self.stored.items() if k in membership.learners}

    @property
    def highest(self) -> int:
        """The highest slot any peer reported durable (-1 for none)."""
        return max(self.stored.values(), default=-1)

    def on_stored(self, m: Stored, mine: int, now: int) -> bool:
        """Note a peer's progress; True if it has slots we miss (fetch them).

        A peer behind us hears our own report at once, so a learner that
        just started, or lost its disk, finds its source within a tick.
        """
        if m.src == self.node_id or m.src not in self.membership.learners:
            return False
        if m.upto > self.stored.get(m.src, -1):
            self.stored[m.src] = m.upto
        if m.upto < mine:
            if now - self._answered.get(m.src, _NEVER) >= self.settings.stored_ticks:
                self._answered[m.src] = now
                self._out.send_after_persist.append(Stored(src=self.node_id, dst=m.src, upto=mine))
            return False
        return m.upto > mine

    def report(self, upto: int, now: int, history: History) -> None:
        """Tell acceptors, proposers and peer learners that our log is durable up
        to `upto`; proposers and learners get our configuration `history` too.

        Sent after the persist of the `Ready` it leaves in (`send_after_persist`):
        everything applied so far is in that persist or an earlier one. At
        most every `stored_ticks` while it moves, and every ten times that
        when it does not (a restarted acceptor hears it again).
        """
        every = self.settings.stored_ticks
        since = now - self._reported_at
        if not ((upto > self._reported and since >= every) or since >= 10 * every):
            return
        self._reported, self._reported_at = upto, now
        m = self.membership
        # Every acceptor that may hold votes we stored (our own too: a
        # replica's acceptor counts its own learner; the runtime delivers it
        # locally, after the persist), the proposers (for the history and to
        # tell when a change is in force) and the other learners.
        told = set(m.proposers) | set(m.learners)
        peers = (learner for learner in m.learners if learner != self.node_id)
        for dst in dict.fromkeys((*history.acceptors_from(upto), *m.proposers, *peers)):
            self._out.send_after_persist.append(Stored(src=self.node_id, dst=dst, upto=upto,
                                                  history=history if dst in told else None))

    def report_again(self) -> None:
        """Report at the next `report`, whether or not `upto` moved: what was
        reported before went nowhere (a store not yet admitted sends nothing,
        runtime/admission.py). A peer learner ahead answers with its own
        report, and the state transfer starts from it."""
        self._reported, self._reported_at = -2, _NEVER

    def fetch(self, first_slot: int, now: int) -> None:
        """Ask the peer that stored the most for the log from `first_slot`, if it has it."""
        if not self.stored:
            return
        peer, upto = max(self.stored.items(), key=lambda p: p[1])
        if upto < first_slot:
            return
        self.fetch_at = now
        if peer != self._fetching:
            self._fetching, self._fetching_since = peer, now
        self.fetches_sent += 1
        self._out.send.append(Fetch(src=self.node_id, dst=peer, first_slot=first_slot))

    def answered(self) -> None:
        """A chunk came back: the next Fetch may go at once."""
        self.fetch_at = _NEVER
        self._fetching, self._fetching_since = None, _NEVER

    def forget_silent(self, now: int, patience: int) -> str | None:
        """Forget the progress of the peer our Fetches went to if none was
        answered for `patience` ticks; the peer forgotten, or None.

        A learner copies from a peer what that peer reported stored, and asks
        the proposers (Retry) only for the slots above it. A peer that stopped
        after its report would hold those slots back for good: forgotten, they
        are asked of the proposers like any other missing slot (a Retry is
        always safe: the leader runs Paxos for the slot again). Its next
        `Stored` report brings it back as a source.
        """
        peer = self._fetching
        if peer is None or now - self._fetching_since < patience:
            return None
        self.stored.pop(peer, None)
        self._fetching, self._fetching_since = None, _NEVER
        self.fetch_at = _NEVER
        return peer

    def serve(self, m: Fetch, history: History) -> None:
        """Answer a peer's Fetch with one chunk of our applied log, read from the store.

        Only what is durable here is sent, with the request index entries
        that decide how each of its commands was applied.
        """
        piece = self._store.read_log(m.first_slot, self.settings.chunk_bytes)
        self.chunks_served += 1
        self._out.send.append(Chunk(
            src=self.node_id, dst=m.src, asked=m.first_slot, first_slot=piece.start,
            decisions=piece.decisions, first_slots=tuple(piece.first_slots.items()),
            history=history))
